//! FTP control connections as the slow path sees them: parse, police, rewrite, adjust, expect.
//!
//! Workers hand the slow path every packet of an FTP control connection (except the SYNs, which
//! carry no data and precede any change) *after* their own processing: the frame already has its
//! NAT rewrite and its Ethernet header. [`Helper::packet`] then, per direction:
//!
//! 1. feeds new in-order payload bytes to that direction's [`StreamParser`]; a segment that
//!    starts beyond the next expected byte (a gap) is dropped so that TCP retransmits it in order;
//! 2. where this direction is rewritten (the server's 227 in NAT and full NAT, the client's
//!    PORT/EPRT in full NAT), holds back the tail of a segment that ends inside a line which may
//!    need rewriting (the segment is cut at the line start, TCP retransmits the rest), so a
//!    rewritten line is always whole inside one segment;
//! 3. applies the policy to each event: PORT/EPRT must name the control connection's client,
//!    data ports below 1024 are refused, a 227 must name the connection's real server, active
//!    and passive can be switched off per service, and expectations are capped per connection
//!    and in total. A refusal is counted and the line goes through unchanged;
//! 4. records rewrites in the direction's [`ChangeLog`] and rebuilds the segment from it: the
//!    same log re-applies a rewrite to a retransmission and shifts sequence numbers, and the
//!    other direction's log maps acknowledgements and SACK blocks back;
//! 5. publishes [`Expectation`]s to the shared table.
//!
//! After `AUTH` is accepted (234; in DR/TUN, where replies are never seen, at the `AUTH`
//! itself) the connection is TLS: nothing more is parsed, earlier adjustments still apply, and
//! the service's affinity is what keeps data connections on the server.
//!
//! Limitations: IPv4 only (EPRT |2| is refused and counted); the control stream is parsed in
//! order only (out-of-order segments are dropped for retransmission, which costs a control
//! connection a round trip, never correctness).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;

use super::expect::{ExpectId, ExpectKind, Expectation, Expectations, Outcome};
use super::mangle;
use super::parse::{self, Event, Item, Side, StreamParser};
use super::seqadj::{ChangeLog, SeqError};
use crate::config::Config;
use crate::flow::Dir;
use crate::lb::laddr::FTP_ACTIVE_FIRST;
use crate::packet::PacketBuf;
use crate::stats::{DropReason, FtpCounter, Layout, LocalBlock};
use crate::time::Instant;
use crate::wire::{option_kind, tcp_options, Ipv4Packet, SeqNumber, TcpFlags, TcpPacket};
use crate::xmit::ForwardMethod;

const ETH_LEN: usize = 14;
/// VIP ports tried for a passive data connection before giving up.
const PORT_TRIES: u32 = 256;

/// Identifies a control connection across the worker/slow-path boundary: its worker and its
/// client-side addresses (unique within one worker's flow table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtlKey {
    /// The worker that owns the connection.
    pub worker: u16,
    /// Client address.
    pub client: Ipv4Addr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
}

/// What a worker tells the slow path about a control packet: the connection as the worker
/// holds it. Plain data, copied with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtlMeta {
    /// Which connection.
    pub key: CtlKey,
    /// The connection's slot in the worker's flow table (the data connections' master link).
    pub conn: u32,
    /// `Original`: client → server; `Reply`: server → client.
    pub dir: Dir,
    /// Service index.
    pub service: u16,
    /// Server (global index).
    pub dest: u16,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// The real server.
    pub server: Ipv4Addr,
    /// The real server's port.
    pub sport: u16,
    /// Full NAT: the local address the server sees.
    pub laddr: Ipv4Addr,
}

/// A service's FTP policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// PORT/EPRT allowed.
    pub active: bool,
    /// PASV/EPSV allowed.
    pub passive: bool,
    /// Live expectations per control connection.
    pub per_conn: u32,
    /// Lifetime of an unused expectation.
    pub timeout: Duration,
    /// The service keeps a client on one server (persistence): in DR/TUN a passive pin would
    /// add nothing.
    pub persistent: bool,
}

/// One direction of a control connection.
#[derive(Debug)]
struct Half {
    parser: StreamParser,
    log: ChangeLog,
    /// Original sequence number of the next byte to parse (None until the first segment).
    next: Option<SeqNumber>,
}

impl Half {
    fn new(side: Side) -> Half {
        Half {
            parser: StreamParser::new(side),
            log: ChangeLog::new(),
            next: None,
        }
    }
}

#[derive(Debug)]
struct CtlConn {
    service: u16,
    halves: [Half; 2],
    expects: Vec<ExpectId>,
    auth_pending: bool,
    tls: bool,
}

/// A live expectation as the slow path tracks it.
#[derive(Clone, Copy, Debug)]
struct Pending {
    id: ExpectId,
    owner: CtlKey,
    service: u16,
    expires: Instant,
    /// Full-NAT active mode: the local port it reserved.
    local: Option<(Ipv4Addr, u16)>,
}

/// A control segment as it arrived: where its payload starts, its TCP header length, sequence
/// and acknowledgement numbers, flags, and payload length.
#[derive(Clone, Copy, Debug)]
struct Segment {
    payload_at: usize,
    tcp_len: usize,
    seq: SeqNumber,
    ack: SeqNumber,
    flags: TcpFlags,
    len: usize,
}

/// The slow path's FTP state: every control connection, every live expectation, and the
/// full-NAT local ports reserved for active-mode data connections.
#[derive(Debug)]
pub struct Helper {
    /// Boxed: a connection is about 2 KB (two change logs), and inline values would make the
    /// table itself that big per bucket. A table of thousands of empty 2 KB buckets is touched
    /// a page at a time as connections land in new buckets, and keeps every page it ever
    /// touched; boxed, the table holds pointers and freed connections are reused by the next.
    conns: HashMap<CtlKey, Box<CtlConn>>,
    policies: Vec<Option<Policy>>,
    /// By global server index: the server names its passive ports (DR/TUN).
    ranged: Vec<bool>,
    expect: Arc<Expectations>,
    pending: Vec<Pending>,
    active_ports: ActivePorts,
    layout: Layout,
    counters: LocalBlock,
    items: Vec<Item>,
    delims: Vec<u8>,
    scratch: Vec<u8>,
}

/// Why a control packet could not be passed on.
pub type Verdict = Result<(), DropReason>;

impl Helper {
    /// The helper for a validated config, publishing into `expect`.
    pub fn new(cfg: &Config, expect: Arc<Expectations>) -> Helper {
        let layout = Layout::of(cfg);
        let laddrs: Vec<Ipv4Addr> = cfg
            .services
            .iter()
            .filter(|s| s.ftp.is_some() && s.forward == ForwardMethod::Fnat)
            .flat_map(|s| s.local_addresses.iter().copied())
            .collect();
        Helper {
            conns: HashMap::new(),
            policies: cfg
                .services
                .iter()
                .map(|s| {
                    s.ftp.as_ref().map(|f| Policy {
                        active: f.active,
                        passive: f.passive,
                        per_conn: f.max_expectations_per_connection,
                        timeout: Duration::from_secs(f.expectation_timeout),
                        persistent: s.persistence_timeout > 0,
                    })
                })
                .collect(),
            ranged: cfg
                .services
                .iter()
                .flat_map(|s| s.servers.iter().map(|r| r.passive_ports.is_some()))
                .collect(),
            expect,
            pending: Vec::new(),
            active_ports: ActivePorts::new(&laddrs, cfg.workers.count as u16),
            layout,
            counters: LocalBlock::new(layout.len()),
            items: Vec::new(),
            delims: Vec::new(),
            scratch: Vec::with_capacity(2048),
        }
    }

    /// The slow path's counters (FTP counters by service, and its drops).
    pub fn counters(&self) -> &LocalBlock {
        &self.counters
    }

    /// Control connections tracked.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn count(&mut self, service: u16, c: FtpCounter) {
        self.counters
            .add(self.layout.ftp(usize::from(service), c), 1);
    }

    /// Process one control frame in place (Ethernet header first). `Ok` means send it on.
    pub fn packet<B: PacketBuf>(&mut self, buf: &mut B, meta: &CtlMeta, now: Instant) -> Verdict {
        let r = self.packet_inner(buf, meta, now);
        if let Err(reason) = r {
            self.counters.add(Layout::drop(reason), 1);
        }
        r
    }

    fn packet_inner<B: PacketBuf>(&mut self, buf: &mut B, meta: &CtlMeta, now: Instant) -> Verdict {
        // TUN frames arrive encapsulated: the control segment is the inner datagram (TUN is
        // never rewritten, only read).
        let l3 = match buf
            .data()
            .get(ETH_LEN..)
            .and_then(|d| Ipv4Packet::new_checked(d).ok())
        {
            Some(outer) if outer.protocol() == crate::wire::ipproto::IPIP => {
                ETH_LEN + outer.header_len()
            }
            _ => ETH_LEN,
        };
        let (ihl, tcp_len, seq, ack, flags) = {
            let ip = buf
                .data()
                .get(l3..)
                .and_then(|d| Ipv4Packet::new_checked(d).ok())
                .ok_or(DropReason::BadIpHeader)?;
            let ihl = ip.header_len();
            let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| DropReason::BadL4Header)?;
            (
                ihl,
                tcp.header_len(),
                tcp.seq_number(),
                tcp.ack_number(),
                tcp.flags(),
            )
        };
        let payload_at = l3 + ihl + tcp_len;
        let len = buf.len().saturating_sub(payload_at);
        let d = usize::from(meta.dir == Dir::Reply);
        let rewrites = match meta.method {
            ForwardMethod::Nat => d == 1,
            ForwardMethod::Fnat => true,
            ForwardMethod::Dr | ForwardMethod::Tun => false,
        };
        let conn = self.conns.entry(meta.key).or_insert_with(|| {
            Box::new(CtlConn {
                service: meta.service,
                halves: [Half::new(Side::Client), Half::new(Side::Server)],
                expects: Vec::new(),
                auth_pending: false,
                tls: false,
            })
        });
        let half = conn.halves.get_mut(d).ok_or(DropReason::BadL4Header)?;
        if flags.contains(TcpFlags::SYN) {
            half.next = Some(seq + 1);
        }
        let next = *half.next.get_or_insert(seq);
        let mut cut = len;
        self.items.clear();
        if len > 0 && !half.parser.stopped() {
            let start_rel = seq - next;
            if start_rel > 0 {
                // A gap before this segment: parsing must stay in order. TCP resends it.
                return Err(DropReason::FtpOutOfOrder);
            }
            let skip = usize::try_from(start_rel.unsigned_abs()).unwrap_or(usize::MAX);
            if skip < len {
                let payload = buf.data().get(payload_at..).unwrap_or(&[]);
                let new = payload.get(skip..).unwrap_or(&[]);
                let tail_at = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let (lines, tail) = new.split_at(tail_at.min(new.len()));
                let off0 = half.parser.offset();
                let items = &mut self.items;
                half.parser.feed(lines, |it| items.push(it));
                // A pending partial line was already judged not to need a rewrite (or it
                // would have been held back), and longer input cannot change that verdict.
                let undecided = tail_at > 0 || half.parser.pending().is_empty();
                if !tail.is_empty() {
                    if rewrites && undecided && tail.len() < parse::MAX_LINE {
                        let mut probe = half.parser.clone();
                        probe.feed(tail, |it| items.push(it));
                        if probe.pending_could_need_rewrite() {
                            cut = skip + tail_at;
                        } else {
                            half.parser = probe;
                        }
                    } else {
                        half.parser.feed(tail, |it| items.push(it));
                    }
                }
                let fed = payload.get(skip..cut).unwrap_or(&[]);
                half.next = Some(seq + cut as i32);
                self.delims.clear();
                for it in &mut self.items {
                    // The first byte of the argument (EPRT's delimiter), when it is in this
                    // segment (a rewritten line always is).
                    let rel = it.arg.start.wrapping_sub(off0);
                    let first = usize::try_from(rel).ok().and_then(|r| fed.get(r)).copied();
                    self.delims.push(first.unwrap_or(b'|'));
                    // From here on the item's argument range is in original sequence numbers.
                    let at = |abs: u64| next + abs.wrapping_sub(off0) as i32;
                    it.arg = u64::from(at(it.arg.start).0)..u64::from(at(it.arg.end).0);
                }
            }
            if cut == 0 {
                return Err(DropReason::FtpHeldBack);
            }
        }
        let items = std::mem::take(&mut self.items);
        let delims = std::mem::take(&mut self.delims);
        for (it, delim) in items.iter().zip(delims.iter()) {
            self.event(meta, it, *delim, now);
        }
        self.items = items;
        self.delims = delims;
        let seg = Segment {
            payload_at,
            tcp_len,
            seq,
            ack,
            flags,
            len,
        };
        self.rebuild(buf, meta, d, &seg, cut)
    }

    /// Apply the policy to one parsed line.
    fn event(&mut self, meta: &CtlMeta, it: &Item, delim: u8, now: Instant) {
        let Some(policy) = self
            .policies
            .get(usize::from(meta.service))
            .copied()
            .flatten()
        else {
            return;
        };
        let svc = meta.service;
        let arg_seq = SeqNumber(it.arg.start as u32);
        let arg_len = it.arg.end.wrapping_sub(it.arg.start) as u32 as usize;
        let d = usize::from(meta.dir == Dir::Reply);
        let nat_like = matches!(meta.method, ForwardMethod::Nat | ForwardMethod::Fnat);
        match it.event {
            Event::Port { addr, port } | Event::Eprt { addr, port } => {
                self.count(svc, FtpCounter::Commands);
                if !policy.active {
                    return self.count(svc, FtpCounter::RefusedActiveOff);
                }
                if addr != meta.key.client {
                    return self.count(svc, FtpCounter::RefusedAddress);
                }
                if port < 1024 {
                    return self.count(svc, FtpCounter::RefusedLowPort);
                }
                match meta.method {
                    // The server connects to the client directly, from the VIP (it answers
                    // on the VIP), so the client's answer comes to rvs: send it to that server.
                    ForwardMethod::Dr | ForwardMethod::Tun => {
                        let e = self.expectation(meta, ExpectKind::ActiveReturn, now, policy);
                        let e = Expectation {
                            client_port: port,
                            ..e
                        };
                        self.publish(meta, e, None, policy, now);
                    }
                    ForwardMethod::Nat => {
                        let e = self.expectation(meta, ExpectKind::Active, now, policy);
                        let e = Expectation {
                            src: meta.server,
                            dst: meta.key.client,
                            dport: port,
                            client_port: port,
                            ..e
                        };
                        self.publish(meta, e, None, policy, now);
                    }
                    ForwardMethod::Fnat => {
                        if self.at_cap(meta, policy, now) {
                            return;
                        }
                        let Some(lport) = self.active_ports.alloc(meta.laddr, meta.key.worker)
                        else {
                            return self.count(svc, FtpCounter::RefusedTableFull);
                        };
                        let text = match it.event {
                            Event::Eprt { .. } => mangle::eprt_arg(delim, meta.laddr, lport),
                            _ => mangle::port_arg(meta.laddr, lport),
                        };
                        if !self.record(meta, d, arg_seq, arg_len, text.as_bytes()) {
                            self.active_ports.free(meta.laddr, lport);
                            return;
                        }
                        let e = self.expectation(meta, ExpectKind::Active, now, policy);
                        let e = Expectation {
                            src: meta.server,
                            dst: meta.laddr,
                            dport: lport,
                            client_port: port,
                            laddr: meta.laddr,
                            lport,
                            ..e
                        };
                        if !self.publish(meta, e, Some((meta.laddr, lport)), policy, now) {
                            self.active_ports.free(meta.laddr, lport);
                        }
                    }
                }
            }
            Event::EprtOtherFamily { .. } => {
                self.count(svc, FtpCounter::Commands);
                self.count(svc, FtpCounter::RefusedFamily);
            }
            Event::Pasv | Event::Epsv | Event::EpsvAll => {
                self.count(svc, FtpCounter::Commands);
                if nat_like || it.event == Event::EpsvAll {
                    // NAT: the server's reply names the port; that is where the work is.
                    return;
                }
                if !policy.passive {
                    return self.count(svc, FtpCounter::RefusedPassiveOff);
                }
                // DR/TUN never see the reply. When the server's passive ports name it, or
                // persistence keeps the client on it, the data connection finds it anyway (and
                // a pin of one session could be taken by another's data connection). Else pin
                // the client's next data connection to any port of the service to this
                // control connection's server.
                let named = self.ranged.get(usize::from(meta.dest)).copied() == Some(true);
                if named || policy.persistent {
                    return;
                }
                let e = self.expectation(meta, ExpectKind::Passive, now, policy);
                self.publish(meta, e, None, policy, now);
            }
            Event::Auth => {
                self.count(svc, FtpCounter::Commands);
                if nat_like {
                    if let Some(c) = self.conns.get_mut(&meta.key) {
                        c.auth_pending = true;
                    }
                } else {
                    self.tls(meta);
                }
            }
            Event::Reply227 { .. } | Event::Reply229 { .. } => {
                self.count(svc, FtpCounter::Replies);
                let (addr, port) = match it.event {
                    Event::Reply227 { addr, port } => (Some(addr), port),
                    Event::Reply229 { port } => (None, port),
                    _ => return,
                };
                if !policy.passive {
                    return self.count(svc, FtpCounter::RefusedPassiveOff);
                }
                if addr.is_some_and(|a| a != meta.server) {
                    return self.count(svc, FtpCounter::RefusedServer);
                }
                if port < 1024 {
                    return self.count(svc, FtpCounter::RefusedLowPort);
                }
                if self.at_cap(meta, policy, now) {
                    return;
                }
                // The client sees VIP:port. Another session of the same client, on another
                // server, may already expect that very port (each server picks its passive
                // ports on its own): then the client gets another VIP port, mapped back to the
                // server's (netfilter's FTP NAT does the same).
                let Some(vport) = self.free_vport(meta.key.client, meta.key.vip, port) else {
                    return self.count(svc, FtpCounter::RefusedTableFull);
                };
                let text = match addr {
                    Some(_) => Some(mangle::port_arg(meta.key.vip, vport)),
                    None if vport != port => Some(mangle::port_number_arg(vport)),
                    None => None,
                };
                if let Some(text) = text {
                    if !self.record(meta, d, arg_seq, arg_len, text.as_bytes()) {
                        return;
                    }
                }
                if vport != port {
                    self.count(svc, FtpCounter::PortsTranslated);
                }
                let e = self.expectation(meta, ExpectKind::Passive, now, policy);
                let e = Expectation {
                    dport: vport,
                    server_port: port,
                    ..e
                };
                self.publish(meta, e, None, policy, now);
            }
            Event::Reply234 => {
                self.count(svc, FtpCounter::Replies);
                if self.conns.get(&meta.key).is_some_and(|c| c.auth_pending) {
                    self.tls(meta);
                }
            }
            Event::Malformed { .. } => self.count(svc, FtpCounter::RefusedMalformed),
            Event::LineTooLong => self.count(svc, FtpCounter::LinesTooLong),
        }
    }

    fn tls(&mut self, meta: &CtlMeta) {
        if let Some(c) = self.conns.get_mut(&meta.key) {
            if !c.tls {
                c.tls = true;
                for h in &mut c.halves {
                    h.parser.stop();
                }
                self.count(meta.service, FtpCounter::TlsFallbacks);
            }
        }
    }

    fn record(&mut self, meta: &CtlMeta, d: usize, at: SeqNumber, len: usize, new: &[u8]) -> bool {
        let Some(h) = self
            .conns
            .get_mut(&meta.key)
            .and_then(|c| c.halves.get_mut(d))
        else {
            return false;
        };
        if h.log.record(at, len, new).is_ok() {
            self.count(meta.service, FtpCounter::Rewrites);
            true
        } else {
            // Out of order with an earlier rewrite (cannot happen for in-order parsing) or a
            // replacement too long to keep: the line goes through unchanged.
            false
        }
    }

    fn expectation(
        &self,
        meta: &CtlMeta,
        kind: ExpectKind,
        now: Instant,
        policy: Policy,
    ) -> Expectation {
        Expectation {
            src: meta.key.client,
            dst: meta.key.vip,
            dport: 0,
            kind,
            service: meta.service,
            dest: meta.dest,
            server: meta.server,
            server_port: 0,
            client: meta.key.client,
            client_port: 0,
            laddr: Ipv4Addr::UNSPECIFIED,
            lport: 0,
            master_worker: meta.key.worker,
            master: meta.conn,
            expires: now + policy.timeout,
        }
    }

    /// `port`, or the next port from 1024 up that no live expectation of `client` to `vip`
    /// names (bounded search; `None` when all of them are taken).
    fn free_vport(&self, client: Ipv4Addr, vip: Ipv4Addr, port: u16) -> Option<u16> {
        (0..PORT_TRIES)
            .map(|k| {
                let span = u32::from(u16::MAX) - 1024 + 1;
                let p = (u32::from(port).saturating_sub(1024) + k) % span + 1024;
                p as u16
            })
            .find(|p| !self.expect.is_expected(client, vip, *p))
    }

    /// True (and counted) when the control connection already holds its maximum of live
    /// expectations: checked before a rewrite, so a refused line goes through unchanged.
    /// Expectations a worker used since the last [`Helper::poll`] still count until they are
    /// reaped, so the connection's own are settled first: a client can open several data
    /// connections within one poll interval.
    fn at_cap(&mut self, meta: &CtlMeta, policy: Policy, now: Instant) -> bool {
        let held = |me: &Self| me.conns.get(&meta.key).map_or(0, |c| c.expects.len());
        if held(self) < policy.per_conn as usize {
            return false;
        }
        let mut i = 0;
        while let Some(p) = self.pending.get(i).copied() {
            if p.owner != meta.key || !self.settle(i, now) {
                i += 1;
            }
        }
        if held(self) >= policy.per_conn as usize {
            self.count(meta.service, FtpCounter::RefusedConnCap);
            return true;
        }
        false
    }

    fn publish(
        &mut self,
        meta: &CtlMeta,
        e: Expectation,
        local: Option<(Ipv4Addr, u16)>,
        policy: Policy,
        now: Instant,
    ) -> bool {
        if self.at_cap(meta, policy, now) {
            return false;
        }
        let Some(id) = self.expect.insert(&e) else {
            self.count(meta.service, FtpCounter::RefusedTableFull);
            return false;
        };
        if let Some(c) = self.conns.get_mut(&meta.key) {
            c.expects.push(id);
        }
        self.pending.push(Pending {
            id,
            owner: meta.key,
            service: meta.service,
            expires: e.expires,
            local,
        });
        self.count(meta.service, FtpCounter::ExpectCreated);
        true
    }

    /// Rebuild the frame: payload from the change log (and the hold-back cut), sequence number
    /// shifted, acknowledgement and SACK edges mapped back, lengths and checksums fixed.
    fn rebuild<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        meta: &CtlMeta,
        d: usize,
        seg: &Segment,
        cut: usize,
    ) -> Verdict {
        let Segment {
            payload_at,
            tcp_len,
            seq,
            ack,
            flags,
            len,
        } = *seg;
        let Some(conn) = self.conns.get(&meta.key) else {
            return Ok(());
        };
        let (Some(mine), Some(theirs)) = (conn.halves.get(d), conn.halves.get(1 - d)) else {
            return Ok(());
        };
        let ack_map = flags.contains(TcpFlags::ACK) && !theirs.log.is_empty();
        if mine.log.is_empty() && cut == len && !ack_map {
            return Ok(());
        }
        let unmappable = |_| DropReason::FtpSeqUnmappable;
        let mut cut = cut;
        if !mine.log.is_empty() && mine.log.map_seq(seq, cut) == Err(SeqError::Straddles) {
            // A resend that ends inside a rewritten range (the sender's segment size shrank):
            // send the bytes before it; the peer's ACK makes the next resend start there.
            cut = mine.log.clean_prefix_len(seq, cut).map_err(unmappable)?;
            if cut == 0 {
                return Err(DropReason::FtpSeqUnmappable);
            }
        }
        let new_seq = if mine.log.is_empty() {
            seq
        } else {
            mine.log.map_seq(seq, cut).map_err(unmappable)?
        };
        let new_ack = if ack_map {
            theirs.log.unmap_ack(ack).map_err(unmappable)?
        } else {
            ack
        };
        let payload = buf.data().get(payload_at..).unwrap_or(&[]);
        let original = payload.get(..cut).unwrap_or(&[]);
        self.scratch.clear();
        if mine.log.is_empty() {
            self.scratch.extend_from_slice(original);
        } else {
            mine.log
                .rewrite_payload(seq, original, &mut self.scratch)
                .map_err(unmappable)?;
        }
        // SACK edges, mapped back through the other direction's log.
        let mut sacks = [(0usize, SeqNumber(0), SeqNumber(0)); 4];
        let mut n_sacks = 0;
        if ack_map {
            let opts = buf
                .data()
                .get(payload_at.saturating_sub(tcp_len) + 20..payload_at)
                .unwrap_or(&[]);
            for o in tcp_options(opts) {
                if o.kind != option_kind::SACK {
                    continue;
                }
                for (k, blk) in o.data.chunks_exact(8).enumerate() {
                    let word = |r: std::ops::Range<usize>| {
                        blk.get(r)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map_or(0, u32::from_be_bytes)
                    };
                    let (l, r) = (SeqNumber(word(0..4)), SeqNumber(word(4..8)));
                    let (l, r) = match theirs.log.unmap_sack(l, r) {
                        Ok(Some(x)) => x,
                        // An empty block is ignored by the receiver of the ACK.
                        Ok(None) | Err(_) => (l, l),
                    };
                    if let Some(s) = sacks.get_mut(n_sacks) {
                        *s = (o.offset + 2 + 8 * k, l, r);
                        n_sacks += 1;
                    }
                }
            }
        }
        // Resize the frame to the new payload.
        let new_len = self.scratch.len();
        let old_total = payload_at + len;
        let new_total = payload_at + new_len;
        if new_total > old_total {
            if !buf.append(new_total - old_total) {
                return Err(DropReason::NoBuffer);
            }
        } else {
            buf.truncate(new_total);
        }
        let data = buf.data_mut();
        if let Some(p) = data.get_mut(payload_at..new_total) {
            p.copy_from_slice(&self.scratch);
        }
        let ip_bytes = data.get_mut(ETH_LEN..).ok_or(DropReason::Truncated)?;
        let mut ip = Ipv4Packet::new_unchecked(ip_bytes);
        ip.set_total_len((new_total - ETH_LEN) as u16);
        ip.fill_checksum();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let seg = ip.payload_mut();
        let mut tcp = TcpPacket::new_unchecked(seg);
        tcp.set_seq_number(new_seq);
        tcp.set_ack_number(new_ack);
        if cut < len {
            // What was held back is resent by TCP; so is its FIN.
            let mut f = tcp.flags();
            f.remove(TcpFlags::FIN);
            tcp.set_flags(f);
        }
        {
            let opts = tcp.options_mut();
            for (at, l, r) in sacks.iter().take(n_sacks) {
                if let Some(b) = opts.get_mut(*at..*at + 8) {
                    let mut edges = [0u8; 8];
                    edges[..4].copy_from_slice(&l.0.to_be_bytes());
                    edges[4..].copy_from_slice(&r.0.to_be_bytes());
                    b.copy_from_slice(&edges);
                }
            }
        }
        tcp.fill_checksum(src, dst);
        Ok(())
    }

    /// The worker ended control connection `key`: withdraw its expectations, forget it.
    pub fn closed(&mut self, key: CtlKey) {
        let Some(c) = self.conns.remove(&key) else {
            return;
        };
        for id in c.expects {
            let Some(i) = self.pending.iter().position(|p| p.id == id) else {
                continue;
            };
            let p = self.pending.swap_remove(i);
            match self.expect.revoke(id) {
                Outcome::Used => self.count(p.service, FtpCounter::ExpectUsed),
                _ => {
                    self.count(p.service, FtpCounter::ExpectRevoked);
                    if let Some((a, port)) = p.local {
                        self.active_ports.free(a, port);
                    }
                }
            }
        }
    }

    /// Reap `pending[i]` if a worker used it, expire it if it lapsed. True when it was removed
    /// (the entry at `i` is then another one).
    fn settle(&mut self, i: usize, now: Instant) -> bool {
        let Some(p) = self.pending.get(i).copied() else {
            return false;
        };
        let outcome = if p.expires <= now {
            match self.expect.revoke(p.id) {
                Outcome::Used => Outcome::Used,
                _ => {
                    self.count(p.service, FtpCounter::ExpectExpired);
                    Outcome::Gone
                }
            }
        } else {
            self.expect.poll(p.id)
        };
        match outcome {
            Outcome::Live => false,
            Outcome::Used | Outcome::Gone => {
                if outcome == Outcome::Used {
                    self.count(p.service, FtpCounter::ExpectUsed);
                } else if let Some((a, port)) = p.local {
                    self.active_ports.free(a, port);
                }
                if let Some(c) = self.conns.get_mut(&p.owner) {
                    c.expects.retain(|x| *x != p.id);
                }
                self.pending.swap_remove(i);
                true
            }
        }
    }

    /// A full-NAT active-mode data connection ended: its local port is free again.
    pub fn released(&mut self, laddr: Ipv4Addr, lport: u16) {
        self.active_ports.free(laddr, lport);
    }

    /// Timers: reap used expectations, expire lapsed ones. Cheap enough to call every few ms
    /// (it walks the live expectations only).
    pub fn poll(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if !self.settle(i, now) {
                i += 1;
            }
        }
        let mut by_service = vec![0u64; self.policies.len()];
        for p in self.conns.values().map(|c| c.service) {
            if let Some(x) = by_service.get_mut(usize::from(p)) {
                *x += 1;
            }
        }
        for (s, v) in by_service.iter().enumerate() {
            self.counters
                .set(self.layout.ftp(s, FtpCounter::ControlConns), *v);
        }
    }
}

/// Full-NAT local ports for active-mode data connections: the top of each local address's
/// port space (from [`FTP_ACTIVE_FIRST`]), which workers never allocate. A port `p` belongs to
/// worker `p % workers`: the server's connection to it is handed to the worker that holds the
/// control connection, wherever RSS puts it.
#[derive(Debug)]
pub struct ActivePorts {
    addrs: Vec<Ipv4Addr>,
    used: Vec<Vec<u64>>,
    cursor: Vec<u16>,
    workers: u16,
}

const ACTIVE_PORTS: usize = (u16::MAX - FTP_ACTIVE_FIRST) as usize + 1;

impl ActivePorts {
    /// A pool over `addrs` for `workers` workers.
    pub fn new(addrs: &[Ipv4Addr], workers: u16) -> ActivePorts {
        ActivePorts {
            addrs: addrs.to_vec(),
            used: addrs
                .iter()
                .map(|_| vec![0u64; ACTIVE_PORTS / 64])
                .collect(),
            cursor: addrs.iter().map(|_| 0).collect(),
            workers: workers.max(1),
        }
    }

    /// A free port on `laddr` owned by `worker`.
    pub fn alloc(&mut self, laddr: Ipv4Addr, worker: u16) -> Option<u16> {
        let a = self.addrs.iter().position(|x| *x == laddr)?;
        let (used, cursor) = (self.used.get_mut(a)?, self.cursor.get_mut(a)?);
        for _ in 0..ACTIVE_PORTS {
            *cursor = ((usize::from(*cursor) + 1) % ACTIVE_PORTS) as u16;
            let port = FTP_ACTIVE_FIRST + *cursor;
            if port % self.workers != worker {
                continue;
            }
            let (w, bit) = (usize::from(*cursor / 64), 1u64 << (*cursor % 64));
            if let Some(x) = used.get_mut(w) {
                if *x & bit == 0 {
                    *x |= bit;
                    return Some(port);
                }
            }
        }
        None
    }

    /// Give a port back (ignored when not ours or not in use).
    pub fn free(&mut self, laddr: Ipv4Addr, port: u16) {
        let Some(a) = self.addrs.iter().position(|x| *x == laddr) else {
            return;
        };
        let Some(i) = port.checked_sub(FTP_ACTIVE_FIRST) else {
            return;
        };
        if let Some(x) = self
            .used
            .get_mut(a)
            .and_then(|u| u.get_mut(usize::from(i / 64)))
        {
            *x &= !(1u64 << (i % 64));
        }
    }
}
