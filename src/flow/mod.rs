//! Connection tracking: keys, connections, the per-worker flow table and its expiry wheel, and the
//! TCP state tracker.
//!
//! Each worker owns one [`FlowTable`]; nothing here is shared or locked. A connection is indexed
//! twice, once per direction, so the reply of a NAT flow (server → client) finds the same entry
//! as the request (client → VIP).

pub mod conn;
mod index;
pub mod key;
pub mod rss;
pub mod table;
pub mod tcp_state;

pub use conn::{Conn, ConnId};
pub use key::{Dir, FlowKey};
pub use table::{FlowTable, InsertError};
pub use tcp_state::TcpState;
