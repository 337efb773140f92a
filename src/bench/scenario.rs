//! The rvs configuration each scenario runs: a real [`Config`], parsed and validated from TOML
//! like any operator's file, so the pipeline under test is the one `rvs run` would build.
//!
//! Layout (every address RFC 5737):
//!
//! ```text
//!   clients 192.0.2.0/24 ── gw 203.0.113.254 ──[port 0 "client" 203.0.113.1/24]── rvs
//!                                   VIP 203.0.113.100 (tcp or udp :80; ftp :21)
//!   rvs ──[port 1 "server" 198.51.100.1/24]── servers 198.51.100.11.. (full-NAT local
//!                                             addresses 198.51.100.101..)
//! ```
//!
//! Every next hop is a static `[[neighbor]]`, so no ARP is ever needed and the measured loop is
//! pure forwarding. The two ports are ring ethdevs (`rte_eth_from_rings`) named like the vdevs
//! in the file; the EAL arguments in the file are not used (the harness starts the EAL itself).
//!
//! Timeouts are IPVS's defaults except where a scenario creates connections continuously: then
//! `tcp_syn_recv` (and `udp`) is 2 s, so the table holds about two seconds of new connections
//! and expiry runs inside the measured loop, as it would under a real storm; the FTP scenarios
//! close each data connection with a RST and use `tcp_close` = 2 s for the same reason.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::config::{Config, ConfigError};

use super::{Options, Proto, Scenario};

/// The VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
/// The VIP's port for the load-balanced service.
pub const VPORT: u16 = 80;
/// The FTP control port.
pub const FTP_PORT: u16 = 21;
/// The client side's gateway (every client is behind it).
pub const CLIENT_GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
/// The gateway's MAC.
pub const CLIENT_GW_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0xfe];
/// Real servers of the plain scenarios.
pub const SERVERS: u8 = 4;
/// Where rvs looks for the ring ethdevs (`rte_eth_from_rings` prefixes `net_ring_`).
pub const PORT_NAMES: [&str; 2] = ["rvsb0", "rvsb1"];

/// Address of server `i` (0-based): 198.51.100.11 + i.
pub fn server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 11 + i)
}

/// MAC of server `i`.
pub fn server_mac(i: u8) -> [u8; 6] {
    [0x02, 0x55, 0, 0, 0, 11 + i]
}

/// Full-NAT local addresses needed for `flows` flows per worker: each gives every worker
/// about 60 000 ports (`lb::laddr`), and a worker only takes ports whose reply hashes to it.
pub fn local_addresses(flows_per_worker: u64, workers: u16) -> u8 {
    let per_addr = 60_000 / u64::from(workers.max(1));
    let n = flows_per_worker / (per_addr * 3 / 4).max(1) + 1;
    n.min(100) as u8
}

/// Whether the scenario creates connections during the measurement.
pub fn creates_connections(o: &Options) -> bool {
    matches!(
        o.scenario,
        Scenario::SynStorm | Scenario::FtpCtl | Scenario::FtpData
    ) || o.new_share > 0.0
}

/// The TOML text of the scenario's configuration.
pub fn toml(o: &Options) -> String {
    let mut s = String::new();
    let w = o.workers;
    let per_worker = o.flows.div_ceil(u64::from(w.max(1)));
    // The flow index is sized for the capacity up front, as an operator sizes `[flows]
    // capacity` for the load they expect: the flows plus a little headroom, or, where
    // connections are made during the run, room for about four seconds of them at 4M/s (the
    // scenarios shorten the timeouts to 2 s, and expiry runs a second or two late; a worker
    // that makes more than the table holds per lifetime would be measured as `flow_table_full`).
    let cap = if creates_connections(o) {
        per_worker + (16 << 20)
    } else {
        per_worker + per_worker / 16 + 1024
    };
    let _ = write!(
        s,
        r#"[workers]
count = {w}
burst = {burst}

[flows]
capacity = {cap}

[stats]
interval_secs = 0

[timeouts]
"#,
        burst = o.burst,
        cap = cap.min(1 << 30),
    );
    if creates_connections(o) {
        s.push_str("tcp_syn_recv = 2\nudp = 2\n");
    }
    if o.scenario.ftp() {
        s.push_str("tcp_close = 2\n");
    }
    // TUN adds 20 bytes: let the server side carry them (ring devices have no MTU of their own).
    let mtu = if o.scenario == Scenario::Tun {
        "mtu = 1600"
    } else {
        ""
    };
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let _ = write!(
        s,
        r#"
[[port]]
name = "client"
vdev = "net_ring_{p0}"
address = "203.0.113.1/24"
gateway = "{CLIENT_GW}"

[[port]]
name = "server"
vdev = "net_ring_{p1}"
address = "198.51.100.1/24"
{mtu}

[[neighbor]]
port = "client"
ip = "{CLIENT_GW}"
mac = "{gw_mac}"
"#,
        p0 = PORT_NAMES[0],
        p1 = PORT_NAMES[1],
        gw_mac = mac(CLIENT_GW_MAC),
    );
    let servers = if o.scenario.ftp() { 1 } else { SERVERS };
    for i in 0..servers {
        let _ = write!(
            s,
            r#"
[[neighbor]]
port = "server"
ip = "{ip}"
mac = "{mac}"
"#,
            ip = server(i),
            mac = mac(server_mac(i)),
        );
    }
    if o.scenario.ftp() {
        let _ = write!(
            s,
            r#"
[ftp]
max_expectations = 65536
ring_size = 4096

[[service]]
name = "ftp"
protocol = "tcp"
vip = "{VIP}"
port = {FTP_PORT}
scheduler = "rr"
forward = "nat"
[service.ftp]
control_ports = [{FTP_PORT}]
max_expectations_per_connection = 64
[[service.server]]
address = "{srv}"
"#,
            srv = server(0),
        );
        return s;
    }
    let proto = match o.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let forward = match o.scenario {
        Scenario::Dr => "dr",
        Scenario::Tun => "tun",
        Scenario::Fnat => "fnat",
        _ => "nat",
    };
    let local = if o.scenario == Scenario::Fnat {
        let list: Vec<String> = (0..local_addresses(per_worker, w))
            .map(|i| format!("\"{}\"", Ipv4Addr::new(198, 51, 100, 101 + i)))
            .collect();
        format!("local_addresses = [{}]", list.join(", "))
    } else {
        String::new()
    };
    let _ = write!(
        s,
        r#"
[[service]]
name = "bench"
protocol = "{proto}"
vip = "{VIP}"
port = {VPORT}
scheduler = "rr"
forward = "{forward}"
{local}
"#
    );
    for i in 0..servers {
        let _ = write!(s, "[[service.server]]\naddress = \"{}\"\n", server(i));
    }
    s
}

/// The scenario's configuration, validated.
pub fn config(o: &Options) -> Result<Config, ConfigError> {
    Config::parse(&toml(o), Path::new("<bench scenario>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ForwardMethod;

    #[test]
    fn every_scenario_yields_a_valid_config() {
        for sc in Scenario::ALL {
            for proto in [Proto::Tcp, Proto::Udp] {
                for workers in [1u16, 2] {
                    let o = Options {
                        scenario: *sc,
                        proto,
                        workers,
                        flows: 1_000_000,
                        ..Options::default()
                    };
                    let cfg = config(&o).unwrap_or_else(|e| {
                        panic!("{sc:?} {proto:?} {workers}: {e}\n{}", toml(&o))
                    });
                    assert_eq!(cfg.workers.count, usize::from(workers));
                    assert_eq!(cfg.ports.len(), 2);
                    let svc = &cfg.services[0];
                    match sc {
                        Scenario::Fnat => {
                            assert_eq!(svc.forward, ForwardMethod::Fnat);
                            assert!(svc.local_addresses.len() >= 17);
                        }
                        Scenario::Dr => assert_eq!(svc.forward, ForwardMethod::Dr),
                        Scenario::Tun => assert_eq!(svc.forward, ForwardMethod::Tun),
                        Scenario::FtpCtl | Scenario::FtpData => assert!(svc.ftp.is_some()),
                        _ => assert_eq!(svc.forward, ForwardMethod::Nat),
                    }
                }
            }
        }
    }

    #[test]
    fn connection_scenarios_shorten_syn_recv() {
        let o = Options {
            scenario: Scenario::SynStorm,
            ..Options::default()
        };
        assert_eq!(config(&o).unwrap().timeouts.tcp_syn_recv, 2);
        let o = Options::default();
        assert_eq!(config(&o).unwrap().timeouts.tcp_syn_recv, 60);
    }
}
