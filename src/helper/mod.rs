//! Application-layer helpers: protocol-aware processing that a service opts into in its config.
//!
//! Only FTP exists. Nothing here is ever applied by guessing from a port number: a service names
//! its helper and its control ports, and only those connections are parsed.

pub mod ftp;
