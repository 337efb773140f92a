//! The TOML configuration: what rvs reads, what it refuses, and the summary `rvs check` prints.
//!
//! Parsing is two steps. Serde (with `deny_unknown_fields` everywhere) turns the file into the
//! structs of `schema.rs`; a misspelt key or a wrong type is refused with toml's line/column
//! report. [`Config::validate`] (`validate.rs`, one function per section) then checks what types
//! cannot: unique names, addresses inside their subnets, routable servers, EAL arguments that
//! can never probe a PCI device. Every refusal is a [`ConfigError`] naming the file, the field
//! path and what would be accepted. `summary.rs` prints what `rvs check` shows; `reload.rs`
//! works out what a SIGHUP may change while rvs runs.
//!
//! Devices are declared only in `[[port]]` (`vdev = "..."` or `pci = "..."`). rvs builds the EAL
//! device arguments itself and adds `--no-pci` whenever no port names a PCI address, so a config
//! can never make DPDK probe the machine's own NIC.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::wire::MacAddr;

mod reload;
mod schema;
mod summary;
mod validate;

pub use reload::ServerChange;
pub use schema::*;

// The domain types the file's fields turn into (re-exported: the schema names them).
pub use crate::flow::tcp_state::Timeouts;
pub use crate::lb::{PortSet, SchedulerKind};
pub use crate::neigh::route::Ipv4Net;
pub use crate::neigh::ArpParams;
pub use crate::xmit::ForwardMethod;

/// A refused configuration: which file, which field, what is wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// Dotted path of the offending field, e.g. `service[web].server[1].weight`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A refusal of a field of the file at `path`: `err(field, message)`.
fn refusal(path: &Path) -> impl Fn(String, String) -> ConfigError + '_ {
    move |field, message| ConfigError {
        file: path.to_path_buf(),
        field,
        message,
    }
}

impl Config {
    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The EAL options (no program name): the user's args, one device argument per port, and
    /// `--no-pci` unless a port names a PCI address (which is then the allow-list).
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        for p in &self.ports {
            if let Some(v) = &p.vdev {
                args.push("--vdev".into());
                args.push(v.clone());
            } else if let Some(pci) = &p.pci {
                args.push("-a".into());
                args.push(pci.clone());
            }
        }
        if self.ports.iter().all(|p| p.pci.is_none()) && !args.iter().any(|a| a == "--no-pci") {
            args.push("--no-pci".into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const GOOD: &str = r#"
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "512", "--file-prefix", "t"]

[[port]]
name = "client"
vdev = "net_af_packet0,iface=lb-cli"
address = "192.0.2.1/24"

[[port]]
name = "server"
vdev = "net_af_packet1,iface=lb-srv"
address = "198.51.100.1/24"

[[neighbor]]
port = "server"
ip = "198.51.100.11"
mac = "02:00:00:00:00:11"

[[service]]
name = "web"
protocol = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "wrr"

[[service.server]]
address = "198.51.100.11"
port = 8080
weight = 3

[[service.server]]
address = "198.51.100.12"
port = 8080
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("t.toml"))
    }

    #[test]
    fn timeout_defaults_are_the_flow_tables() {
        assert_eq!(TimeoutsConfig::default().model(), Timeouts::default());
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.services[0].servers[1].weight, 1);
        assert_eq!(c.timeouts.tcp_established, 900);
        assert_eq!(c.ports[0].device_name(), "net_af_packet0");
        let args = c.eal_args();
        assert!(args.contains(&"--no-pci".to_string()));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "--vdev" && w[1] == "net_af_packet1,iface=lb-srv"));
        assert!(c
            .summary()
            .contains("service web: tcp 192.0.2.100:80 wrr nat (2 servers)"));
    }

    fn refused(s: &str) -> ConfigError {
        parse(s).unwrap_err()
    }

    #[test]
    fn unknown_field_is_refused_with_position() {
        let e = refused(&GOOD.replace("scheduler = \"wrr\"", "schedular = \"wrr\""));
        let m = e.to_string();
        assert!(m.starts_with("t.toml: "), "{m}");
        assert!(m.contains("schedular") && m.contains("line"), "{m}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (
                GOOD.replace("weight = 3", "weight = 70000"),
                "service[web].server[0].weight",
            ),
            (
                GOOD.replace("\"192.0.2.1/24\"", "\"192.0.2.1/33\""),
                "prefix",
            ),
            (
                GOOD.replace("ip = \"198.51.100.11\"", "ip = \"203.0.113.9\""),
                "neighbor[0].ip",
            ),
            (
                GOOD.replace("address = \"198.51.100.12\"", "address = \"203.0.113.12\""),
                "service[web].server[1].address",
            ),
            (
                GOOD.replace(
                    "\"-l\", \"0-1\",",
                    "\"-l\", \"0-1\", \"--vdev\", \"net_null0\",",
                ),
                "eal.args[2]",
            ),
            (
                GOOD.replace("scheduler = \"wrr\"", "scheduler = \"fastest\""),
                "unknown variant",
            ),
            (
                GOOD.replace("vip = \"192.0.2.100\"", "vip = \"192.0.2.1\""),
                "service[web].vip",
            ),
            (
                GOOD.replace("name = \"server\"", "name = \"client\""),
                "port[client].name",
            ),
            (
                GOOD.replace("mac = \"02:00:00:00:00:11\"", "mac = \"zz\""),
                "MAC",
            ),
            (
                format!("{GOOD}\n[workers]\ncount = 0\n"),
                "workers.count: 0 workers: must be 1 to 64",
            ),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(m.contains(needle), "expected `{needle}` in: {m}");
        }
    }

    #[test]
    fn port_sets_and_persistence() {
        let ftp = GOOD.replace("port = 80\nscheduler = \"wrr\"", "ports = [\"21\", \"10000-10100\", \"10050-10200\"]\nscheduler = \"wrr\"\npersistence_timeout = 300\npersistence_netmask = 24")
            .replace("port = 8080\nweight = 3", "weight = 3")
            .replace("port = 8080\n", "");
        let c = parse(&ftp).unwrap();
        let set = c.services[0].port_set();
        assert_eq!(set.to_string(), "21,10000-10200");
        assert!(
            set.contains(21) && set.contains(10200) && !set.contains(22) && !set.contains(10201)
        );
        assert_eq!(c.services[0].server_port(&c.services[0].servers[0]), None);
        assert!(c
            .summary()
            .contains("tcp 192.0.2.100:21,10000-10200 wrr nat persistent 300 s /24"));
        assert_eq!(PortSet::parse(&["*".into()]).unwrap().to_string(), "*");

        let cases = [
            (ftp.replace("\"10050-10200\"", "\"10200-10050\""), "service[web].ports: `10200-10050` is not a port"),
            (ftp.replace("weight = 3", "weight = 3\nport = 2121"), "service[web].server[0].port: a multi-port service keeps the client's destination port"),
            (ftp.replace("persistence_netmask = 24", "persistence_netmask = 0"), "service[web].persistence_netmask"),
            (ftp.replace("ports = [", "port = 21\nports = ["), "give exactly one of port"),
            (format!("{ftp}\n[[service]]\nname = \"other\"\nprotocol = \"tcp\"\nvip = \"192.0.2.100\"\nport = 10100\n"), "service[other]: its tcp ports 10100 on 192.0.2.100 overlap those of service web"),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(m.contains(needle), "expected `{needle}` in: {m}");
        }
        // The same ports on another protocol or VIP do not overlap.
        let udp = format!("{ftp}\n[[service]]\nname = \"other\"\nprotocol = \"udp\"\nvip = \"192.0.2.100\"\nport = 21\n");
        parse(&udp).unwrap();
    }

    #[test]
    fn passive_ports_per_server() {
        let dr = include_str!("../../config/lab-ftp-dr.toml");
        let c = parse(dr).unwrap();
        assert_eq!(
            c.services[0].servers[1].passive_range(),
            Some((15000, 19999))
        );
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        // Neither passive ports nor persistence: it runs, with a warning that says what to do.
        let bare = dr.replace("passive_ports = \"10000-14999\"\n", "");
        let w = parse(&bare).unwrap().warnings();
        assert!(
            w.len() == 1 && w[0].contains("service[ftp]") && w[0].contains("persistence_timeout"),
            "{w:?}"
        );
        let persistent = bare.replace(
            "forward = \"dr\"",
            "forward = \"dr\"\npersistence_timeout = 300",
        );
        assert!(parse(&persistent).unwrap().warnings().is_empty());
        let field = "service[ftp].server[";
        let cases = [
            (
                dr.replace("15000-19999", "14990-19999"),
                "overlaps server[0]'s 10000-14999",
            ),
            (
                dr.replace("15000-19999", "15000-20100"),
                "is not inside the service's ports",
            ),
            (dr.replace("15000-19999", "19999-15000"), "runs backwards"),
            (dr.replace("15000-19999", "15000-x"), "\"x\" is not a port"),
            (dr.replace("\"15000-19999\"", "\"21\""), "below 1024"),
            (
                dr.replace("forward = \"dr\"", "forward = \"nat\"")
                    .replace("ports = [\"21\", \"10000-10100\"]", "port = 21"),
                "only dr and tun",
            ),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(
                m.contains(field) && m.contains(needle),
                "expected `{field}` and `{needle}` in: {m}"
            );
        }
        let moved = parse(&dr.replace("15000-19999", "15010-19999")).unwrap();
        let m = c
            .reload_changes(&moved, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("server[1].passive_ports") && m.contains("restart"),
            "{m}"
        );
    }

    #[test]
    fn reload_allows_weights_and_removals_only() {
        let old = parse(GOOD).unwrap();
        let p = Path::new("t.toml");
        let same = old.reload_changes(&parse(GOOD).unwrap(), p).unwrap();
        assert_eq!(
            same.iter()
                .map(|c| (c.weight, c.removed))
                .collect::<Vec<_>>(),
            vec![(3, false), (1, false)]
        );
        let drained = parse(&GOOD.replace("weight = 3", "weight = 0")).unwrap();
        assert_eq!(
            old.reload_changes(&drained, p).unwrap()[0],
            ServerChange {
                service: 0,
                server: 0,
                weight: 0,
                removed: false
            }
        );
        let i = GOOD.rfind("[[service.server]]").unwrap();
        let removed = parse(&GOOD[..i]).unwrap();
        assert_eq!(
            old.reload_changes(&removed, p).unwrap()[1],
            ServerChange {
                service: 0,
                server: 1,
                weight: 0,
                removed: true
            }
        );
        let refusals = [
            (
                GOOD.replace("port = 80", "port = 81"),
                "service[web]: a service's name",
            ),
            (
                GOOD.replace("address = \"198.51.100.12\"", "address = \"198.51.100.13\""),
                "service[web].server[1]: adding a server",
            ),
            (GOOD.replace("\"0-1\"", "\"0-2\""), "eal/workers"),
            (
                GOOD.replace("198.51.100.1/24", "198.51.100.2/24"),
                "port: ports cannot change",
            ),
        ];
        for (text, needle) in refusals {
            let m = old
                .reload_changes(&parse(&text).unwrap(), p)
                .unwrap_err()
                .to_string();
            assert!(
                m.contains(needle) && m.contains("restart"),
                "expected `{needle}` in: {m}"
            );
        }
    }

    #[test]
    fn pci_port_uses_allow_list_not_no_pci() {
        let text = GOOD.replace(
            "vdev = \"net_af_packet0,iface=lb-cli\"",
            "pci = \"0000:03:00.0\"",
        );
        let c = parse(&text).unwrap();
        let args = c.eal_args();
        assert!(!args.contains(&"--no-pci".to_string()));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-a" && w[1] == "0000:03:00.0"));
        let both = text.replace("\"-l\", \"0-1\",", "\"-l\", \"0-1\", \"--no-pci\",");
        assert!(refused(&both).to_string().contains("port[client].pci"));
    }

    #[test]
    fn net_contains() {
        let n: Ipv4Net = "192.0.2.1/24".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(!n.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let h: Ipv4Net = "192.0.2.1/32".parse().unwrap();
        assert!(
            h.contains(Ipv4Addr::new(192, 0, 2, 1)) && !h.contains(Ipv4Addr::new(192, 0, 2, 2))
        );
    }
}
