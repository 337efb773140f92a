//! A real server behind a virtual service.

use std::net::Ipv4Addr;

/// A real server as one worker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// Scheduling weight; 0 means it takes no new connections (existing ones carry on).
    pub weight: u32,
    /// Global index (across all services), used for per-server counters.
    pub index: u16,
    /// Established connections this worker tracks to it (IPVS's activeconns).
    pub active: u32,
    /// Other live connections: opening or closing (IPVS's inactconns).
    pub inactive: u32,
    /// DR/TUN FTP: the passive data ports this server hands out (inclusive); a new connection
    /// to one of them is this server's data connection.
    pub passive: Option<(u16, u16)>,
}

impl Dest {
    /// True when the server may be given new connections.
    pub fn available(&self) -> bool {
        self.weight > 0
    }
}
