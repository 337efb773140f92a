//! The pipeline's ARP room: answering requests for our addresses, learning neighbours from
//! what arrives, asking for the ones routes need, and announcing our addresses at start.
//!
//! Learning is limited to senders on the port's own subnets (not our own address, not
//! 0.0.0.0); an answer goes back out of the port the request came in on, built in place.

use super::*;

impl<B: PacketBuf> Pipeline<B> {
    /// Announce our addresses with gratuitous ARP (call once at start).
    pub fn start(&mut self, io: &mut impl Io<B>) {
        let mut owned: Vec<(u16, Ipv4Addr)> = self.owned.iter().copied().collect();
        owned.sort();
        for (port, ip) in owned {
            if self.send_arp_request(io, port, ip, ip) {
                self.bump(Counter::GratuitousArpSent, 1);
            }
        }
    }

    pub(super) fn arp_in(
        &mut self,
        port: u16,
        me: PortAddr,
        mut buf: B,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let parsed = buf
            .data()
            .get(ETH_LEN..)
            .and_then(|body| ArpPacket::new_checked(body).ok())
            .map(|a| {
                (
                    a.operation(),
                    a.sender_hw_addr(),
                    a.sender_ip(),
                    a.target_ip(),
                )
            });
        let Some((op, sha, spa, tpa)) = parsed else {
            return self.drop_buf(io, buf, DropReason::ArpIgnored);
        };
        let for_us = self.owned.contains(&(port, tpa));
        if self.routes.on_link(port, spa) && !spa.is_unspecified() && spa != me.addr {
            let waiting = self.neigh.learn(port, spa, sha, now, for_us);
            if !waiting.is_empty() {
                self.bump(Counter::NeighResolved, 1);
            }
            if for_us && self.sharding.workers() > 1 {
                // The answer to another worker's request may have landed here.
                io.neighbour_learned(port, spa, sha);
            }
            for b in waiting {
                self.send_to(io, port, sha, b);
            }
        }
        if op != arp_op::REQUEST || !for_us || spa == tpa {
            // Replies were consumed by learning; gratuitous ARP and requests for others need
            // nothing more.
            if op == arp_op::REPLY || spa == tpa {
                self.bump(Counter::ArpConsumed, 1);
                io.discard(buf);
                return;
            }
            return self.drop_buf(io, buf, DropReason::ArpIgnored);
        }
        // Answer in place.
        {
            let data = buf.data_mut();
            if let Some(body) = data.get_mut(ETH_LEN..) {
                let _ = wire_arp::emit(body, arp_op::REPLY, me.mac, tpa, sha, spa);
            }
        }
        self.bump(Counter::ArpRepliesSent, 1);
        self.send_to(io, port, sha, buf);
    }

    pub(super) fn send_to(&mut self, io: &mut impl Io<B>, port: u16, dst: MacAddr, mut buf: B) {
        let src = match self.ports.get(usize::from(port)) {
            Some(p) => p.mac,
            None => return self.drop_buf(io, buf, DropReason::NoRoute),
        };
        let mut f = EthernetFrame::new_unchecked(buf.data_mut());
        f.set_dst_addr(dst);
        f.set_src_addr(src);
        io.send(port, buf);
    }

    pub(super) fn arp_request(&mut self, io: &mut impl Io<B>, port: u16, target: Ipv4Addr) {
        let Some(me) = self.ports.get(usize::from(port)).copied() else {
            return;
        };
        if self.send_arp_request(io, port, me.addr, target) {
            self.bump(Counter::ArpRequestsSent, 1);
        }
    }

    /// Build and broadcast an ARP request from `port`, as `sender_ip`, for `target_ip` (the
    /// two are equal in a gratuitous ARP; replies are built in place from the request).
    /// Returns false (and counts) when no buffer.
    fn send_arp_request(
        &mut self,
        io: &mut impl Io<B>,
        port: u16,
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    ) -> bool {
        let Some(me) = self.ports.get(usize::from(port)).copied() else {
            return false;
        };
        let Some(mut b) = io.alloc() else {
            self.counters.add(Layout::drop(DropReason::NoBuffer), 1);
            return false;
        };
        b.truncate(0);
        if !b.append(MIN_FRAME) {
            self.drop_buf(io, b, DropReason::NoBuffer);
            return false;
        }
        let data = b.data_mut();
        data.fill(0);
        ethernet::emit_header(data, MacAddr::BROADCAST, me.mac, ethertype::ARP);
        if let Some(body) = data.get_mut(ETH_LEN..ARP_FRAME_LEN) {
            let _ = wire_arp::emit(
                body,
                arp_op::REQUEST,
                me.mac,
                sender_ip,
                MacAddr::ZERO,
                target_ip,
            );
        }
        io.send(port, b);
        true
    }
}
