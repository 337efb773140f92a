//! The per-core worker: a pure [`Pipeline`] that decides what happens to each frame, and the
//! poll loop (in `runtime`) that feeds it bursts of mbufs.
//!
//! The pipeline is generic over [`PacketBuf`](crate::packet::PacketBuf) and talks to the outside
//! world only through [`Io`], so the same code runs on DPDK mbufs and on `Vec<u8>` in tests.

pub mod pipeline;

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
}
