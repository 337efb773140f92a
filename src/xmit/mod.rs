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

/// Forwarding method of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ForwardMethod {
    /// Destination NAT in, source NAT back (`ipvsadm -m`).
    #[default]
    Nat,
    /// Direct routing (`ipvsadm -g`): only the destination MAC changes; servers on a connected
    /// subnet hold the VIP on a loopback interface and answer clients directly.
    Dr,
    /// IP-in-IP tunnelling (`ipvsadm -i`): the datagram is encapsulated to the server, which
    /// decapsulates it and answers clients directly.
    Tun,
    /// Full NAT: the source becomes one of the service's `local_addresses` (and a local port)
    /// too, so replies come back to rvs whatever the servers' routing.
    Fnat,
}
impl ForwardMethod {
    /// Every method.
    pub const ALL: [ForwardMethod; 4] = [
        ForwardMethod::Nat,
        ForwardMethod::Dr,
        ForwardMethod::Tun,
        ForwardMethod::Fnat,
    ];

    /// True for the methods whose servers answer clients directly (rvs sees one direction).
    pub const fn input_only(self) -> bool {
        matches!(self, ForwardMethod::Dr | ForwardMethod::Tun)
    }

    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Dr => "dr",
            ForwardMethod::Tun => "tun",
            ForwardMethod::Fnat => "fnat",
        }
    }
}
