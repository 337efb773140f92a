//! Frames the generator sends: templates patched per packet, the latency stamp, and a general
//! TCP frame builder for the FTP exchanges.
//!
//! A [`Template`] is a whole Ethernet/IPv4/TCP-or-UDP frame with both addresses and both ports
//! zero and its checksums computed for those zeros. Writing a packet copies the template and
//! patches the two addresses, the two ports and the stamp, updating the IP and L4 checksums
//! incrementally (RFC 1624): a few dozen instructions, whatever the frame size, so the generator
//! stays cheap and every frame rvs receives has valid checksums.
//!
//! The stamp: the low 48 bits of the TSC, big-endian, in the last six bytes of the IP datagram
//! (the end of the L4 payload; one byte earlier when the frame length is odd, so that it sits at
//! an even offset for the checksum update). Every forwarding method keeps the end of a frame
//! where it was relative to the end (NAT and DR rewrite headers in place, TUN prepends), so the
//! sink finds it at the same distance from the end. 48 bits of a 2–4 GHz TSC wrap after about a
//! day; [`latency`] computes the difference modulo 2^48.
//!
//! Sizes are Ethernet frame sizes *with* the 4-byte FCS, as RFC 2544 and testpmd count them: a
//! "64-byte" frame is 60 bytes in the mbuf. The smallest TCP frame (54 bytes of headers) leaves
//! exactly six bytes for the stamp.

use std::net::Ipv4Addr;

use crate::wire::checksum::{update16, update_addr, update_bytes};
use crate::wire::{ethernet, ethertype, ipproto, ipv4, MacAddr, SeqNumber, TcpFlags, TcpPacket};

const ETH: usize = 14;
const IP: usize = 20;
const TCP: usize = 20;
/// Bytes of the latency stamp.
pub const STAMP_LEN: usize = 6;
/// The smallest frame size accepted (with FCS).
pub const MIN_SIZE: u16 = 64;
/// The largest frame size accepted (with FCS): a 1500-byte MTU.
pub const MAX_SIZE: u16 = 1518;
const STAMP_MASK: u64 = (1 << 48) - 1;

/// Offsets within a frame.
mod at {
    pub const IP_CSUM: usize = 14 + 10;
    pub const IP_SRC: usize = 14 + 12;
    pub const IP_DST: usize = 14 + 16;
    pub const SPORT: usize = 34;
    pub const DPORT: usize = 36;
    pub const TCP_CSUM: usize = 34 + 16;
    pub const UDP_CSUM: usize = 34 + 6;
}

/// Where the stamp starts in a frame of `len` bytes (without FCS).
#[inline]
pub fn stamp_at(len: usize) -> usize {
    len.saturating_sub(STAMP_LEN + (len & 1))
}

/// The stamp carried by a frame (0 when it is too short to carry one).
#[inline]
pub fn read_stamp(frame: &[u8]) -> u64 {
    let at = stamp_at(frame.len());
    match frame.get(at..at + STAMP_LEN) {
        Some(b) => b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x)),
        None => 0,
    }
}

/// TSC ticks from `stamp` (48 bits) to `now`, modulo 2^48.
#[inline]
pub fn latency(now: u64, stamp: u64) -> u64 {
    now.wrapping_sub(stamp) & STAMP_MASK
}

/// The L4 protocol of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP with these flags.
    Tcp(TcpFlags),
    /// UDP.
    Udp,
}

/// The four fields patched into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A frame with zero addresses and ports, ready to be copied and patched.
#[derive(Clone, Debug)]
pub struct Template {
    bytes: Vec<u8>,
    l4: L4,
    ip_csum: u16,
    l4_csum: u16,
}

impl Template {
    /// A frame of `size` bytes with FCS (clamped to [`MIN_SIZE`]..=[`MAX_SIZE`]) from `src_mac`
    /// to `dst_mac`.
    pub fn new(l4: L4, src_mac: MacAddr, dst_mac: MacAddr, size: u16) -> Template {
        let len = usize::from(size.clamp(MIN_SIZE, MAX_SIZE)) - 4;
        let mut bytes = vec![0u8; len];
        let zero = Ipv4Addr::UNSPECIFIED;
        match l4 {
            L4::Tcp(flags) => {
                let spec = TcpSpec {
                    src_mac,
                    dst_mac,
                    src: zero,
                    dst: zero,
                    sport: 0,
                    dport: 0,
                    seq: 0x1000_0000,
                    ack: if flags.contains(TcpFlags::ACK) {
                        0x2000_0000
                    } else {
                        0
                    },
                    flags,
                };
                write_tcp(&mut bytes, &spec, &[]);
            }
            L4::Udp => {
                ethernet::emit_header(&mut bytes, dst_mac, src_mac, ethertype::IPV4);
                let l4_len = (len - ETH - IP) as u16;
                ipv4::emit_header(&mut bytes[ETH..], zero, zero, ipproto::UDP, l4_len, 64, 0);
                let mut u = crate::wire::UdpPacket::new_unchecked(&mut bytes[ETH + IP..]);
                u.set_len(l4_len);
                u.fill_checksum(zero, zero);
            }
        }
        let ip_csum = u16::from_be_bytes([bytes[at::IP_CSUM], bytes[at::IP_CSUM + 1]]);
        let c = match l4 {
            L4::Tcp(_) => at::TCP_CSUM,
            L4::Udp => at::UDP_CSUM,
        };
        let l4_csum = u16::from_be_bytes([bytes[c], bytes[c + 1]]);
        Template {
            bytes,
            l4,
            ip_csum,
            l4_csum,
        }
    }

    /// Frame length in the mbuf (without FCS).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never empty (at least [`MIN_SIZE`] - 4 bytes).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The template's bytes (zero addresses, ports and stamp).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Patch the template's copy `out` (exactly [`Template::len`] bytes, already holding the
    /// template) with `ends` and the 48-bit `stamp`.
    #[inline]
    pub fn patch(&self, out: &mut [u8], ends: &Ends, stamp: u64) {
        if out.len() != self.bytes.len() {
            return;
        }
        let zero = Ipv4Addr::UNSPECIFIED;
        out[at::IP_SRC..at::IP_SRC + 4].copy_from_slice(&ends.src.octets());
        out[at::IP_DST..at::IP_DST + 4].copy_from_slice(&ends.dst.octets());
        let ip = update_addr(update_addr(self.ip_csum, zero, ends.src), zero, ends.dst);
        out[at::IP_CSUM..at::IP_CSUM + 2].copy_from_slice(&ip.to_be_bytes());
        out[at::SPORT..at::SPORT + 2].copy_from_slice(&ends.sport.to_be_bytes());
        out[at::DPORT..at::DPORT + 2].copy_from_slice(&ends.dport.to_be_bytes());
        let s = stamp_at(out.len());
        let st = (stamp & STAMP_MASK).to_be_bytes();
        let new = &st[8 - STAMP_LEN..];
        out[s..s + STAMP_LEN].copy_from_slice(new);
        let mut c = update_addr(self.l4_csum, zero, ends.src);
        c = update_addr(c, zero, ends.dst);
        c = update16(c, 0, ends.sport);
        c = update16(c, 0, ends.dport);
        c = update_bytes(c, &[0; STAMP_LEN], new);
        let (pos, c) = match self.l4 {
            L4::Tcp(_) => (at::TCP_CSUM, c),
            // 0 means "no checksum" in UDP: a computed 0 is sent as 0xffff.
            L4::Udp => (at::UDP_CSUM, if c == 0 { 0xffff } else { c }),
        };
        out[pos..pos + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// A TCP segment to build from scratch (FTP exchanges).
#[derive(Clone, Copy, Debug)]
pub struct TcpSpec {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
}

/// Write a TCP frame into `out` (resized to fit; padded to 60 bytes), payload included, with
/// both checksums computed.
pub fn tcp_frame(out: &mut Vec<u8>, spec: &TcpSpec, payload: &[u8]) {
    let len = (ETH + IP + TCP + payload.len()).max(60);
    out.clear();
    out.resize(len, 0);
    write_tcp(out, spec, payload);
}

/// Write a TCP frame over all of `buf` (the segment runs to the end of the buffer; `payload` is
/// copied at its start).
fn write_tcp(buf: &mut [u8], spec: &TcpSpec, payload: &[u8]) {
    if buf.len() < ETH + IP + TCP {
        return;
    }
    ethernet::emit_header(buf, spec.dst_mac, spec.src_mac, ethertype::IPV4);
    let seg_len = buf.len() - ETH - IP;
    ipv4::emit_header(
        &mut buf[ETH..],
        spec.src,
        spec.dst,
        ipproto::TCP,
        seg_len as u16,
        64,
        0,
    );
    let mut t = TcpPacket::new_unchecked(&mut buf[ETH + IP..]);
    t.set_src_port(spec.sport);
    t.set_dst_port(spec.dport);
    t.set_seq_number(SeqNumber(spec.seq));
    t.set_ack_number(SeqNumber(spec.ack));
    t.set_header_len(TCP);
    t.set_flags(spec.flags);
    t.set_window(65535);
    t.set_urgent(0);
    if let Some(p) = t.payload_mut().get_mut(..payload.len()) {
        p.copy_from_slice(payload);
    }
    t.fill_checksum(spec.src, spec.dst);
}

/// The L4 checksum of a frame made by this module, recomputed (tests).
#[cfg(test)]
fn l4_ok(frame: &[u8]) -> bool {
    use crate::wire::checksum;
    let ip = ipv4::Ipv4Packet::new_checked(&frame[ETH..]).unwrap();
    let seg = ip.payload();
    let ph = checksum::pseudo_header_sum(
        ip.src_addr(),
        ip.dst_addr(),
        ip.protocol(),
        seg.len() as u16,
    );
    checksum::fold(checksum::add(ph, checksum::sum(seg))) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::UdpPacket;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ends() -> Ends {
        Ends {
            src: Ipv4Addr::new(192, 0, 2, 77),
            dst: Ipv4Addr::new(203, 0, 113, 100),
            sport: 40_123,
            dport: 80,
        }
    }

    #[test]
    fn patched_tcp_frames_have_valid_checksums_and_the_stamp() {
        for size in [64u16, 65, 128, 1000, 1518] {
            let t = Template::new(L4::Tcp(TcpFlags::ACK), A, B, size);
            assert_eq!(t.len(), usize::from(size) - 4);
            let mut f = t.bytes().to_vec();
            let stamp = 0x1234_5678_9abc_u64;
            t.patch(&mut f, &ends(), 0xffff_0000_0000_0000 | stamp);
            let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
            assert!(ip.verify_checksum(), "size {size}");
            assert_eq!(ip.src_addr(), ends().src);
            assert_eq!(ip.dst_addr(), ends().dst);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!((tcp.src_port(), tcp.dst_port()), (40_123, 80));
            assert!(tcp.ack() && !tcp.syn());
            assert!(l4_ok(&f), "size {size}");
            assert_eq!(read_stamp(&f), stamp, "size {size}");
        }
    }

    #[test]
    fn patched_udp_frames_have_valid_checksums() {
        for size in [64u16, 99, 512] {
            let t = Template::new(L4::Udp, A, B, size);
            let mut f = t.bytes().to_vec();
            t.patch(&mut f, &ends(), 42);
            let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
            assert!(ip.verify_checksum());
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
            assert_ne!(u.checksum(), 0);
            assert_eq!(read_stamp(&f), 42);
        }
    }

    #[test]
    fn a_template_is_patched_again_and_again() {
        let t = Template::new(L4::Tcp(TcpFlags::SYN), A, B, 64);
        let mut f = t.bytes().to_vec();
        for i in 0..50u16 {
            f.copy_from_slice(t.bytes());
            let e = Ends {
                sport: 1024 + i,
                ..ends()
            };
            t.patch(&mut f, &e, u64::from(i));
            assert!(l4_ok(&f));
            assert_eq!(read_stamp(&f), u64::from(i));
        }
        // A buffer of another length is left alone.
        let mut short = vec![0u8; 10];
        t.patch(&mut short, &ends(), 1);
        assert_eq!(short, vec![0u8; 10]);
    }

    #[test]
    fn the_stamp_survives_encapsulation_and_wraps() {
        let t = Template::new(L4::Tcp(TcpFlags::ACK), A, B, 65);
        let mut f = t.bytes().to_vec();
        t.patch(&mut f, &ends(), 999);
        // TUN prepends 20 bytes: the end of the frame does not move.
        let mut outer = vec![0u8; 20];
        outer.extend_from_slice(&f);
        assert_eq!(read_stamp(&outer), 999);
        assert_eq!(latency(1_500, 999), 501);
        assert_eq!(latency(5, (1 << 48) - 5), 10);
        assert_eq!(read_stamp(&[1, 2, 3]), 0);
    }

    #[test]
    fn tcp_frames_are_built_with_payload() {
        let spec = TcpSpec {
            src_mac: A,
            dst_mac: B,
            src: Ipv4Addr::new(198, 51, 100, 11),
            dst: Ipv4Addr::new(192, 0, 2, 9),
            sport: 21,
            dport: 5000,
            seq: 7,
            ack: 9,
            flags: TcpFlags::ACK | TcpFlags::PSH,
        };
        let mut out = Vec::new();
        let line = b"227 Entering Passive Mode (198,51,100,11,39,16).\r\n";
        tcp_frame(&mut out, &spec, line);
        assert_eq!(out.len(), 54 + line.len());
        assert!(l4_ok(&out));
        let ip = Ipv4Packet::new_checked(&out[ETH..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.payload().starts_with(b"227 "));
        assert_eq!(tcp.seq_number(), SeqNumber(7));
        tcp_frame(
            &mut out,
            &TcpSpec {
                flags: TcpFlags::SYN,
                ..spec
            },
            &[],
        );
        assert_eq!(out.len(), 60);
        assert!(l4_ok(&out));
    }
}
