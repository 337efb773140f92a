//! Forwarding methods: how a packet is rewritten for its real server and back. One method a file.
//!
//! Every function here works on an IPv4 datagram that the pipeline has already checked (header
//! length, total length, L4 header length), and patches checksums incrementally (RFC 1624), so a
//! rewrite costs the same whatever the payload size. An incremental update keeps a wrong
//! checksum wrong: rvs never "repairs" a corrupted segment into a valid one.

pub mod dr;
pub mod icmp;
pub mod nat;
pub mod tun;
