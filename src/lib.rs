//! rvs: a DPDK virtual server (an L4 load balancer in the lineage of Linux IPVS/LVS).
//!
//! Layers, from the wire up (see docs/ARCHITECTURE.md):
//! - `dpdk` (feature `dpdk`): RAII over EAL, mempools, mbufs, ports and queues; with [`cpu`]
//!   (prefetch and huge-page hints), the only module allowed `unsafe_code`.
//! - [`wire`]: checked zero-copy packet views and checksums.
//! - [`flow`], [`lb`], [`neigh`], [`xmit`]: the sans-IO core (flow table, services and schedulers,
//!   neighbours and routes, forwarding methods). Everything here takes `now` as an argument.
//! - [`helper`]: the FTP helper (parser, policy, sequence adjustment, expectations).
//! - [`worker`]: the per-core pipeline, generic over [`packet::PacketBuf`], and its poll loop;
//!   [`slowpath`]: the slow path's step and thread.
//! - [`config`], [`stats`], [`time`]: the TOML model, counters, the clock type.
//! - `runtime` (feature `dpdk`): setup, wiring and reporting; `bench` (feature `bench`):
//!   `rvs bench`, the end-to-end performance harness (generator and sink on rings).
//!
//! Without the default features the crate is the core alone and builds with no DPDK or
//! libclang present (`cargo test --no-default-features`).
#![deny(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
#[allow(unsafe_code)]
pub mod cpu;
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;
pub mod flow;
pub mod helper;
pub mod lb;
pub mod neigh;
pub mod packet;
#[cfg(feature = "dpdk")]
pub mod runtime;
pub mod slowpath;
pub mod stats;
pub mod time;
pub mod wire;
pub mod worker;
pub mod xmit;
