//! Load balancing: virtual services, their real servers, and the schedulers that pick one.
//!
//! Each worker holds its own [`ServiceTable`] built from the same configuration, so scheduling
//! state (round-robin cursors, active-connection counts) is per worker and lock-free. Server
//! indices are global (numbered across all services in config order) so per-server counters line
//! up across workers.

pub mod dest;
pub mod laddr;
pub mod persist;
pub mod ports;
pub mod sched;
pub mod service;

pub use dest::Dest;
pub use ports::PortSet;
pub use sched::SchedulerKind;
pub use service::{Service, ServiceTable};
