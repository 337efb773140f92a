//! rvs: a DPDK virtual server (an L4 load balancer in the lineage of Linux IPVS/LVS).
//!
//! Layers, from the wire up (see docs/ARCHITECTURE.md):
//! - [`dpdk`]: the only module allowed `unsafe_code`; RAII over EAL, mempools, mbufs, ports and queues.
//! - [`wire`]: checked zero-copy packet views and checksums.
//! - [`flow`], [`lb`], [`neigh`], [`xmit`]: the sans-IO core (flow table, services and schedulers,
//!   neighbours and routes, forwarding methods). Everything here takes `now` as an argument.
//! - [`worker`]: the per-core pipeline, generic over [`packet::PacketBuf`], and its poll loop.
//! - [`config`], [`runtime`], [`stats`]: setup, wiring and reporting.
//! - [`bench`]: `rvs bench`, the end-to-end performance harness (generator and sink on rings).
#![deny(unsafe_code)]

pub mod bench;
pub mod config;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod flow;
pub mod helper;
pub mod lb;
pub mod neigh;
pub mod packet;
pub mod runtime;
pub mod slowpath;
pub mod stats;
pub mod time;
pub mod wire;
pub mod worker;
pub mod xmit;
