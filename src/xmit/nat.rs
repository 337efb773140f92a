//! NAT (`ipvsadm -m`): the destination is rewritten to the real server on the way in, the source
//! back to the VIP on the way out. TTL is decremented as a router would.

use std::net::Ipv4Addr;

use crate::wire::{checksum, ipproto, Ipv4Packet, TcpPacket, UdpPacket};

/// Which end of the datagram to rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

/// Why a rewrite was not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// TTL was 1 or 0: the datagram must not be forwarded.
    TtlExceeded,
    /// The datagram is not a well-formed TCP or UDP datagram (cannot happen after the
    /// pipeline's checks; kept so the function is total).
    Malformed,
}

/// Rewrite one end's address and port of a TCP or UDP datagram in `ip` (starting at the IPv4
/// header), decrement its TTL, and patch the IP and L4 checksums.
pub fn rewrite(ip: &mut [u8], end: End, addr: Ipv4Addr, port: u16) -> Result<(), RewriteError> {
    rewrite_ends(ip, &[(end, addr, port)])
}

/// Rewrite both ends at once (full NAT), decrementing the TTL once.
pub fn rewrite_both(
    ip: &mut [u8],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
) -> Result<(), RewriteError> {
    rewrite_ends(ip, &[(End::Src, src.0, src.1), (End::Dst, dst.0, dst.1)])
}

fn rewrite_ends(ip: &mut [u8], ends: &[(End, Ipv4Addr, u16)]) -> Result<(), RewriteError> {
    let mut pkt = Ipv4Packet::new_checked(ip).map_err(|_| RewriteError::Malformed)?;
    let ttl = pkt.ttl();
    if ttl <= 1 {
        return Err(RewriteError::TtlExceeded);
    }
    let proto = pkt.protocol();
    if proto != ipproto::TCP && proto != ipproto::UDP {
        return Err(RewriteError::Malformed);
    }
    // TTL shares a 16-bit word with the protocol.
    let mut ck = checksum::update16(
        pkt.checksum(),
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([ttl - 1, proto]),
    );
    pkt.set_ttl(ttl - 1);
    for (end, addr, port) in ends.iter().copied() {
        let old_addr = match end {
            End::Src => pkt.src_addr(),
            End::Dst => pkt.dst_addr(),
        };
        ck = checksum::update_addr(ck, old_addr, addr);
        match end {
            End::Src => pkt.set_src_addr(addr),
            End::Dst => pkt.set_dst_addr(addr),
        }
        rewrite_l4(pkt.payload_mut(), proto, end, old_addr, addr, port)?;
    }
    pkt.set_checksum(ck);
    Ok(())
}

/// Patch one end's port and the pseudo-header address in a TCP or UDP header.
fn rewrite_l4(
    l4: &mut [u8],
    proto: u8,
    end: End,
    old_addr: Ipv4Addr,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(), RewriteError> {
    if proto == ipproto::TCP {
        let mut tcp = TcpPacket::new_checked(l4).map_err(|_| RewriteError::Malformed)?;
        let old_port = match end {
            End::Src => tcp.src_port(),
            End::Dst => tcp.dst_port(),
        };
        let mut ck = checksum::update_addr(tcp.checksum(), old_addr, addr);
        ck = checksum::update16(ck, old_port, port);
        match end {
            End::Src => tcp.set_src_port(port),
            End::Dst => tcp.set_dst_port(port),
        }
        tcp.set_checksum(ck);
        return Ok(());
    }
    let mut udp = UdpPacket::new_checked(l4).map_err(|_| RewriteError::Malformed)?;
    let old_port = match end {
        End::Src => udp.src_port(),
        End::Dst => udp.dst_port(),
    };
    match end {
        End::Src => udp.set_src_port(port),
        End::Dst => udp.set_dst_port(port),
    }
    // A zero UDP checksum means "none" and stays zero; a computed zero is sent as 0xffff.
    let old_ck = udp.checksum();
    if old_ck != 0 {
        let mut ck = checksum::update_addr(old_ck, old_addr, addr);
        ck = checksum::update16(ck, old_port, port);
        udp.set_checksum(if ck == 0 { 0xffff } else { ck });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    fn tcp_datagram() -> Vec<u8> {
        let b = PacketBuilder::ipv4([192, 0, 2, 10], [192, 0, 2, 100], 64)
            .tcp(40000, 80, 12345, 64240)
            .syn();
        let payload = b"hello";
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn udp_datagram() -> Vec<u8> {
        let b = PacketBuilder::ipv4([198, 51, 100, 11], [192, 0, 2, 10], 64).udp(9000, 40000);
        let mut out = Vec::new();
        b.write(&mut out, b"srv1 reply").unwrap();
        out
    }

    fn check_with_etherparse(d: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16, u8) {
        let s = SlicedPacket::from_ip(d).unwrap();
        let Some(NetSlice::Ipv4(ip)) = s.net else {
            panic!("not ipv4")
        };
        let h = ip.header();
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "ip checksum"
        );
        let (src, dst) = (Ipv4Addr::from(h.source()), Ipv4Addr::from(h.destination()));
        match s.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = t
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), t.payload())
                    .unwrap();
                assert_eq!(want, t.checksum(), "tcp checksum");
                (src, dst, t.source_port(), t.destination_port(), h.ttl())
            }
            Some(TransportSlice::Udp(u)) => {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), u.payload())
                    .unwrap();
                assert_eq!(want, u.checksum(), "udp checksum");
                (src, dst, u.source_port(), u.destination_port(), h.ttl())
            }
            _ => panic!("no transport"),
        }
    }

    #[test]
    fn dnat_tcp_matches_independent_decoder() {
        let mut d = tcp_datagram();
        rewrite(&mut d, End::Dst, Ipv4Addr::new(198, 51, 100, 11), 8080).unwrap();
        let (src, dst, sp, dp, ttl) = check_with_etherparse(&d);
        assert_eq!(
            (src, dst, sp, dp, ttl),
            (
                Ipv4Addr::new(192, 0, 2, 10),
                Ipv4Addr::new(198, 51, 100, 11),
                40000,
                8080,
                63
            )
        );
    }

    #[test]
    fn snat_udp_matches_independent_decoder() {
        let mut d = udp_datagram();
        rewrite(&mut d, End::Src, Ipv4Addr::new(192, 0, 2, 100), 9000).unwrap();
        let (src, dst, sp, dp, _) = check_with_etherparse(&d);
        assert_eq!(
            (src, dst, sp, dp),
            (
                Ipv4Addr::new(192, 0, 2, 100),
                Ipv4Addr::new(192, 0, 2, 10),
                9000,
                40000
            )
        );
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut d = udp_datagram();
        let l4 = 20;
        d[l4 + 6] = 0;
        d[l4 + 7] = 0;
        rewrite(&mut d, End::Src, Ipv4Addr::new(192, 0, 2, 100), 9000).unwrap();
        assert_eq!(&d[l4 + 6..l4 + 8], &[0, 0]);
    }

    #[test]
    fn ttl_one_is_not_forwarded() {
        let mut d = tcp_datagram();
        d[8] = 1;
        let before = d.clone();
        assert_eq!(
            rewrite(&mut d, End::Dst, Ipv4Addr::new(198, 51, 100, 11), 8080),
            Err(RewriteError::TtlExceeded)
        );
        assert_eq!(d, before);
    }

    #[test]
    fn full_nat_rewrites_both_ends_and_ttl_once() {
        let mut d = tcp_datagram();
        rewrite_both(
            &mut d,
            (Ipv4Addr::new(198, 51, 100, 2), 20001),
            (Ipv4Addr::new(198, 51, 100, 11), 8080),
        )
        .unwrap();
        let (src, dst, sp, dp, ttl) = check_with_etherparse(&d);
        assert_eq!(
            (src, dst, sp, dp, ttl),
            (
                Ipv4Addr::new(198, 51, 100, 2),
                Ipv4Addr::new(198, 51, 100, 11),
                20001,
                8080,
                63
            )
        );
        let mut u = udp_datagram();
        rewrite_both(
            &mut u,
            (Ipv4Addr::new(192, 0, 2, 100), 9000),
            (Ipv4Addr::new(192, 0, 2, 10), 40001),
        )
        .unwrap();
        let (_, _, sp, dp, _) = check_with_etherparse(&u);
        assert_eq!((sp, dp), (9000, 40001));
    }
}
