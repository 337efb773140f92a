//! Direct routing (`ipvsadm -g`, LVS-DR): the datagram goes to the real server unchanged, only
//! the Ethernet destination becomes the server's MAC (the pipeline's neighbour layer does that).
//!
//! How it works: the client sends to the VIP; rvs picks a real server and forwards the frame at
//! layer 2. The server accepts a datagram addressed to the VIP because it holds the VIP itself, on
//! a loopback or dummy interface, and answers the client directly from the VIP through its own
//! default route. So:
//!
//! - **Servers must be on a directly connected subnet** of the rvs port: the frame is delivered by
//!   MAC address, and a router in between would route it back to rvs (the VIP's owner). rvs
//!   resolves the server's *real* address by ARP and sends the datagram with the VIP as its
//!   destination.
//! - **Servers must hold the VIP without announcing it**: `ip addr add VIP/32 dev lo` (or a dummy
//!   interface), with `net.ipv4.conf.all.arp_ignore=1` (answer ARP only for addresses on the
//!   receiving interface, so the server never answers "who has VIP") and
//!   `net.ipv4.conf.all.arp_announce=2` (never use the VIP as the sender address of its own ARP
//!   requests, which would poison the clients' and the router's caches). Without these the
//!   router's ARP cache flips between rvs and the servers and traffic bypasses the balancer.
//! - **Replies never pass through rvs.** The TCP state tracker sees one direction only and must
//!   use the INPUT_ONLY table (`flow::tcp_state::Direction::InputOnly`), as IPVS does; an FTP
//!   helper cannot rewrite 227/229 replies (see the FTP notes in DESIGN.md: a port-range service
//!   with client affinity instead).
//! - **No fragmentation.** A datagram larger than the outgoing MTU is refused by [`check`] with
//!   [`DrError::TooBig`]; the pipeline answers "fragmentation needed" when DF is set
//!   ([`super::tun::frag_needed`] builds that message for both methods) and drops otherwise.
//!   With equal MTUs on both sides, which is the normal DR setup, it never happens.
//!
//! TTL: the functions here never change the datagram. Linux IPVS does decrement the TTL for DR
//! and TUN since 4.4 (`__ip_vs_get_out_rt` calls `decrement_ttl` for every non-local route, and
//! `ip_vs_dr_xmit` then refreshes the checksum), older kernels and the original LVS-DR did not.
//! [`decrement_ttl`] is here for the pipeline to call first when it wants the kernel's behaviour;
//! TUN copies the inner TTL into the outer header, so calling it before
//! [`super::tun::encapsulate`] gives exactly what the kernel puts on the wire.

use crate::wire::{checksum, Ipv4Packet};

/// Why a datagram cannot be forwarded by direct routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrError {
    /// The datagram is larger than the outgoing MTU. `mtu` is what a "fragmentation needed"
    /// message must advertise (the link MTU itself: DR adds no header).
    TooBig {
        /// Largest datagram that fits.
        mtu: u16,
    },
    /// TTL was 0 or 1 ([`decrement_ttl`] only): the datagram must not be forwarded.
    TtlExceeded,
    /// Not a well-formed IPv4 datagram (cannot happen after the pipeline's checks).
    Malformed,
}

/// Checks that the IPv4 datagram in `ip` (starting at its header, Ethernet padding allowed after
/// `total_len`) fits an outgoing link of `mtu` bytes. Never modifies anything.
pub fn check(ip: &[u8], mtu: u16) -> Result<(), DrError> {
    let pkt = Ipv4Packet::new_checked(ip).map_err(|_| DrError::Malformed)?;
    // rvs does not fragment: a router may, but splitting on the fast path would cost a copy per
    // fragment for a case that only a misconfigured MTU produces.
    if pkt.total_len() > mtu {
        return Err(DrError::TooBig { mtu });
    }
    Ok(())
}

/// Decrements the TTL of the IPv4 datagram in `ip` and patches its header checksum (RFC 1624),
/// as a router and Linux IPVS (>= 4.4, every forwarding method) do. Refuses a TTL of 0 or 1 with
/// [`DrError::TtlExceeded`], leaving the datagram unchanged; the caller may answer "time
/// exceeded".
pub fn decrement_ttl(ip: &mut [u8]) -> Result<(), DrError> {
    let mut pkt = Ipv4Packet::new_checked(ip).map_err(|_| DrError::Malformed)?;
    let ttl = pkt.ttl();
    if ttl <= 1 {
        return Err(DrError::TtlExceeded);
    }
    let proto = pkt.protocol();
    // TTL shares a 16-bit word with the protocol.
    let ck = checksum::update16(
        pkt.checksum(),
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([ttl - 1, proto]),
    );
    pkt.set_ttl(ttl - 1);
    pkt.set_checksum(ck);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{DNS_QUERY, SYN};

    #[test]
    fn check_mtu_boundary() {
        // SYN is 60 bytes.
        assert_eq!(check(&SYN, 60), Ok(()));
        assert_eq!(check(&SYN, 1500), Ok(()));
        assert_eq!(check(&SYN, 59), Err(DrError::TooBig { mtu: 59 }));
        // Ethernet padding past total_len does not count.
        let mut padded = DNS_QUERY.to_vec();
        padded.resize(64, 0);
        assert_eq!(check(&padded, DNS_QUERY.len() as u16), Ok(()));
        assert_eq!(
            check(&padded, DNS_QUERY.len() as u16 - 1),
            Err(DrError::TooBig {
                mtu: DNS_QUERY.len() as u16 - 1
            })
        );
    }

    #[test]
    fn check_never_modifies_and_rejects_garbage() {
        assert_eq!(check(&SYN[..30], 1500), Err(DrError::Malformed));
        assert_eq!(check(&[], 1500), Err(DrError::Malformed));
        let mut v6ish = SYN;
        v6ish[0] = 0x60;
        assert_eq!(check(&v6ish, 1500), Err(DrError::Malformed));
    }

    #[test]
    fn decrement_ttl_patches_checksum() {
        let mut d = SYN;
        decrement_ttl(&mut d).unwrap();
        let p = Ipv4Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        let h = etherparse::Ipv4HeaderSlice::from_slice(&d).unwrap();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        // Only the TTL and checksum bytes moved.
        for (i, (a, b)) in d.iter().zip(SYN.iter()).enumerate() {
            if !matches!(i, 8 | 10 | 11) {
                assert_eq!(a, b, "byte {i}");
            }
        }
    }

    #[test]
    fn decrement_ttl_refuses_last_hop() {
        for ttl in [0u8, 1] {
            let mut d = SYN;
            let mut p = Ipv4Packet::new_checked(&mut d[..]).unwrap();
            p.set_ttl(ttl);
            p.fill_checksum();
            let before = d;
            assert_eq!(decrement_ttl(&mut d), Err(DrError::TtlExceeded));
            assert_eq!(d, before);
        }
        let mut d = SYN;
        let mut p = Ipv4Packet::new_checked(&mut d[..]).unwrap();
        p.set_ttl(2);
        p.fill_checksum();
        assert_eq!(decrement_ttl(&mut d), Ok(()));
        assert!(Ipv4Packet::new_checked(&d[..]).unwrap().verify_checksum());
        assert_eq!(decrement_ttl(&mut d[..10]), Err(DrError::Malformed));
    }
}
