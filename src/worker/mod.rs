//! The per-core worker: a pure [`Pipeline`] that decides what happens to each frame, and the
//! poll loop (in `runtime`) that feeds it bursts of mbufs.
//!
//! With several workers, every TCP/UDP packet has an owner (see `flow::rss`): a worker that
//! receives a packet it does not own hands it over through [`Io::handover`]; neighbours learned
//! by one worker are told to the others through [`Io::neighbour_learned`].
//!
//! The pipeline is generic over [`PacketBuf`](crate::packet::PacketBuf) and talks to the outside
//! world only through [`Io`], so the same code runs on DPDK mbufs and on `Vec<u8>` in tests.

pub mod order;
pub mod pipeline;

use std::net::Ipv4Addr;

use crate::time::Instant;
use crate::wire::MacAddr;

pub use crate::slowpath::{SlowMsg, SlowReturn};
pub use pipeline::{Pipeline, PortAddr};

/// Where the pipeline sends frames and gets fresh buffers.
pub trait Io<B> {
    /// A fresh, empty buffer for a generated frame (ARP request), or `None` when the pool is dry.
    fn alloc(&mut self) -> Option<B>;
    /// Queue `buf` for transmission on `port`. Ownership passes to the I/O layer, which counts
    /// what it could not send.
    fn send(&mut self, port: u16, buf: B);
    /// Give back a buffer that is dropped (the I/O layer may free buffers in bulk).
    fn discard(&mut self, buf: B) {
        drop(buf);
    }
    /// Hand a frame received on `port` to worker `to`, which owns its flow, with the window in
    /// which it reached this worker's queue (`arrived`, see `Pipeline::process_handed_over`).
    /// `Err` gives the frame back when that worker's queue is full (the caller drops and counts
    /// it).
    fn handover(
        &mut self,
        to: u16,
        port: u16,
        buf: B,
        arrived: (Instant, Instant),
    ) -> Result<(), B> {
        let _ = (to, port, arrived);
        Err(buf)
    }
    /// Tell the other workers that `ip` on `port` is at `mac` (they keep their own tables).
    fn neighbour_learned(&mut self, port: u16, ip: Ipv4Addr, mac: MacAddr) {
        let _ = (port, ip, mac);
    }
    /// Give the slow path a message (an FTP control frame, or news about a connection).
    /// `Err` gives it back when the ring is full: the caller drops a frame and counts it, and
    /// keeps a notice to try again later. Never blocks.
    fn slow_path(&mut self, msg: SlowMsg<B>) -> Result<(), SlowMsg<B>> {
        Err(msg)
    }
}
