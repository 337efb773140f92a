//! Counters: named per-worker counters, drop reasons, per-service and per-server blocks, and
//! their lock-free publication to the control thread.
//!
//! A worker owns plain `u64` counters and bumps them without atomics. Every publish interval it
//! copies them into its own [`SharedBlock`] of `AtomicU64`s with relaxed stores: one writer per
//! slot, so there is no read-modify-write and no cache-line ping-pong on the packet path. The
//! control thread sums the blocks of all workers when it prints. A reader may see a block that is
//! a few milliseconds old; totals are exact once the workers have stopped and published a last
//! time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Declares a counter enum with `COUNT`, `ALL` and stable snake_case names.
macro_rules! named_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var,)* }
        impl $name {
            /// Every variant, in declaration order (the index of a variant is its position).
            pub const ALL: &'static [$name] = &[$($name::$var,)*];
            /// How many variants there are.
            pub const COUNT: usize = $name::ALL.len();
            /// Stable name for logs and status lines.
            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $s,)* }
            }
            /// Position in [`Self::ALL`].
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

named_enum! {
    /// Why the fast path dropped a packet. One counter each, per worker.
    pub enum DropReason {
        /// Shorter than a header, or than the length a header claims (e.g. IPv4 total length
        /// beyond the end of the frame).
        Truncated => "truncated",
        /// IPv4 version not 4, header length below 20, or total length below the header length.
        BadIpHeader => "bad_ip_header",
        /// IPv4 header checksum wrong.
        BadIpChecksum => "bad_ip_checksum",
        /// TCP data offset or UDP length inconsistent with the datagram.
        BadL4Header => "bad_l4_header",
        /// An IPv4 fragment: rvs does not reassemble (see worker/pipeline.rs).
        Fragment => "fragment",
        /// An 802.1Q-tagged frame: ports are untagged.
        Vlan => "vlan",
        /// An ethertype rvs does not handle (IPv6, LLDP, ...).
        EtherType => "ethertype",
        /// Unicast frame for another MAC address (ports run promiscuous on some vdevs).
        OtherMac => "other_mac",
        /// ARP that needs no answer from us (a request for someone else, a malformed body).
        ArpIgnored => "arp_ignored",
        /// TTL would reach zero.
        TtlExceeded => "ttl_exceeded",
        /// Addressed to one of our own addresses but not something we answer.
        LocalUnhandled => "local_unhandled",
        /// ICMP message that quotes no tracked flow, or a type we do not forward.
        IcmpUnhandled => "icmp_unhandled",
        /// Not for a VIP and not the reply of a tracked flow.
        NoService => "no_service",
        /// TCP segment without SYN for a VIP with no flow (IPVS does the same).
        NotSyn => "not_syn",
        /// The service has no server that may take a new connection.
        NoServer => "no_server",
        /// The flow table is full.
        FlowTableFull => "flow_table_full",
        /// The new flow's reply key belongs to another flow (same client port to the same
        /// server through two VIPs: replies would be ambiguous).
        FlowConflict => "flow_conflict",
        /// No route to the destination.
        NoRoute => "no_route",
        /// The neighbour's resolution queue (or the global one) is full.
        NeighQueueFull => "neigh_queue_full",
        /// The neighbour did not answer ARP after all retries.
        NeighUnresolved => "neigh_unresolved",
        /// The flow's server was removed by a reload from a service with `expire_removed`.
        ServerRemoved => "server_removed",
        /// No mbuf to build a generated packet (ARP request).
        NoBuffer => "no_buffer",
        /// Too big for the outgoing MTU (DR, or TUN with its 20-byte header); rvs never
        /// fragments. With DF set, a "fragmentation needed" went back to the client.
        TooBig => "too_big",
        /// A server's reply came through rvs for a DR/TUN flow (servers must answer directly).
        UnexpectedReply => "unexpected_reply",
        /// Full NAT: no local port left that this worker may use (add local addresses).
        NoLocalPort => "no_local_port",
        /// The owning worker's handover queue was full.
        HandoverFull => "handover_full",
        /// The TX queue did not take the packet.
        TxFull => "tx_full",
        /// A multi-segment mbuf (cannot happen at the configured MTU).
        MultiSegment => "multi_segment",
        /// An FTP control frame met a full ring to the slow path.
        SlowPathFull => "slowpath_full",
        /// An FTP control frame whose next hop is not resolved (TCP resends it).
        FtpNeighUnresolved => "ftp_neigh_unresolved",
        /// An FTP control segment beyond a gap in the stream (TCP resends it in order).
        FtpOutOfOrder => "ftp_out_of_order",
        /// An FTP control segment that only held the start of a line to rewrite (resent whole).
        FtpHeldBack => "ftp_held_back",
        /// An FTP control segment whose sequence numbers cannot be adjusted (it starts inside
        /// a rewritten range, or is older than the adjustments remembered).
        FtpSeqUnmappable => "ftp_seq_unmappable",
        /// A frame that had to wait behind an FTP control frame at the slow path (to keep its
        /// host pair in order) met a full hold queue (TCP resends it).
        OrderHoldFull => "order_hold_full",
    }
}

named_enum! {
    /// Per-worker event counters other than drops.
    pub enum Counter {
        RxPackets => "rx_packets",
        RxBytes => "rx_bytes",
        TxPackets => "tx_packets",
        TxBytes => "tx_bytes",
        ArpRepliesSent => "arp_replies_sent",
        ArpRequestsSent => "arp_requests_sent",
        GratuitousArpSent => "garp_sent",
        /// Neighbour resolutions that released held packets.
        NeighResolved => "neigh_resolved",
        /// ARP frames used up without an answer: replies to our requests, gratuitous ARP.
        ArpConsumed => "arp_consumed",
        IcmpEchoReplies => "icmp_echo_replies",
        FlowsCreated => "flows_created",
        FlowsExpired => "flows_expired",
        FlowsActive => "flows_active",
        PacketsIn => "nat_in_packets",
        PacketsOut => "nat_out_packets",
        /// ICMP errors about a NAT flow, translated and sent to the other side.
        IcmpErrorsTranslated => "icmp_errors_translated",
        /// "Fragmentation needed" sent to clients for datagrams too big for DR/TUN.
        FragNeededSent => "frag_needed_sent",
        /// Frames handed to the worker that owns their flow.
        HandoverOut => "handover_out",
        /// Frames received from other workers.
        HandoverIn => "handover_in",
        /// FTP control frames given to the slow path.
        SlowPathOut => "slowpath_out",
        /// Frames the slow path passed on, back to the worker that gave them (whose
        /// `tx_packets`/`tx_full` say what became of them).
        SlowPathTx => "slowpath_tx",
        /// Frames that waited behind an FTP control frame of their host pair while it was at
        /// the slow path, so that the pair's frames leave in order.
        OrderHeld => "order_held",
        /// FTP control frames that left without every worker's watermark, after waiting the
        /// limit (a worker that did not empty its queues for that long): their order with
        /// frames still in that worker's queue was not assured.
        OrderForced => "order_forced",
        /// Answers from the slow path with no control frame waiting for them (a bug if ever
        /// seen; nothing is sent out of order for it).
        SlowPathUnexpected => "slowpath_unexpected",
        /// FTP data connections made from expectations.
        FtpDataFlows => "ftp_data_flows",
    }
}

named_enum! {
/// Counters kept per virtual service and per real server.
pub enum LbCounter {
    Connections => "conns",
    PacketsIn => "pkts_in",
    PacketsOut => "pkts_out",
    BytesIn => "bytes_in",
            BytesOut => "bytes_out",
    /// Gauge: live connections counted active (IPVS's ActiveConn).
    ActiveConns => "active_conns",
    /// Gauge: live connections opening or closing (IPVS's InActConn).
    InactiveConns => "inactive_conns",
}}

named_enum! {
/// Per-service FTP helper counters (zero for services without the helper).
pub enum FtpCounter {
    /// PORT, EPRT, PASV, EPSV and AUTH commands parsed.
    Commands => "ftp_commands",
    /// 227, 229 and 234 replies parsed.
    Replies => "ftp_replies",
    /// Addresses rewritten in the control stream.
    Rewrites => "ftp_rewrites",
    /// Passive data connections given another VIP port than the server's (the client already
    /// expected that one from another session).
    PortsTranslated => "ftp_ports_translated",
    /// Expectations published.
    ExpectCreated => "ftp_expect_created",
    /// Expectations that became a data connection.
    ExpectUsed => "ftp_expect_used",
    /// Expectations that lapsed unused.
    ExpectExpired => "ftp_expect_expired",
    /// Expectations withdrawn because their control connection ended.
    ExpectRevoked => "ftp_expect_revoked",
    /// Refused: the PORT/EPRT address is not the control connection's client.
    RefusedAddress => "ftp_refused_address",
    /// Refused: a data port below 1024.
    RefusedLowPort => "ftp_refused_low_port",
    /// Refused: a 227 naming another host than the connection's real server.
    RefusedServer => "ftp_refused_server",
    /// Refused: EPRT for another address family than IPv4.
    RefusedFamily => "ftp_refused_family",
    /// Refused: active mode is off for the service.
    RefusedActiveOff => "ftp_refused_active_off",
    /// Refused: passive mode is off for the service.
    RefusedPassiveOff => "ftp_refused_passive_off",
    /// Refused: the control connection holds its maximum of live expectations.
    RefusedConnCap => "ftp_refused_conn_cap",
    /// Refused: the expectation table (or the active-mode local ports) is full.
    RefusedTableFull => "ftp_refused_table_full",
    /// Refused: a PORT/EPRT/227/229 line that does not parse.
    RefusedMalformed => "ftp_refused_malformed",
    /// Lines longer than the per-connection buffer, discarded to their end.
    LinesTooLong => "ftp_lines_too_long",
    /// Connections that switched to TLS (AUTH): no longer parsed, affinity only.
    TlsFallbacks => "ftp_tls_fallbacks",
    /// Control packets dropped because the worker's ring to the slow path was full.
    RingDrops => "ftp_ring_drops",
    /// Control connections tracked by the slow path (gauge).
    ControlConns => "ftp_control_conns",
}}

/// A worker's own counters: plain integers, bumped on the packet path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBlock {
    values: Vec<u64>,
}

impl LocalBlock {
    /// A block of `len` zeroed counters.
    pub fn new(len: usize) -> Self {
        LocalBlock {
            values: vec![0; len],
        }
    }
    /// Add `n` to counter `i` (ignored when out of range: counting never panics).
    #[inline]
    pub fn add(&mut self, i: usize, n: u64) {
        if let Some(v) = self.values.get_mut(i) {
            *v = v.wrapping_add(n);
        }
    }
    /// Set counter `i` (for gauges such as active flows).
    #[inline]
    pub fn set(&mut self, i: usize, n: u64) {
        if let Some(v) = self.values.get_mut(i) {
            *v = n;
        }
    }
    /// Read counter `i` (0 when out of range).
    pub fn get(&self, i: usize) -> u64 {
        self.values.get(i).copied().unwrap_or(0)
    }
    /// Number of counters.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// True when the block has no counters.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The published copy of one worker's [`LocalBlock`]; one writer, any number of readers.
#[derive(Debug)]
pub struct SharedBlock {
    values: Vec<AtomicU64>,
}

impl SharedBlock {
    /// A block of `len` zeroed counters.
    pub fn new(len: usize) -> Self {
        SharedBlock {
            values: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    /// Copy `local` in (relaxed stores; the owner is the only writer).
    pub fn publish(&self, local: &LocalBlock) {
        for (s, v) in self.values.iter().zip(local.values.iter()) {
            s.store(*v, Ordering::Relaxed);
        }
    }
    /// Add this block into `acc` (used to sum all workers).
    pub fn accumulate(&self, acc: &mut LocalBlock) {
        for (a, s) in acc.values.iter_mut().zip(self.values.iter()) {
            *a = a.wrapping_add(s.load(Ordering::Relaxed));
        }
    }
}

/// Layout of one worker's counter block: worker counters, drops, then per-service and
/// per-server [`LbCounter`] rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of services.
    pub services: usize,
    /// Number of real servers over all services.
    pub servers: usize,
}

impl Layout {
    /// The layout for a config's services and servers (what every worker's pipeline uses).
    pub fn of(cfg: &crate::config::Config) -> Layout {
        Layout {
            services: cfg.services.len(),
            servers: cfg.services.iter().map(|s| s.servers.len()).sum(),
        }
    }

    /// Total counters in a block with this layout.
    pub const fn len(&self) -> usize {
        Counter::COUNT
            + DropReason::COUNT
            + (self.services + self.servers) * LbCounter::COUNT
            + self.services * FtpCounter::COUNT
    }
    /// True when the layout holds no counters (never: the worker counters are always there).
    pub const fn is_empty(&self) -> bool {
        false
    }
    /// Index of a worker counter.
    pub const fn counter(c: Counter) -> usize {
        c.index()
    }
    /// Index of a drop counter.
    pub const fn drop(r: DropReason) -> usize {
        Counter::COUNT + r.index()
    }
    /// Index of a per-service counter.
    pub const fn service(&self, svc: usize, c: LbCounter) -> usize {
        Counter::COUNT + DropReason::COUNT + svc * LbCounter::COUNT + c.index()
    }
    /// Index of a per-server counter (`server` numbers all servers of all services).
    pub const fn server(&self, server: usize, c: LbCounter) -> usize {
        Counter::COUNT + DropReason::COUNT + (self.services + server) * LbCounter::COUNT + c.index()
    }
    /// Index of FTP counter `c` of service `svc`.
    pub const fn ftp(&self, svc: usize, c: FtpCounter) -> usize {
        Counter::COUNT
            + DropReason::COUNT
            + (self.services + self.servers) * LbCounter::COUNT
            + svc * FtpCounter::COUNT
            + c.index()
    }
}

/// Sum of every drop counter in a block.
pub fn total_drops(block: &LocalBlock) -> u64 {
    DropReason::ALL
        .iter()
        .map(|r| block.get(Layout::drop(*r)))
        .sum()
}

/// "reason=count" pairs of the non-zero drop counters, for status lines.
pub fn drops_summary(block: &LocalBlock) -> String {
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter_map(|r| {
            let n = block.get(Layout::drop(*r));
            (n > 0).then(|| format!("{}={}", r.name(), n))
        })
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_indices_are_disjoint_and_in_range() {
        let l = Layout {
            services: 2,
            servers: 3,
        };
        let mut seen = std::collections::HashSet::new();
        for c in Counter::ALL {
            assert!(seen.insert(Layout::counter(*c)));
        }
        for r in DropReason::ALL {
            assert!(seen.insert(Layout::drop(*r)));
        }
        for s in 0..2 {
            for c in LbCounter::ALL {
                assert!(seen.insert(l.service(s, *c)));
            }
        }
        for s in 0..3 {
            for c in LbCounter::ALL {
                assert!(seen.insert(l.server(s, *c)));
            }
        }
        for s in 0..2 {
            for c in FtpCounter::ALL {
                assert!(seen.insert(l.ftp(s, *c)));
            }
        }
        assert_eq!(seen.len(), l.len());
        assert!(seen.iter().all(|i| *i < l.len()));
    }

    #[test]
    fn publish_and_accumulate_sum_workers() {
        let l = Layout {
            services: 1,
            servers: 1,
        };
        let mut a = LocalBlock::new(l.len());
        let mut b = LocalBlock::new(l.len());
        a.add(Layout::drop(DropReason::Fragment), 2);
        b.add(Layout::drop(DropReason::Fragment), 3);
        b.add(Layout::counter(Counter::RxPackets), 7);
        let (sa, sb) = (SharedBlock::new(l.len()), SharedBlock::new(l.len()));
        sa.publish(&a);
        sb.publish(&b);
        let mut sum = LocalBlock::new(l.len());
        sa.accumulate(&mut sum);
        sb.accumulate(&mut sum);
        assert_eq!(sum.get(Layout::drop(DropReason::Fragment)), 5);
        assert_eq!(total_drops(&sum), 5);
        assert_eq!(drops_summary(&sum), "fragment=5");
        assert_eq!(sum.get(Layout::counter(Counter::RxPackets)), 7);
        a.add(10_000, 1); // out of range: ignored, no panic
        assert_eq!(a.get(10_000), 0);
    }
}
