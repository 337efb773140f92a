//! The fast path of one worker, sans-IO: frame in, verdict out.
//!
//! ```text
//! frame ─▶ Ethernet (untagged; ours or broadcast) ─┬─ ARP ─▶ learn sender; answer requests for
//!                                                  │         our addresses and on-link VIPs
//!                                                  └─ IPv4 (checked, checksum verified, padding
//!                                                     trimmed, fragments dropped)
//!      ├─ ICMP echo to our address or a VIP ─▶ reply in place
//!      ├─ flow hit, original direction ─▶ DNAT to the server ─▶ route ─▶ neighbour ─▶ send
//!      ├─ flow hit, reply direction    ─▶ SNAT back to the VIP ─▶ route ─▶ neighbour ─▶ send
//!      └─ miss to a VIP ─▶ service ─▶ (TCP: SYN only) ─▶ scheduler ─▶ new flow ─▶ DNAT ...
//! ```
//!
//! Every drop is counted under a [`DropReason`]; nothing here panics or allocates per packet
//! (the neighbour queue and flow table grow within their configured bounds).
//!
//! Why fragments are dropped: only the first fragment carries the ports a flow is keyed on, and
//! a reassembly buffer on the fast path would be a memory-exhaustion target. Clients behind a
//! sane MTU do not fragment TCP; UDP services that rely on fragmentation are not supported yet.
//!
//! IPv4 options are forwarded untouched; 802.1Q-tagged frames are dropped (ports are untagged).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashSet;

mod arp;
mod icmp;
mod setup;

use super::order::{HostOrder, HostPair, Placed, Release};
use super::{Io, SlowMsg, SlowReturn};
use crate::config::Config;
use crate::flow::conn::{FTP_CONTROL, FTP_DATA, FTP_NONE};
use crate::flow::rss::Sharding;
use crate::flow::tcp_state::Timeouts;
use crate::flow::tcp_state::{direction, Direction, Seen};
use crate::flow::{Conn, ConnId, Dir, FlowKey, FlowTable, InsertError, TcpState};
use crate::helper::ftp::ctl::{CtlKey, CtlMeta};
use crate::helper::ftp::expect::{ExpectKind, Expectation, Expectations};
use crate::helper::ftp::worker::{FtpWorker, Notice};
use crate::lb::laddr::{LocalPorts, FTP_ACTIVE_FIRST};
use crate::lb::ServiceTable;
use crate::neigh::{Neighbours, Resolve, Routes};
use crate::packet::PacketBuf;
use crate::stats::{Counter, DropReason, FtpCounter, Layout, LbCounter, LocalBlock};
use crate::time::Instant;
use crate::wire::{
    arp as wire_arp, arp_op, ethernet, ethertype, icmp_type, ipproto, ArpPacket, EthernetFrame,
    Icmpv4Packet, Ipv4Packet, MacAddr, TcpPacket, UdpPacket,
};
use crate::xmit::nat::{self, End, RewriteError};
use crate::xmit::ForwardMethod;
use crate::xmit::{dr, icmp as xmit_icmp, tun};

const ETH_LEN: usize = 14;
/// How far ahead of the frame being handled [`Pipeline::process_burst`] asks for a frame's first
/// line, its flow index bucket and its connection: a few frames' handling covers a cache miss.
const DATA_AHEAD: usize = 10;
const INDEX_AHEAD: usize = 6;
const CONN_AHEAD: usize = 3;
/// Hashes kept for the connection stage (a power of two above `INDEX_AHEAD`).
const PREFETCH_RING: usize = 8;
// Each stage reads what the one before it asked for: the stages must be in this order, and a
// hash must stay in the ring from its index stage until its connection stage.
const _: () =
    assert!(DATA_AHEAD >= INDEX_AHEAD && INDEX_AHEAD > CONN_AHEAD && PREFETCH_RING > INDEX_AHEAD);

/// The flow key of an IPv4 TCP/UDP frame, read without any checks (a guess for prefetching;
/// the pipeline validates every frame before it trusts a byte of it).
#[inline(always)]
fn peek_key(f: &[u8]) -> Option<FlowKey> {
    let head = f.get(..34)?;
    let (vihl, proto) = (head[14], head[23]);
    if head[12..14] != [8, 0] || vihl >> 4 != 4 || (proto != ipproto::TCP && proto != ipproto::UDP)
    {
        return None;
    }
    let l4 = ETH_LEN + usize::from(vihl & 0xf) * 4;
    let ports = f.get(l4..l4 + 4)?;
    Some(FlowKey {
        src: Ipv4Addr::new(head[26], head[27], head[28], head[29]),
        dst: Ipv4Addr::new(head[30], head[31], head[32], head[33]),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        proto,
    })
}
/// Frame `k` of a burst of `n` that [`Pipeline::process_burst`] keeps reversed.
#[inline(always)]
fn at<B>(bufs: &[B], n: usize, k: usize) -> Option<&B> {
    bufs.get(n.wrapping_sub(k + 1))
}
const ARP_FRAME_LEN: usize = ETH_LEN + wire_arp::LEN;
const MIN_FRAME: usize = 60;

/// Live FTP data flows a worker's link table holds before it first grows.
const FTP_LINKS_PRESIZE: usize = 1 << 16;

/// A port's identity as the pipeline needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddr {
    /// The port's MAC address.
    pub mac: MacAddr,
    /// Our IPv4 address on it.
    pub addr: Ipv4Addr,
    /// Its MTU (the config's, else 1500): the largest datagram DR and TUN may send out of it.
    pub mtu: u16,
}
/// What the L3/L4 parse of a datagram found.
#[derive(Clone, Copy, Debug)]
struct L4 {
    key: FlowKey,
    seen: Seen,
    len: usize,
    /// The port the frame arrived on (where an ICMP answer to the client goes).
    in_port: u16,
    /// The frame made its flow: the flow's state already counts it.
    made_flow: bool,
}
/// One worker's fast path.
#[derive(Debug)]
pub struct Pipeline<B> {
    /// This worker's index.
    worker: u16,
    sharding: Sharding,
    ports: Vec<PortAddr>,
    routes: Routes,
    /// (port, address) pairs we answer ARP for: interface addresses and on-link VIPs.
    owned: HashSet<(u16, Ipv4Addr)>,
    /// Every address of ours (interface addresses and VIPs), for ICMP echo.
    local: HashSet<Ipv4Addr>,
    neigh: Neighbours<B>,
    services: ServiceTable,
    flows: FlowTable,
    timeouts: Timeouts,
    expire_budget: usize,
    layout: Layout,
    counters: LocalBlock,
    arp_scratch: Vec<(u16, Ipv4Addr)>,
    /// IPv4 identification of the outer headers this worker builds (TUN).
    ident: u16,
    /// Full-NAT local ports, one allocator per service (empty for other methods).
    lports: Vec<LocalPorts>,
    /// Every full-NAT local address (replies to them are full-NAT replies).
    fnat_local: HashSet<Ipv4Addr>,
    /// A "fragmentation needed" to send for the frame being dropped: (port, MTU).
    pending_frag_needed: Option<(u16, u16)>,
    /// The worker's half of the FTP helper (None: no service has the helper).
    ftp: Option<FtpWorker>,
    /// Frames held behind control frames of their host pair that are at the slow path.
    order: HostOrder<B>,
    /// When the frame being handled reached its queue: after `.0` and before `.1` (the start
    /// of the last poll that emptied the taker's queues, and the start of the poll that took
    /// it). Its place in its host pair's order (`worker::order`).
    window: (Instant, Instant),
    /// This worker's `.0` for the frames of the current poll (`set_poll_window`).
    poll_since: Instant,
}

/// Bookkeeping when a flow ends, shared by expiry and early removal: release its server, its
/// full-NAT local port, and its FTP state.
fn flow_ended(
    c: &Conn,
    services: &mut ServiceTable,
    lports: &mut [LocalPorts],
    ftp: Option<&mut FtpWorker>,
) {
    services.release(c.service, c.dest, c.state.is_active(), c.client);
    if c.fnat && c.lport < FTP_ACTIVE_FIRST {
        if let Some(l) = lports.get_mut(usize::from(c.service)) {
            l.free(c.laddr, c.lport);
        }
    }
    if let Some(ftp) = ftp {
        if c.fnat && c.lport >= FTP_ACTIVE_FIRST {
            // An active-mode local port: the slow path hands those out.
            ftp.released(c.laddr, c.lport);
        }
        ftp.flow_ended(c);
    }
}

impl<B: PacketBuf> Pipeline<B> {
    /// The pipeline of worker `worker` (of `cfg.workers.count`) for a validated config;
    /// `macs[i]` is the MAC address of config port `i`.
    pub fn new(cfg: &Config, macs: &[MacAddr], worker: u16, now: Instant) -> Pipeline<B> {
        let ports: Vec<PortAddr> = cfg
            .ports
            .iter()
            .zip(macs.iter())
            .map(|(p, mac)| PortAddr {
                mac: *mac,
                addr: p.address.addr,
                mtu: p.mtu.unwrap_or(1500),
            })
            .collect();
        let routes = Routes::new(cfg.ports.iter().map(|p| (p.address, p.gateway)));
        let services = ServiceTable::from_config(cfg);
        let mut owned = HashSet::new();
        let mut local = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            owned.insert((i as u16, p.addr));
            local.insert(p.addr);
            for vip in services.vips() {
                if routes.on_link(i as u16, vip) {
                    owned.insert((i as u16, vip));
                }
            }
        }
        local.extend(services.vips());
        for a in cfg
            .services
            .iter()
            .flat_map(|s| s.local_addresses.iter().copied())
        {
            local.insert(a);
            for i in 0..ports.len() {
                if routes.on_link(i as u16, a) {
                    owned.insert((i as u16, a));
                }
            }
        }
        let mut neigh = Neighbours::new(&cfg.arp.model());
        for n in &cfg.neighbors {
            if let Some(i) = cfg.ports.iter().position(|p| p.name == n.port) {
                neigh.add_static(i as u16, n.ip, n.mac);
            }
        }
        let layout = Layout {
            services: services.len(),
            servers: services.server_count(),
        };
        Pipeline {
            worker,
            sharding: Sharding::new(cfg.workers.count as u16, ServiceTable::affinity_prefix(cfg)),
            ports,
            routes,
            owned,
            local,
            neigh,
            flows: FlowTable::new(cfg.flows.capacity, now),
            services,
            timeouts: cfg.timeouts.model(),
            expire_budget: cfg.flows.expire_budget,
            layout,
            counters: LocalBlock::new(layout.len()),
            arp_scratch: Vec::new(),
            ident: 0,
            pending_frag_needed: None,
            ftp: None,
            // Room for both rings' worth of control frames out and as many frames behind them.
            order: HostOrder::new(4 * cfg.ftp.ring_size),
            window: (Instant::ZERO, Instant::ZERO),
            poll_since: Instant::ZERO,
            lports: cfg
                .services
                .iter()
                .map(|s| LocalPorts::new(&s.local_addresses))
                .collect(),
            fnat_local: cfg
                .services
                .iter()
                .flat_map(|s| s.local_addresses.iter().copied())
                .collect(),
        }
    }

    /// Share the FTP expectation table with this worker (done once at start when a service has
    /// the FTP helper).
    pub fn set_expectations(&mut self, expect: Arc<Expectations>) {
        // Sized up front like the flow index, so that a busy worker does not rehash its link
        // table on the packet path (tens of thousands of links take milliseconds to move):
        // room for 64 Ki live data flows (131,072 buckets, 4.7 MB), or the flow table's
        // capacity if smaller. Beyond that it doubles, once per doubling of the peak.
        let links = self.flows.capacity().min(FTP_LINKS_PRESIZE);
        self.ftp = Some(FtpWorker::new(self.worker, expect, links));
    }

    /// This worker's index.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// The counters (published by the poll loop).
    pub fn counters(&self) -> &LocalBlock {
        &self.counters
    }

    /// The counter layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The flow table (read-only, for reports and tests).
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// The services (read-only).
    pub fn services(&self) -> &ServiceTable {
        &self.services
    }

    /// Copy the live active/inactive connection counts of every service and server into the
    /// counter block (gauges; call before publishing).
    pub fn refresh_gauges(&mut self) {
        for (i, svc) in self.services.iter().enumerate() {
            let (mut a, mut n) = (0u64, 0u64);
            for d in &svc.dests {
                let k = usize::from(d.index);
                self.counters.set(
                    self.layout.server(k, LbCounter::ActiveConns),
                    u64::from(d.active),
                );
                self.counters.set(
                    self.layout.server(k, LbCounter::InactiveConns),
                    u64::from(d.inactive),
                );
                a += u64::from(d.active);
                n += u64::from(d.inactive);
            }
            self.counters
                .set(self.layout.service(i, LbCounter::ActiveConns), a);
            self.counters
                .set(self.layout.service(i, LbCounter::InactiveConns), n);
        }
    }

    /// Count frames the I/O layer sent.
    pub fn count_tx(&mut self, packets: u64, bytes: u64) {
        self.bump(Counter::TxPackets, packets);
        self.bump(Counter::TxBytes, bytes);
    }

    /// The slow path's answer, at `now`, for the oldest control frame this worker gave it. It
    /// leaves, with what waited behind it, from [`Self::release_ordered`].
    pub fn slow_path_returned(&mut self, ret: SlowReturn<B>, now: Instant) {
        let frame = match ret {
            SlowReturn::Send { port, buf } => Some((port, buf)),
            SlowReturn::Dropped => None,
        };
        if !self.order.answered(frame, now) {
            // Cannot happen (every answer has its mark); nothing is sent out of order.
            self.bump(Counter::SlowPathUnexpected, 1);
        }
    }

    /// Send what may leave now, in order: answered control frames that every worker has
    /// passed (`watermark`: the earliest start of any worker's last poll that emptied its
    /// queues and handed over what it took, this worker's included; [`Instant::MAX`] when
    /// the caller keeps no watermarks), and the frames that waited behind them. Call after
    /// handling every frame handed over so far.
    pub fn release_ordered(&mut self, watermark: Instant, now: Instant, io: &mut impl Io<B>) {
        // A watermark that stops moving holds an answered control frame for at most
        // `order::ANSWERED_WAIT_MAX_NS`; those that leave without it are counted.
        let forced = self.order.forced();
        while let Some(r) = self.order.next_free(watermark, now) {
            match r {
                Release::Send(port, buf) => {
                    self.bump(Counter::SlowPathTx, 1);
                    io.send(port, buf);
                }
                Release::Route(to, buf) => self.route_out(to, buf, now, io),
                Release::Dropped => {}
            }
        }
        self.bump(Counter::OrderForced, self.order.forced() - forced);
    }

    /// The frames of the polls that follow reached their queues after `since` (the start of
    /// this worker's last poll that emptied its queues). Without it they count as having come
    /// at any time before the poll (the safe side for data frames: they never wait for a
    /// control frame that did not surely come first).
    pub fn set_poll_window(&mut self, since: Instant) {
        self.poll_since = since;
    }

    /// Control frames at the slow path and frames waiting behind them (a gauge for tests).
    pub fn held(&self) -> usize {
        self.order.len()
    }

    /// Count frames dropped outside the pipeline (TX queue full, multi-segment mbufs).
    pub fn count_drop(&mut self, reason: DropReason, n: u64) {
        self.counters.add(Layout::drop(reason), n);
    }

    #[inline]
    fn bump(&mut self, c: Counter, n: u64) {
        self.counters.add(Layout::counter(c), n);
    }

    #[inline]
    fn drop_buf(&mut self, io: &mut impl Io<B>, buf: B, reason: DropReason) {
        self.counters.add(Layout::drop(reason), 1);
        io.discard(buf);
    }

    /// Timers: flow expiry (bounded by the configured budget) and ARP retries.
    pub fn poll(&mut self, now: Instant, io: &mut impl Io<B>) {
        let (services, lports) = (&mut self.services, &mut self.lports);
        let mut ftp = self.ftp.as_mut();
        let expired = self.flows.expire(now, self.expire_budget, |c| {
            flow_ended(c, services, lports, ftp.as_deref_mut());
        });
        self.flush_notices(io);
        self.services.expire_persistence(now, self.expire_budget);
        self.bump(Counter::FlowsExpired, expired as u64);
        self.counters.set(
            Layout::counter(Counter::FlowsActive),
            self.flows.len() as u64,
        );

        let mut reqs = std::mem::take(&mut self.arp_scratch);
        let mut unresolved = 0u64;
        self.neigh.poll(now, &mut reqs, |b| {
            unresolved += 1;
            io.discard(b);
        });
        self.counters
            .add(Layout::drop(DropReason::NeighUnresolved), unresolved);
        for (port, ip) in reqs.drain(..) {
            self.arp_request(io, port, ip);
        }
        self.arp_scratch = reqs;
    }

    /// Handle a burst of frames received on `port`, in order, leaving `bufs` empty.
    ///
    /// What a frame will touch is requested in four stages, each a few frames ahead of the
    /// frame being handled: the buffer's metadata (all of the burst at once), then the frame's
    /// first line [`DATA_AHEAD`] frames ahead, then the flow index bucket of its key
    /// [`INDEX_AHEAD`] ahead, then the connection that bucket names [`CONN_AHEAD`] ahead. Each
    /// stage reads what the stage before it asked for a few frames earlier, so the cache misses
    /// overlap with the handling of the frames in between instead of stalling it. The stages
    /// are hints only: the handling itself is [`Pipeline::process`].
    pub fn process_burst(
        &mut self,
        port: u16,
        bufs: &mut Vec<B>,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let n = bufs.len();
        self.window = (self.poll_since.min(now), now);
        for b in bufs.iter() {
            b.prefetch_meta();
        }
        // Reversed, so that frames are taken in order with `pop` and frame `k` of the burst
        // stays at index `n - 1 - k` until it is taken.
        bufs.reverse();
        let mut hashes = [None; PREFETCH_RING];
        // Step `i` stages frame `i`'s first line, frame `i - (DATA_AHEAD - INDEX_AHEAD)`'s
        // bucket and frame `i - (DATA_AHEAD - CONN_AHEAD)`'s connection, then handles frame
        // `i - DATA_AHEAD`: the first steps only stage, the last ones only handle.
        for i in 0..n + DATA_AHEAD {
            if let Some(b) = at(bufs, n, i) {
                b.prefetch_data();
            }
            if let Some(j) = i.checked_sub(DATA_AHEAD - INDEX_AHEAD) {
                if let Some(b) = at(bufs, n, j) {
                    hashes[j % PREFETCH_RING] =
                        peek_key(b.data()).map(|key| self.flows.prefetch_index(&key));
                }
            }
            if let Some(j) = i.checked_sub(DATA_AHEAD - CONN_AHEAD).filter(|&j| j < n) {
                if let Some(h) = hashes[j % PREFETCH_RING] {
                    self.flows.prefetch_conn(h);
                }
            }
            if i < DATA_AHEAD {
                continue;
            }
            let Some(b) = bufs.pop() else { break };
            if b.is_chained() {
                self.count_drop(DropReason::MultiSegment, 1);
                io.discard(b);
                continue;
            }
            self.process(port, b, now, io);
        }
        bufs.clear();
    }

    /// Handle one frame received from the NIC.
    pub fn process(&mut self, port: u16, buf: B, now: Instant, io: &mut impl Io<B>) {
        self.window = (self.poll_since.min(now), now);
        self.bump(Counter::RxPackets, 1);
        self.bump(Counter::RxBytes, buf.len() as u64);
        self.process_frame(port, buf, now, io, false);
    }

    /// Handle a frame another worker took from its queue of `port` and handed over because
    /// this worker owns its flow. `window`: the frame reached that queue after `.0` (the start
    /// of the sender's last poll that emptied its queues) and before `.1` (the start of the
    /// poll that took it); it places the frame among its host pair's frames
    /// (`worker::order`).
    pub fn process_handed_over(
        &mut self,
        port: u16,
        buf: B,
        window: (Instant, Instant),
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        self.window = window;
        self.bump(Counter::HandoverIn, 1);
        self.process_frame(port, buf, now, io, true);
    }

    /// Apply a reload's server changes (weights, removals) to this worker's services.
    pub fn apply_changes(&mut self, changes: &[crate::config::ServerChange]) {
        self.services.apply(changes);
    }

    /// Another worker learned that `ip` on `port` is at `mac`: use it, and send what waited.
    pub fn learn_neighbour(
        &mut self,
        port: u16,
        ip: Ipv4Addr,
        mac: MacAddr,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let waiting = self.neigh.learn(port, ip, mac, now, true);
        if !waiting.is_empty() {
            self.bump(Counter::NeighResolved, 1);
        }
        for b in waiting {
            self.send_to(io, port, mac, b);
        }
    }

    fn process_frame(
        &mut self,
        port: u16,
        buf: B,
        now: Instant,
        io: &mut impl Io<B>,
        handed: bool,
    ) {
        let Some(me) = self.ports.get(usize::from(port)).copied() else {
            return self.drop_buf(io, buf, DropReason::NoRoute);
        };
        let (etype, dst) = match EthernetFrame::new_checked(buf.data()) {
            Ok(f) => {
                if f.vlan_tci().is_some() {
                    return self.drop_buf(io, buf, DropReason::Vlan);
                }
                (f.ethertype(), f.dst_addr())
            }
            Err(_) => return self.drop_buf(io, buf, DropReason::Truncated),
        };
        if dst != me.mac && !dst.is_broadcast() {
            return self.drop_buf(io, buf, DropReason::OtherMac);
        }
        match etype {
            ethertype::ARP => self.arp_in(port, me, buf, now, io),
            ethertype::IPV4 if dst == me.mac => self.ipv4_in(port, buf, now, io, handed),
            // Broadcast IPv4 (DHCP, NetBIOS ...) is not for a load balancer.
            ethertype::IPV4 => self.drop_buf(io, buf, DropReason::OtherMac),
            _ => self.drop_buf(io, buf, DropReason::EtherType),
        }
    }

    fn ipv4_in(&mut self, port: u16, mut buf: B, now: Instant, io: &mut impl Io<B>, handed: bool) {
        let checked = match buf.data().get(ETH_LEN..).map(Ipv4Packet::new_checked) {
            Some(Ok(ip)) => {
                if !ip.verify_checksum() {
                    Err(DropReason::BadIpChecksum)
                } else {
                    Ok((
                        ip.total_len() as usize,
                        ip.is_fragment(),
                        ip.protocol(),
                        ip.src_addr(),
                        ip.dst_addr(),
                        ip.ttl(),
                    ))
                }
            }
            Some(Err(crate::wire::Error::Truncated)) | None => Err(DropReason::Truncated),
            Some(Err(_)) => Err(DropReason::BadIpHeader),
        };
        let (total, fragment, proto, src, dst, ttl) = match checked {
            Ok(v) => v,
            Err(r) => return self.drop_buf(io, buf, r),
        };
        // Ethernet pads short frames; the datagram ends at its total length.
        buf.truncate(ETH_LEN + total);
        if fragment {
            return self.drop_buf(io, buf, DropReason::Fragment);
        }
        if proto == ipproto::ICMP {
            return self.icmp_in(port, buf, dst, now, io, handed);
        }
        if ttl <= 1 && (proto == ipproto::TCP || proto == ipproto::UDP) {
            // Checked before any flow is made or scheduled: such a packet is never forwarded.
            return self.drop_buf(io, buf, DropReason::TtlExceeded);
        }
        if proto != ipproto::TCP && proto != ipproto::UDP {
            let r = if self.local.contains(&dst) {
                DropReason::LocalUnhandled
            } else {
                DropReason::NoService
            };
            return self.drop_buf(io, buf, r);
        }
        let l4 = match Self::parse_l4(buf.data(), port, proto, src, dst) {
            Ok(l4) => l4,
            Err(r) => return self.drop_buf(io, buf, r),
        };
        if !handed && self.sharding.workers() > 1 {
            // Both directions of a flow carry the client's address: as source towards a VIP,
            // as destination in a server's reply. Its owner holds the flow.
            let owner = if self.services.is_vip(dst) {
                self.sharding.owner(src)
            } else if self.fnat_local.contains(&dst) {
                if l4.key.dport >= FTP_ACTIVE_FIRST {
                    // An FTP active-mode data connection: its local port names its owner.
                    l4.key.dport % self.sharding.workers()
                } else {
                    // A full-NAT reply: its local port was chosen so that this names the owner.
                    self.sharding
                        .owner_of_reply(src, dst, l4.key.sport, l4.key.dport)
                }
            } else {
                self.sharding.owner(dst)
            };
            if owner != self.worker {
                return match io.handover(owner, port, buf, self.window) {
                    Ok(()) => self.bump(Counter::HandoverOut, 1),
                    Err(b) => self.drop_buf(io, b, DropReason::HandoverFull),
                };
            }
        }
        match self.flows.lookup(&l4.key) {
            Some((id, dir)) if self.reusable(id, &l4) => {
                // A port reused for a new connection: end the old flow and take the SYN afresh
                // (IPVS's conn_reuse_mode), so counts and balance stay right. An FTP data
                // connection often reuses the ports of the previous one (active mode: the
                // server's SYN hits the old flow's reply side): its expectation comes first.
                if let Some(e) = self.claim(&l4, now) {
                    self.end_flow(id);
                    return self.new_data_flow(e, l4, buf, now, io);
                }
                match dir {
                    Dir::Original if !l4.seen.ack => {
                        self.end_flow(id);
                        self.new_flow(l4, buf, now, io)
                    }
                    _ => self.forward(id, dir, l4, buf, now, io),
                }
            }
            Some((id, Dir::Original)) => self.forward(id, Dir::Original, l4, buf, now, io),
            Some((id, Dir::Reply)) => self.forward(id, Dir::Reply, l4, buf, now, io),
            // Expectations first: a passive data connection may go to a VIP port that is also
            // a service, and an active one comes from a server.
            None => match self.claim(&l4, now) {
                Some(e) => self.new_data_flow(e, l4, buf, now, io),
                None => self.miss(l4, buf, now, io),
            },
        }
    }

    /// Send the slow path what it has to know; what meets a full ring waits for the next poll.
    fn flush_notices(&mut self, io: &mut impl Io<B>) {
        let Some(ftp) = self.ftp.as_mut() else {
            return;
        };
        while let Some(n) = ftp.next_notice() {
            let msg = match n {
                Notice::Closed(k) => SlowMsg::Closed(k),
                Notice::Released(laddr, lport) => SlowMsg::Released { laddr, lport },
            };
            if io.slow_path(msg).is_err() {
                return;
            }
            ftp.notice_sent();
        }
    }

    #[inline(always)]
    fn parse_l4(
        frame: &[u8],
        in_port: u16,
        proto: u8,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<L4, DropReason> {
        let ip = frame.get(ETH_LEN..).ok_or(DropReason::Truncated)?;
        let ip = Ipv4Packet::new_checked(ip).map_err(|_| DropReason::BadIpHeader)?;
        let seg = ip.payload();
        let len = frame.len();
        let (sport, dport, seen) = if proto == ipproto::TCP {
            let t = TcpPacket::new_checked(seg).map_err(|e| match e {
                crate::wire::Error::Truncated => DropReason::Truncated,
                _ => DropReason::BadL4Header,
            })?;
            (
                t.src_port(),
                t.dst_port(),
                Seen {
                    syn: t.syn(),
                    ack: t.ack(),
                    fin: t.fin(),
                    rst: t.rst(),
                },
            )
        } else {
            let u = UdpPacket::new_checked(seg).map_err(|e| match e {
                crate::wire::Error::Truncated => DropReason::Truncated,
                _ => DropReason::BadL4Header,
            })?;
            (u.src_port(), u.dst_port(), Seen::default())
        };
        Ok(L4 {
            key: FlowKey {
                src,
                dst,
                sport,
                dport,
                proto,
            },
            seen,
            len,
            in_port,
            made_flow: false,
        })
    }

    /// Forward a frame of flow `id` in direction `dir`: track its TCP state (unless the frame
    /// made the flow), rewrite it for the forwarding method, count it, and send it on (or to
    /// the slow path, or behind a control frame of its host pair).
    fn forward(
        &mut self,
        id: ConnId,
        dir: Dir,
        l4: L4,
        mut buf: B,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let Some(c) = self.flows.get(id) else {
            return self.drop_buf(io, buf, DropReason::NoService);
        };
        let (proto, service, dest, ftp) = (c.proto, c.service, c.dest, c.ftp);
        // The control connection's identity for the slow path (its SYNs carry no data and
        // precede any rewrite: they take the normal path, neighbour resolution included).
        // Built only for control connections: every other packet skips it.
        let ctl = if ftp == FTP_CONTROL && !l4.seen.syn {
            Some(CtlMeta {
                key: CtlKey {
                    worker: self.worker,
                    client: c.client,
                    cport: c.cport,
                    vip: c.vip,
                    vport: c.vport,
                },
                conn: id.0,
                dir,
                service: c.service,
                dest: c.dest,
                method: ForwardMethod::Nat,
                server: c.server,
                sport: c.sport,
                laddr: c.laddr,
            })
        } else {
            None
        };
        if self.services.must_expire(dest) {
            // Its server was removed from a service with expire_removed: end the flow now.
            self.end_flow(id);
            return self.drop_buf(io, buf, DropReason::ServerRemoved);
        }
        let method = self
            .services
            .get(service)
            .map_or(ForwardMethod::Nat, |s| s.forward);
        let input_only = matches!(method, ForwardMethod::Dr | ForwardMethod::Tun);
        // Full NAT rewrites the other end too: towards the server the source becomes the local
        // address and port; back towards the client the destination becomes the client again.
        let other = match dir {
            Dir::Original => (c.laddr, c.lport),
            Dir::Reply => (c.client, c.cport),
        };
        let (end, addr, port, to) = match dir {
            Dir::Original => (End::Dst, c.server, c.sport, c.server),
            Dir::Reply => (End::Src, c.vip, c.vport, c.client),
        };
        if input_only && dir == Dir::Reply {
            // DR/TUN servers must answer clients directly; a reply routed through rvs means
            // a server's routing is wrong. Counted so an operator can see it.
            return self.drop_buf(io, buf, DropReason::UnexpectedReply);
        }
        if let Err(r) =
            self.transmit_prepare(method, &mut buf, (end, addr, port), other, l4.in_port)
        {
            if let Some((in_port, mtu)) = self.pending_frag_needed.take() {
                self.send_frag_needed(io, &buf, in_port, mtu);
            }
            return self.drop_buf(io, buf, r);
        } // Only a packet that will be forwarded moves the flow's state and refreshes it.
        let (was, state) = match self.flows.get_mut(id) {
            Some(c) if !l4.made_flow && proto == ipproto::TCP => {
                let was = c.state;
                c.state = c.state.next(direction(dir, input_only), l4.seen);
                (was, c.state)
            }
            Some(c) => (c.state, c.state),
            None => (TcpState::Close, TcpState::Close),
        };
        if was.is_active() != state.is_active() {
            self.services.set_active(service, dest, state.is_active());
        }
        let expires = now + self.timeout(proto, state);
        self.flows.set_expiry(id, expires);
        if ftp == FTP_DATA {
            self.hold_master(id, expires);
        }
        let bytes = l4.len as u64;
        let (c_pkts, c_bytes, lb_pkts, lb_bytes) = match dir {
            Dir::Original => (
                Counter::PacketsIn,
                bytes,
                LbCounter::PacketsIn,
                LbCounter::BytesIn,
            ),
            Dir::Reply => (
                Counter::PacketsOut,
                bytes,
                LbCounter::PacketsOut,
                LbCounter::BytesOut,
            ),
        };
        self.bump(c_pkts, 1);
        let (s, d) = (usize::from(service), usize::from(dest));
        self.counters.add(self.layout.service(s, lb_pkts), 1);
        self.counters.add(self.layout.service(s, lb_bytes), c_bytes);
        self.counters.add(self.layout.server(d, lb_pkts), 1);
        self.counters.add(self.layout.server(d, lb_bytes), c_bytes);
        match ctl {
            Some(meta) => {
                let pair = (meta.key.client, meta.server);
                self.route_to_slow_path(pair, to, buf, CtlMeta { method, ..meta }, io)
            }
            // Some control frame is at the slow path: this frame may have to wait behind it.
            None if !self.order.is_empty() => self.route_in_order(id, to, buf, now, io),
            None => self.route_out(to, buf, now, io),
        }
    }

    /// [`Self::route_out`] for a frame of flow `id` while control frames are at the slow path:
    /// a frame of their client and server waits behind them (`worker::order`). Out of line:
    /// the common path pays one branch for it.
    #[inline(never)]
    fn route_in_order(
        &mut self,
        id: ConnId,
        to: Ipv4Addr,
        buf: B,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let Some(pair) = self.flows.get(id).map(|c| (c.client, c.server)) else {
            return self.route_out(to, buf, now, io);
        };
        // A frame counts as early as it may have come: before any control frame that did
        // not surely come before it.
        match self.order.place(pair, self.window.0, to, buf) {
            Placed::Go(b) => self.route_out(to, b, now, io),
            Placed::Held => self.bump(Counter::OrderHeld, 1),
            Placed::Full(b) => self.drop_buf(io, b, DropReason::OrderHoldFull),
        }
    }

    /// Route a control frame like [`Self::route_out`], but give it to the slow path instead of
    /// sending it. Its neighbour must be known: a frame that waited in the neighbour queue
    /// would bypass the slow path, so it is dropped (TCP resends it) while ARP resolves.
    fn route_to_slow_path(
        &mut self,
        pair: HostPair,
        dst: Ipv4Addr,
        mut buf: B,
        meta: CtlMeta,
        io: &mut impl Io<B>,
    ) {
        if self.order.is_full() {
            // No room to remember it is out: its answer could not be ordered.
            return self.drop_buf(io, buf, DropReason::OrderHoldFull);
        }
        let Some((port, hop)) = self.routes.next_hop(dst) else {
            return self.drop_buf(io, buf, DropReason::NoRoute);
        };
        let (Some(mac), Some(me)) = (self.neigh.mac(port, hop), self.ports.get(usize::from(port)))
        else {
            self.arp_request(io, port, hop);
            return self.drop_buf(io, buf, DropReason::FtpNeighUnresolved);
        };
        let mut f = EthernetFrame::new_unchecked(buf.data_mut());
        f.set_dst_addr(mac);
        f.set_src_addr(me.mac);
        match io.slow_path(SlowMsg::Packet { port, buf, meta }) {
            Ok(()) => {
                // Room was checked above.
                // A control frame counts as late as it may have come.
                self.order.sent_out(pair, self.window.1);
                self.bump(Counter::SlowPathOut, 1)
            }
            Err(SlowMsg::Packet { buf, .. }) => {
                self.counters.add(
                    self.layout
                        .ftp(usize::from(meta.service), FtpCounter::RingDrops),
                    1,
                );
                self.drop_buf(io, buf, DropReason::SlowPathFull)
            }
            Err(_) => self.counters.add(Layout::drop(DropReason::SlowPathFull), 1),
        }
    }

    /// Route a rewritten frame towards `dst` and hand it to the neighbour layer.
    fn route_out(&mut self, dst: Ipv4Addr, buf: B, now: Instant, io: &mut impl Io<B>) {
        let Some((port, hop)) = self.routes.next_hop(dst) else {
            return self.drop_buf(io, buf, DropReason::NoRoute);
        };
        match self.neigh.resolve(port, hop, buf, now) {
            Resolve::Ready { mac, buf, refresh } => {
                if refresh {
                    self.arp_request(io, port, hop);
                }
                self.send_to(io, port, mac, buf);
            }
            Resolve::Queued { request } => {
                if request {
                    self.arp_request(io, port, hop);
                }
            }
            Resolve::Dropped(b, r) => self.drop_buf(io, b, r),
        }
    }

    /// Rewrite (NAT), TTL-decrement and size-check (DR), or encapsulate (TUN) a frame for its
    /// forwarding method. On `TooBig` with DF set, a "fragmentation needed" goes back to the
    /// client out of `in_port`; rvs never fragments.
    fn transmit_prepare(
        &mut self,
        method: ForwardMethod,
        buf: &mut B,
        (end, addr, port): (End, Ipv4Addr, u16),
        other: (Ipv4Addr, u16),
        in_port: u16,
    ) -> Result<(), DropReason> {
        // The out port matters only to DR/TUN (MTU, tunnel source); NAT pays no route lookup
        // here (route_out does the one it needs).
        let out = |me: &Self| {
            me.routes
                .next_hop(addr)
                .and_then(|(p, _)| me.ports.get(usize::from(p)).copied())
        };
        let ip = buf
            .data_mut()
            .get_mut(ETH_LEN..)
            .ok_or(DropReason::Truncated)?;
        let too_big = match method {
            ForwardMethod::Nat | ForwardMethod::Fnat => {
                let done = if method == ForwardMethod::Nat {
                    nat::rewrite(ip, end, addr, port)
                } else if end == End::Dst {
                    nat::rewrite_both(ip, other, (addr, port))
                } else {
                    nat::rewrite_both(ip, (addr, port), other)
                };
                return done.map_err(|e| match e {
                    RewriteError::TtlExceeded => DropReason::TtlExceeded,
                    RewriteError::Malformed => DropReason::BadL4Header,
                });
            }
            ForwardMethod::Dr => {
                let out = out(self).ok_or(DropReason::NoRoute)?;
                // As modern IPVS does: a director is a router hop, even when only the MAC changes.
                dr::decrement_ttl(ip).map_err(|_| DropReason::TtlExceeded)?;
                match dr::check(ip, out.mtu) {
                    Ok(()) => return Ok(()),
                    Err(dr::DrError::TooBig { mtu }) => mtu,
                    Err(_) => return Err(DropReason::BadIpHeader),
                }
            }
            ForwardMethod::Tun => {
                let out = out(self).ok_or(DropReason::NoRoute)?;
                dr::decrement_ttl(ip).map_err(|_| DropReason::TtlExceeded)?;
                self.ident = self.ident.wrapping_add(1);
                match tun::encapsulate(buf, ETH_LEN, out.addr, addr, self.ident, out.mtu) {
                    Ok(()) => return Ok(()),
                    Err(tun::TunError::TooBig { mtu }) => mtu,
                    Err(tun::TunError::NoHeadroom) => return Err(DropReason::NoBuffer),
                    Err(_) => return Err(DropReason::BadIpHeader),
                }
            }
        };
        let df = buf
            .data()
            .get(ETH_LEN..)
            .map(Ipv4Packet::new_unchecked)
            .is_some_and(|ip| ip.dont_frag());
        if df {
            self.pending_frag_needed = Some((in_port, too_big));
        }
        Err(DropReason::TooBig)
    }
}
