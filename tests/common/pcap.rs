//! A tiny pcap (libpcap "savefile") reader and writer for the test tiers: Ethernet only
//! (linktype 1), no pcapng.
//!
//! Layout: a 24-byte global header (magic, version 2.4, zone, sigfigs, snaplen, linktype), then
//! per frame a 16-byte record header (seconds, sub-second, captured length, original length) and
//! the captured bytes. The writer emits little-endian microsecond files; the reader accepts either
//! byte order and either precision, because DPDK's `net_pcap` writes nanosecond files.

#![allow(dead_code)]

use std::fmt;
use std::path::Path;

const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
const GLOBAL_LEN: usize = 24;
const RECORD_LEN: usize = 16;
const SNAPLEN: u32 = 65535;

/// Why a file could not be read as an Ethernet pcap.
#[derive(Debug)]
pub struct PcapError(pub String);

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes of a pcap file holding `frames`, one microsecond apart.
pub fn encode(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(GLOBAL_LEN + frames.iter().map(|f| RECORD_LEN + f.len()).sum::<usize>());
    out.extend_from_slice(&MAGIC_USEC.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&record(i, f));
    }
    out
}

/// The record of frame number `i` (its header and bytes), `i` microseconds into the file: what
/// follows the global header, frame after frame.
pub fn record(i: usize, frame: &[u8]) -> Vec<u8> {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let mut rec = Vec::with_capacity(RECORD_LEN + frame.len());
    rec.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    rec.extend_from_slice(&((i % 1_000_000) as u32).to_le_bytes());
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(frame);
    rec
}

/// Write `frames` to `path` as a pcap file.
pub fn write(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    std::fs::write(path, encode(frames))
}

/// The frames of a pcap file's bytes, in file order. Refuses truncated records, captures shorter
/// than the frame (a snap length cut) and link types other than Ethernet.
pub fn decode(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PcapError> {
    let err = |m: String| Err(PcapError(m));
    let Some(global) = bytes.get(..GLOBAL_LEN) else {
        return err(format!(
            "{} bytes: shorter than the pcap global header",
            bytes.len()
        ));
    };
    let word = |b: &[u8], at: usize, le: bool| -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[at..at + 4]);
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let le = match (word(global, 0, true), word(global, 0, false)) {
        (MAGIC_USEC | MAGIC_NSEC, _) => true,
        (_, MAGIC_USEC | MAGIC_NSEC) => false,
        (m, _) => return err(format!("bad pcap magic {m:#010x}")),
    };
    let linktype = word(global, 20, le);
    if linktype != LINKTYPE_ETHERNET {
        return err(format!("linktype {linktype}, expected 1 (Ethernet)"));
    }
    let mut frames = Vec::new();
    let mut at = GLOBAL_LEN;
    while at < bytes.len() {
        let Some(rec) = bytes.get(at..at + RECORD_LEN) else {
            return err(format!("truncated record header at offset {at}"));
        };
        let caplen = word(rec, 8, le) as usize;
        let origlen = word(rec, 12, le) as usize;
        if caplen != origlen {
            return err(format!(
                "record at offset {at}: captured {caplen} of {origlen} bytes"
            ));
        }
        let start = at + RECORD_LEN;
        let Some(data) = bytes.get(start..start + caplen) else {
            return err(format!("truncated record data at offset {start}"));
        };
        frames.push(data.to_vec());
        at = start + caplen;
    }
    Ok(frames)
}

/// Read the frames of the pcap file at `path`.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let bytes = std::fs::read(path)
        .map_err(|e| PcapError(format!("cannot read {}: {e}", path.display())))?;
    decode(&bytes)
}
