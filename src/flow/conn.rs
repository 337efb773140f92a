//! One tracked connection through a virtual service.
//!
//! Kept small on purpose (40 bytes): at 1M+ flows a worker's table must stay near the 128-byte
//! per-flow budget including both index entries and the timer-wheel entry.

use std::net::Ipv4Addr;

use super::key::FlowKey;
use super::tcp_state::TcpState;
use crate::time::Instant;

/// Index of a connection in its worker's table. Only valid until the connection is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) u32);

/// A connection: client ↔ VIP on one side, rvs ↔ real server on the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// The client's address.
    pub client: Ipv4Addr,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// The real server's address.
    pub server: Ipv4Addr,
    /// The client's port.
    pub cport: u16,
    /// The virtual port.
    pub vport: u16,
    /// The real server's port.
    pub sport: u16,
    /// Index of the service in the worker's service table.
    pub service: u16,
    /// Global index of the real server (see `lb::ServiceTable`).
    pub dest: u16,
    /// IP protocol number.
    pub proto: u8,
    /// TCP state (UDP flows stay in [`TcpState::Established`] for timeout purposes).
    pub state: TcpState,
    /// When the flow expires unless a packet refreshes it.
    pub expires: Instant,
    /// Second of this connection's live timer-wheel entry (owned by the table).
    pub(crate) wheel_sec: u32,
    /// The address replies are sent to: the client (NAT, DR, TUN) or a local address (full NAT).
    pub laddr: Ipv4Addr,
    /// The port replies are sent to: the client's, or a local port (full NAT).
    pub lport: u16,
    /// Full NAT: `laddr:lport` is a local address and port of rvs's.
    pub fnat: bool,
    /// FTP role: [`FTP_NONE`], [`FTP_CONTROL`] or [`FTP_DATA`] (fits in padding).
    pub ftp: u8,
}

/// Not an FTP connection (or not a service with the FTP helper).
pub const FTP_NONE: u8 = 0;
/// An FTP control connection: its packets go through the slow path.
pub const FTP_CONTROL: u8 = 1;
/// An FTP data connection made from an expectation: linked to its control connection.
pub const FTP_DATA: u8 = 2;
impl Conn {
    /// Key of the client → VIP direction.
    pub fn original_key(&self) -> FlowKey {
        FlowKey {
            src: self.client,
            dst: self.vip,
            sport: self.cport,
            dport: self.vport,
            proto: self.proto,
        }
    }
    /// Key of the server → rvs/client direction: replies go to `laddr:lport` (the client in
    /// NAT, a local address in full NAT).
    pub fn reply_key(&self) -> FlowKey {
        FlowKey {
            src: self.server,
            dst: self.laddr,
            sport: self.sport,
            dport: self.lport,
            proto: self.proto,
        }
    }
}
