//! TCP segments (RFC 9293), with just enough option parsing for sequence adjustment.
//!
//! The segment is the whole buffer: callers hand in the IPv4 payload, never a frame with padding,
//! since the checksum and the payload both run to the end of the buffer.
//!
//! Invariants of a checked segment: at least 20 bytes, data offset >= 5 and the header it
//! describes fits in the buffer. Limitations: the NS bit (RFC 3540, historic) is ignored by
//! `flags()`; options are walked by [`tcp_options`], which stops at the first malformed option
//! and never panics; only SACK blocks are decoded ([`sack_blocks`]) because they carry sequence
//! numbers that a payload-length rewrite must shift.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::checksum;
use super::{
    get_bytes, get_bytes_mut, get_u16, get_u32, get_u8, ipproto, set_u16, set_u32, set_u8,
};
use super::{Error, Result, SeqNumber};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// The eight TCP flag bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// No flag set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True when every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any flag in `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags in `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags in `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

const FLAG_NAMES: [(TcpFlags, &str); 8] = [
    (TcpFlags::FIN, "FIN"),
    (TcpFlags::SYN, "SYN"),
    (TcpFlags::RST, "RST"),
    (TcpFlags::PSH, "PSH"),
    (TcpFlags::ACK, "ACK"),
    (TcpFlags::URG, "URG"),
    (TcpFlags::ECE, "ECE"),
    (TcpFlags::CWR, "CWR"),
];

/// `SYN|ACK`, or `-` when empty.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in FLAG_NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after checking the header length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` when the fixed header or the data offset runs past the buffer,
    /// `Err(BadDataOffset)` when the data offset is below 5.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadDataOffset);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(get_u32(self.buffer.as_ref(), field::SEQ))
    }

    /// Acknowledgment number (meaningful only with ACK set).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(get_u32(self.buffer.as_ref(), field::ACK))
    }

    /// Header length in bytes (data offset * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buffer.as_ref(), field::DATA_OFFSET) >> 4) * 4
    }

    /// The flag byte.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(get_u8(self.buffer.as_ref(), field::FLAGS))
    }

    /// SYN set.
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// FIN set.
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// RST set.
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// ACK set.
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// Window field (unscaled).
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options (empty when the data offset is 5).
    pub fn options(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        get_bytes(buf, self.header_len()..buf.len())
    }

    /// How much sequence space the segment uses: payload length plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// True when the checksum over the pseudo-header and the whole buffer is correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.compute_sum(src, dst)
            .is_some_and(|s| checksum::fold(s) == 0xffff)
    }

    fn compute_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<u32> {
        let buf = self.buffer.as_ref();
        let len = u16::try_from(buf.len()).ok()?;
        let ph = checksum::pseudo_header_sum(src, dst, ipproto::TCP, len);
        Some(checksum::add(ph, checksum::sum(buf)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: SeqNumber) {
        set_u32(self.buffer.as_mut(), field::SEQ, value.0);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: SeqNumber) {
        set_u32(self.buffer.as_mut(), field::ACK, value.0);
    }

    /// Sets the flag byte.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        set_u8(self.buffer.as_mut(), field::FLAGS, flags.0);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60); keeps the reserved/NS bits.
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u8;
        let low = get_u8(self.buffer.as_ref(), field::DATA_OFFSET) & 0x0f;
        set_u8(self.buffer.as_mut(), field::DATA_OFFSET, words << 4 | low);
    }

    /// Sets the window field.
    pub fn set_window(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// The options, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        get_bytes_mut(self.buffer.as_mut(), MIN_HEADER_LEN..end)
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let buf = self.buffer.as_mut();
        let end = buf.len();
        get_bytes_mut(buf, start..end)
    }

    /// Recomputes the checksum over the pseudo-header and the whole buffer. Does nothing for a
    /// buffer longer than 65535 bytes, which no IPv4 payload can be.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        if let Some(s) = self.compute_sum(src, dst) {
            self.set_checksum(!checksum::fold(s));
        }
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// TCP option kinds rvs names.
pub mod option_kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale.
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted.
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TIMESTAMPS: u8 = 8;
}

/// One option found by [`tcp_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOption<'a> {
    /// Offset of the kind byte within the options.
    pub offset: usize,
    /// The option kind (see [`option_kind`]).
    pub kind: u8,
    /// The option's data, after the kind and length bytes.
    pub data: &'a [u8],
}

/// Iterator over TCP options; see [`tcp_options`].
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    options: &'a [u8],
    pos: usize,
}

/// Walks `options` (as from `TcpPacket::options`), skipping NOPs and stopping at EOL, at the end,
/// or at the first option whose length byte is missing, below 2 or runs past the end. It yields
/// every well-formed option before that point and never panics.
pub fn tcp_options(options: &[u8]) -> TcpOptions<'_> {
    TcpOptions { options, pos: 0 }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        loop {
            let offset = self.pos;
            let kind = *self.options.get(offset)?;
            match kind {
                option_kind::EOL => {
                    self.pos = self.options.len();
                    return None;
                }
                option_kind::NOP => self.pos += 1,
                _ => {
                    let len = self.options.get(offset + 1).map(|&l| usize::from(l));
                    let data = len
                        .filter(|&l| l >= 2)
                        .and_then(|l| self.options.get(offset + 2..offset + l));
                    let (Some(len), Some(data)) = (len, data) else {
                        self.pos = self.options.len();
                        return None;
                    };
                    self.pos = offset + len;
                    return Some(TcpOption { offset, kind, data });
                }
            }
        }
    }
}

/// Most SACK blocks one option can hold (40 option bytes, 8 per block plus 2).
pub const MAX_SACK_BLOCKS: usize = 4;

/// One SACK block: the left edge and the right edge (first sequence number after the block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackBlock {
    /// Offset of the left edge within the options; the right edge follows 4 bytes later.
    pub offset: usize,
    /// First sequence number of the block.
    pub left: SeqNumber,
    /// Sequence number just past the block.
    pub right: SeqNumber,
}

/// Up to [`MAX_SACK_BLOCKS`] SACK blocks, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackBlocks {
    blocks: [SackBlock; MAX_SACK_BLOCKS],
    len: usize,
}

impl SackBlocks {
    /// The blocks found, in option order.
    pub fn as_slice(&self) -> &[SackBlock] {
        self.blocks.get(..self.len).unwrap_or(&[])
    }

    /// An iterator over the blocks.
    pub fn iter(&self) -> core::slice::Iter<'_, SackBlock> {
        self.as_slice().iter()
    }

    /// How many blocks were found.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when no block was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'a> IntoIterator for &'a SackBlocks {
    type Item = &'a SackBlock;
    type IntoIter = core::slice::Iter<'a, SackBlock>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The SACK blocks in `options` (as from `TcpPacket::options`), with their offsets so a rewrite
/// can patch them in `options_mut()` and update the checksum with `checksum::update32`.
///
/// A SACK option whose length is not 2 + 8n contributes the whole blocks it holds; blocks beyond
/// [`MAX_SACK_BLOCKS`] in total are ignored. Malformed options end the walk (see [`tcp_options`]).
pub fn sack_blocks(options: &[u8]) -> SackBlocks {
    let mut out = SackBlocks::default();
    for opt in tcp_options(options).filter(|o| o.kind == option_kind::SACK) {
        for (i, block) in opt.data.chunks_exact(8).enumerate() {
            let Some(slot) = out.blocks.get_mut(out.len) else {
                return out;
            };
            let offset = opt.offset + 2 + i * 8;
            *slot = SackBlock {
                offset,
                left: SeqNumber(get_u32(block, 0..4)),
                right: SeqNumber(get_u32(block, 4..8)),
            };
            out.len += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{SACK_DATA, SYN};
    use crate::wire::Ipv4Packet;
    use proptest::prelude::*;

    fn segment(ip: &[u8]) -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
        let p = Ipv4Packet::new_checked(ip).unwrap();
        (p.src_addr(), p.dst_addr(), p.payload().to_vec())
    }

    #[test]
    fn parses_captured_syn() {
        let (src, dst, seg) = segment(&SYN);
        let t = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
        assert_eq!(t.seq_number(), SeqNumber(0xffff_fff0));
        assert_eq!(t.ack_number(), SeqNumber(0));
        assert_eq!(t.header_len(), 40);
        assert_eq!(t.flags(), TcpFlags::SYN);
        assert!(t.syn() && !t.ack() && !t.fin() && !t.rst());
        assert_eq!(t.window(), 64240);
        assert_eq!(t.checksum(), 0x43b5);
        assert_eq!(t.urgent(), 0);
        assert_eq!(t.options().len(), 20);
        assert!(t.payload().is_empty());
        assert_eq!(t.segment_len(), 1);
        assert!(t.verify_checksum(src, dst));
        assert!(!t.verify_checksum(src, Ipv4Addr::new(10, 0, 0, 101)));

        let opts: Vec<(usize, u8, usize)> = tcp_options(t.options())
            .map(|o| (o.offset, o.kind, o.data.len()))
            .collect();
        assert_eq!(
            opts,
            [
                (0, option_kind::MSS, 2),
                (4, option_kind::SACK_PERMITTED, 0),
                (6, option_kind::TIMESTAMPS, 8),
                (17, option_kind::WINDOW_SCALE, 1)
            ]
        );
        assert!(sack_blocks(t.options()).is_empty());
    }

    #[test]
    fn parses_sack_and_payload() {
        let (src, dst, seg) = segment(&SACK_DATA);
        let t = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(t.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(t.flags().to_string(), "PSH|ACK");
        assert_eq!(t.ack_number(), SeqNumber(0xffff_fff1));
        assert_eq!(t.payload(), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(t.segment_len(), 17);
        assert!(t.verify_checksum(src, dst));
        let blocks = sack_blocks(t.options());
        assert_eq!(
            blocks.as_slice(),
            &[
                SackBlock {
                    offset: 4,
                    left: SeqNumber(0xffff_ff00),
                    right: SeqNumber(0x100)
                },
                SackBlock {
                    offset: 12,
                    left: SeqNumber(0x200),
                    right: SeqNumber(0x300)
                },
            ]
        );
        // The block straddling the wrap is still ordered.
        assert!(blocks.as_slice()[0].left < blocks.as_slice()[0].right);
    }

    #[test]
    fn sack_rewrite_with_incremental_checksum() {
        let (src, dst, mut seg) = segment(&SACK_DATA);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        let delta = 5;
        let mut cksum = t.checksum();
        for b in &sack_blocks(t.options()) {
            for (at, old) in [(b.offset, b.left), (b.offset + 4, b.right)] {
                let new = old + delta;
                t.options_mut()[at..at + 4].copy_from_slice(&new.0.to_be_bytes());
                cksum = checksum::update32(cksum, old.0, new.0);
            }
        }
        let old_ack = t.ack_number();
        t.set_ack_number(old_ack - delta);
        cksum = checksum::update32(cksum, old_ack.0, (old_ack - delta).0);
        t.set_checksum(cksum);
        assert!(t.verify_checksum(src, dst));
        let blocks = sack_blocks(t.options());
        assert_eq!(blocks.as_slice()[0].left, SeqNumber(0xffff_ff05));
        assert_eq!(blocks.as_slice()[1].right, SeqNumber(0x305));
    }

    #[test]
    fn error_cases() {
        let (_, _, seg) = segment(&SYN);
        let check = |b: &[u8]| TcpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&[]), Err(Error::Truncated));
        assert_eq!(check(&seg[..19]), Err(Error::Truncated));
        // Data offset 10 (40 bytes) beyond a 39-byte segment.
        assert_eq!(check(&seg[..39]), Err(Error::Truncated));
        assert_eq!(check(&seg[..40]), Ok(()));
        for off in 0..5u8 {
            let mut b = seg.clone();
            b[12] = off << 4;
            assert_eq!(check(&b), Err(Error::BadDataOffset), "offset {off}");
        }
        let mut b = seg.clone();
        b[12] = 0xf0;
        assert_eq!(check(&b), Err(Error::Truncated));
        b.resize(60, 0);
        assert_eq!(check(&b), Ok(()));
    }

    #[test]
    fn malformed_options_never_panic() {
        // Zero length, length 1, length past the end, missing length byte.
        for bad in [&[2u8, 0, 5, 0][..], &[2, 1], &[1, 1, 8, 10, 0], &[1, 5]] {
            assert_eq!(
                tcp_options(bad).filter(|o| o.kind != 1).count(),
                0,
                "{bad:?}"
            );
            assert!(sack_blocks(bad).is_empty());
        }
        // Good options before a bad one are kept; EOL stops the walk.
        let opts = [2, 4, 5, 0xb4, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 9, 0];
        assert_eq!(tcp_options(&opts).count(), 2);
        assert_eq!(sack_blocks(&opts).len(), 1);
        let opts = [0, 2, 4, 5, 0xb4];
        assert_eq!(tcp_options(&opts).count(), 0);
        // SACK with a ragged length keeps its whole blocks.
        let opts = [5, 14, 0, 0, 0, 1, 0, 0, 0, 2, 7, 7, 7, 7];
        assert_eq!(sack_blocks(&opts).len(), 1);
        // More than four blocks in total: the first four.
        let mut opts = vec![5, 34];
        opts.extend((0u8..32).map(|i| i / 4));
        opts.extend([5, 10, 9, 9, 9, 9, 9, 9, 9, 9]);
        let b = sack_blocks(&opts);
        assert_eq!(b.len(), 4);
        assert_eq!(b.as_slice()[3].offset, 26);
    }

    #[test]
    fn setters_round_trip() {
        let (src, dst, mut seg) = segment(&SYN);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_seq_number(SeqNumber(3));
        t.set_ack_number(SeqNumber(4));
        t.set_flags(TcpFlags::SYN | TcpFlags::ACK);
        t.set_window(5);
        t.set_urgent(6);
        t.options_mut()[0] = option_kind::NOP;
        assert!(!t.verify_checksum(src, dst));
        t.fill_checksum(src, dst);
        assert!(t.verify_checksum(src, dst));
        assert_eq!((t.src_port(), t.dst_port()), (1, 2));
        assert_eq!(
            (t.seq_number(), t.ack_number()),
            (SeqNumber(3), SeqNumber(4))
        );
        assert!(t.syn() && t.ack());
        assert_eq!((t.window(), t.urgent()), (5, 6));
        assert_eq!(t.options()[0], option_kind::NOP);
        t.set_header_len(20);
        assert_eq!(t.header_len(), 20);
        assert_eq!(t.payload().len(), 20);
        t.payload_mut()[0] = 0xaa;
        assert_eq!(t.payload()[0], 0xaa);
        t.set_checksum(0xbeef);
        assert_eq!(t.checksum(), 0xbeef);
    }

    #[test]
    fn flags_ops() {
        let mut f = TcpFlags::empty();
        assert_eq!(f.to_string(), "-");
        f.insert(TcpFlags::SYN);
        f |= TcpFlags::ACK;
        assert!(f.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
        f.remove(TcpFlags::SYN);
        assert_eq!(f, TcpFlags::ACK);
        assert_eq!((f & TcpFlags::ACK).bits(), 0x10);
        assert_eq!(
            format!("{:?}", TcpFlags(0xff)),
            "TcpFlags(FIN|SYN|RST|PSH|ACK|URG|ECE|CWR)"
        );
    }

    #[test]
    fn unchecked_garbage_does_not_panic() {
        let t = TcpPacket::new_unchecked(&[0u8, 1, 2][..]);
        assert_eq!(t.seq_number(), SeqNumber(0));
        assert!(t.options().is_empty());
        assert_eq!(t.payload().len(), 3);
        let b = [0u8; 13];
        let mut b2 = b;
        b2[12] = 0xf0;
        let t = TcpPacket::new_unchecked(&b2[..]);
        assert!(t.options().is_empty() && t.payload().is_empty());
    }

    // Cross-check against etherparse, an independent decoder and checksum implementation.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn etherparse_agrees(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
            sport in any::<u16>(), dport in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
            win in any::<u16>(), syn in any::<bool>(), fin in any::<bool>(), psh in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut b = etherparse::PacketBuilder::ipv4(src, dst, ttl)
                .tcp(sport, dport, seq, win)
                .ack(ack);
            if syn { b = b.syn(); }
            if fin { b = b.fin(); }
            if psh { b = b.psh(); }
            let mut bytes = Vec::new();
            b.write(&mut bytes, &payload).unwrap();

            let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            let theirs = etherparse::Ipv4HeaderSlice::from_slice(&bytes).unwrap();
            prop_assert_eq!(ip.src_addr(), theirs.source_addr());
            prop_assert_eq!(ip.dst_addr(), theirs.destination_addr());
            prop_assert_eq!(ip.ttl(), theirs.ttl());
            prop_assert_eq!(ip.total_len(), theirs.total_len());
            prop_assert_eq!(ip.ident(), theirs.identification());
            prop_assert_eq!(ip.dont_frag(), theirs.dont_fragment());
            prop_assert_eq!(ip.protocol(), theirs.protocol().0);
            prop_assert_eq!(ip.checksum(), theirs.header_checksum());
            prop_assert!(ip.verify_checksum());

            let (s, d) = (ip.src_addr(), ip.dst_addr());
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            let th = etherparse::TcpHeaderSlice::from_slice(ip.payload()).unwrap();
            prop_assert_eq!(t.src_port(), th.source_port());
            prop_assert_eq!(t.dst_port(), th.destination_port());
            prop_assert_eq!(t.seq_number().0, th.sequence_number());
            prop_assert_eq!(t.ack_number().0, th.acknowledgment_number());
            prop_assert_eq!(t.header_len(), th.slice().len());
            prop_assert_eq!(t.window(), th.window_size());
            prop_assert_eq!((t.syn(), t.fin(), t.ack()), (th.syn(), th.fin(), th.ack()));
            prop_assert_eq!(t.flags().contains(TcpFlags::PSH), th.psh());
            prop_assert_eq!(t.checksum(), th.checksum());
            prop_assert_eq!(t.payload(), &payload[..]);
            prop_assert!(t.verify_checksum(s, d));

            // Rewrite like NAT does, fill our checksums, and let etherparse judge them.
            let mut bytes = bytes.clone();
            let new_dst = Ipv4Addr::new(10, 9, 8, 7);
            let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            ip.set_dst_addr(new_dst);
            ip.fill_checksum();
            let mut t = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            t.set_dst_port(dport ^ 0x5a5a);
            t.fill_checksum(s, new_dst);
            let theirs = etherparse::Ipv4HeaderSlice::from_slice(&bytes).unwrap().to_header();
            prop_assert_eq!(theirs.calc_header_checksum(), theirs.header_checksum);
            let th = etherparse::TcpHeaderSlice::from_slice(&bytes[20..]).unwrap().to_header();
            let their_sum = th.calc_checksum_ipv4(&theirs, &bytes[20 + th.header_len()..]).unwrap();
            prop_assert_eq!(their_sum, th.checksum);
        }
    }
}
