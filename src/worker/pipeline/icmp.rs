//! The pipeline's ICMP room: echo replies for our addresses and VIPs, the translation of ICMP
//! errors that quote a flow (to the other side of that flow, like IPVS), and the
//! "fragmentation needed" rvs sends for DR/TUN datagrams too big for the path.

use super::*;

impl<B: PacketBuf> Pipeline<B> {
    pub(super) fn icmp_in(
        &mut self,
        port: u16,
        mut buf: B,
        dst: Ipv4Addr,
        now: Instant,
        io: &mut impl Io<B>,
        handed: bool,
    ) {
        let quoted = buf.data().get(ETH_LEN..).map(xmit_icmp::quoted_flow);
        if let Some(Ok(q)) = quoted {
            return self.icmp_error(port, buf, q, now, io, handed);
        }
        if !self.local.contains(&dst) {
            return self.drop_buf(io, buf, DropReason::IcmpUnhandled);
        }
        let is_echo = {
            let Some(ip) = buf
                .data()
                .get(ETH_LEN..)
                .and_then(|d| Ipv4Packet::new_checked(d).ok())
            else {
                return self.drop_buf(io, buf, DropReason::BadIpHeader);
            };
            match Icmpv4Packet::new_checked(ip.payload()) {
                Ok(icmp) => icmp.msg_type() == icmp_type::ECHO_REQUEST && icmp.verify_checksum(),
                Err(_) => false,
            }
        };
        if !is_echo {
            return self.drop_buf(io, buf, DropReason::LocalUnhandled);
        }
        let src_mac = match EthernetFrame::new_checked(buf.data()) {
            Ok(f) => f.src_addr(),
            Err(_) => return self.drop_buf(io, buf, DropReason::Truncated),
        };
        if let Some(ipbytes) = buf.data_mut().get_mut(ETH_LEN..) {
            let mut ip = Ipv4Packet::new_unchecked(ipbytes);
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
            ip.set_ttl(64);
            ip.fill_checksum();
            let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(icmp_type::ECHO_REPLY);
            icmp.set_code(0);
            icmp.fill_checksum();
        }
        self.bump(Counter::IcmpEchoReplies, 1);
        // Answer the frame's sender directly: the client itself on-link, else its router.
        self.send_to(io, port, src_mac, buf);
    }

    /// An ICMP error quoting a NAT flow: translate it and send it to the other side.
    ///
    /// The error travels opposite to the datagram it quotes, so the quote's reversed key finds
    /// the flow: `Original` means an error from the client side about a reply rvs sent (goes to
    /// the server), `Reply` an error from the server side about a request rvs forwarded (goes to
    /// the client). The owner of the flow is the worker of the quote's client address.
    pub(super) fn icmp_error(
        &mut self,
        port: u16,
        mut buf: B,
        q: xmit_icmp::Quoted,
        now: Instant,
        io: &mut impl Io<B>,
        handed: bool,
    ) {
        if !handed && self.sharding.workers() > 1 {
            let owner = if self.services.is_vip(q.src) {
                self.sharding.owner(q.dst)
            } else if self.fnat_local.contains(&q.src) {
                // Quoting a full-NAT request (laddr -> server): owned like the reply it would
                // have drawn.
                self.sharding.owner_of_reply(q.dst, q.src, q.dport, q.sport)
            } else {
                self.sharding.owner(q.src)
            };
            if owner != self.worker {
                return match io.handover(owner, port, buf, self.window) {
                    Ok(()) => self.bump(Counter::HandoverOut, 1),
                    Err(b) => self.drop_buf(io, b, DropReason::HandoverFull),
                };
            }
        }
        let Some((id, dir)) = self.flows.lookup(&q.reversed_key()) else {
            return self.drop_buf(io, buf, DropReason::IcmpUnhandled);
        };
        let Some(c) = self.flows.get(id) else {
            return self.drop_buf(io, buf, DropReason::IcmpUnhandled);
        };
        let method = self
            .services
            .get(c.service)
            .map_or(ForwardMethod::Nat, |s| s.forward);
        match (method, dir) {
            (ForwardMethod::Nat, _) => {}
            (ForwardMethod::Dr | ForwardMethod::Tun, Dir::Original) => {
                // An error about a reply the server sent the client directly (addressed to the
                // VIP, which only rvs announces): forward it to the server as the flow's packets
                // go, untranslated, as IPVS does, so path MTU discovery works through DR/TUN.
                let server = c.server;
                if let Err(r) = self.transmit_prepare(
                    method,
                    &mut buf,
                    (End::Dst, server, 0),
                    (server, 0),
                    port,
                ) {
                    // Never answer an ICMP error with another (RFC 1122).
                    self.pending_frag_needed = None;
                    return self.drop_buf(io, buf, r);
                }
                self.bump(Counter::IcmpErrorsTranslated, 1);
                return self.route_out(server, buf, now, io);
            }
            (ForwardMethod::Fnat, _) => {
                // Full NAT: the server knows the flow as laddr:lport <-> server:sport, the client
                // as client:cport <-> VIP:vport. Both quoted ends and both outer ends change.
                let (outer, inner, to) = match dir {
                    // From the client side about a reply (VIP -> client): to the server, as if
                    // from the local address, quoting server -> laddr.
                    Dir::Original => (
                        [(End::Src, c.laddr), (End::Dst, c.server)],
                        [(End::Src, c.server, c.sport), (End::Dst, c.laddr, c.lport)],
                        c.server,
                    ),
                    // From the server side about a request (laddr -> server): to the client,
                    // from the VIP, quoting client -> VIP.
                    Dir::Reply => (
                        [(End::Src, c.vip), (End::Dst, c.client)],
                        [(End::Src, c.client, c.cport), (End::Dst, c.vip, c.vport)],
                        c.client,
                    ),
                };
                let Some(ip) = buf.data_mut().get_mut(ETH_LEN..) else {
                    return self.drop_buf(io, buf, DropReason::Truncated);
                };
                return match xmit_icmp::translate_ends(ip, &outer, &inner) {
                    Ok(()) => {
                        self.bump(Counter::IcmpErrorsTranslated, 1);
                        self.route_out(to, buf, now, io)
                    }
                    Err(xmit_icmp::QuoteError::TtlExceeded) => {
                        self.drop_buf(io, buf, DropReason::TtlExceeded)
                    }
                    Err(_) => self.drop_buf(io, buf, DropReason::IcmpUnhandled),
                };
            }
            // Errors from a DR/TUN server's side are the server's business (it talks to the
            // client directly).
            _ => return self.drop_buf(io, buf, DropReason::IcmpUnhandled),
        }
        let (outer, inner_end, addr, aport, to) = match dir {
            Dir::Original => (
                Some((End::Dst, c.server)),
                End::Src,
                c.server,
                c.sport,
                c.server,
            ),
            Dir::Reply => {
                // A router between rvs and the server keeps its own address as the source.
                let outer = (q.outer_src == c.server).then_some((End::Src, c.vip));
                (outer, End::Dst, c.vip, c.vport, c.client)
            }
        };
        let Some(ip) = buf.data_mut().get_mut(ETH_LEN..) else {
            return self.drop_buf(io, buf, DropReason::Truncated);
        };
        match xmit_icmp::translate(ip, outer, inner_end, addr, aport) {
            Ok(()) => {}
            Err(xmit_icmp::QuoteError::TtlExceeded) => {
                return self.drop_buf(io, buf, DropReason::TtlExceeded)
            }
            Err(_) => return self.drop_buf(io, buf, DropReason::IcmpUnhandled),
        }
        self.bump(Counter::IcmpErrorsTranslated, 1);
        self.route_out(to, buf, now, io);
    }

    /// Answer the frame in `buf` (about to be dropped as too big) with "fragmentation needed".
    pub(super) fn send_frag_needed(
        &mut self,
        io: &mut impl Io<B>,
        buf: &B,
        in_port: u16,
        mtu: u16,
    ) {
        // From the address the client sent to (the VIP), as IPVS does: the address its
        // connection is with, and certainly one it accepts ICMP from.
        let Some(from) = buf
            .data()
            .get(ETH_LEN..)
            .and_then(|d| Ipv4Packet::new_checked(d).ok())
            .map(|ip| ip.dst_addr())
        else {
            return;
        };
        let Some(mut out) = io.alloc() else {
            self.counters.add(Layout::drop(DropReason::NoBuffer), 1);
            return;
        };
        match tun::frag_needed(&mut out, buf.data(), ETH_LEN, from, mtu) {
            Ok(()) => {
                self.bump(Counter::FragNeededSent, 1);
                io.send(in_port, out);
            }
            // Suppressed (RFC 1122: never about broadcasts, fragments, ICMP errors) or no room.
            Err(_) => io.discard(out),
        }
    }
}
