//! What the schema cannot say: [`Config::validate`] checks each section in its own function
//! (unique names, addresses inside their subnets, routable servers, EAL arguments that can
//! never probe a PCI device, FTP passive ranges), and [`Config::warnings`] names what is allowed
//! but likely wrong. Every refusal is a [`ConfigError`] naming the file, the field path and what
//! would be accepted.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;

impl Config {
    /// Checks that types cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.validate_eal(path)?;
        self.validate_ftp(path)?;
        self.validate_workers(path)?;
        self.validate_flows(path)?;
        self.validate_arp(path)?;
        self.validate_timeouts(path)?;
        self.validate_ports(path)?;
        self.validate_neighbors(path)?;
        self.validate_services(path)
    }

    /// `[eal]`: the EAL arguments name no device (ports do).
    fn validate_eal(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        for (i, a) in self.eal.args.iter().enumerate() {
            let opt = a.split('=').next().unwrap_or(a);
            if DEVICE_OPTIONS.contains(&opt) {
                return Err(err(
                    format!("eal.args[{i}]"),
                    format!("`{a}`: devices are declared in [[port]] with vdev = \"...\" or pci = \"...\"; rvs builds the EAL device arguments itself"),
                ));
            }
        }
        Ok(())
    }

    /// `[ftp]`: table and ring sizes.
    fn validate_ftp(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if !(16..=1 << 20).contains(&self.ftp.max_expectations) {
            return Err(err(
                "ftp.max_expectations".into(),
                format!("{}: must be 16 to 1048576", self.ftp.max_expectations),
            ));
        }
        if !(64..=65536).contains(&self.ftp.ring_size) {
            return Err(err(
                "ftp.ring_size".into(),
                format!("{}: must be 64 to 65536 slots", self.ftp.ring_size),
            ));
        }
        Ok(())
    }

    /// `[workers]`: count, idle nap, burst, mbufs.
    fn validate_workers(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if !(1..=64).contains(&self.workers.count) {
            return Err(err(
                "workers.count".into(),
                format!(
                    "{} workers: must be 1 to 64 (one lcore each; worker 0 runs on the main lcore)",
                    self.workers.count
                ),
            ));
        }
        if self.workers.idle_sleep_us > 10_000 {
            return Err(err(
                "workers.idle_sleep_us".into(),
                format!(
                    "{}: at most 10000 (10 ms); 0 polls without pause",
                    self.workers.idle_sleep_us
                ),
            ));
        }
        if !(1..=512).contains(&self.workers.burst) {
            return Err(err(
                "workers.burst".into(),
                "must be 1 to 512 (32 is usual)".into(),
            ));
        }
        if self.workers.mbufs < 1024 {
            return Err(err("workers.mbufs".into(), "must be at least 1024".into()));
        }
        Ok(())
    }

    /// `[flows]`: capacity and expiry budget.
    fn validate_flows(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.flows.capacity == 0 || self.flows.capacity > (1 << 30) {
            return Err(err(
                "flows.capacity".into(),
                "must be 1 to 1073741824".into(),
            ));
        }
        if self.flows.expire_budget == 0 {
            return Err(err(
                "flows.expire_budget".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `[arp]`: retries and queue bounds.
    fn validate_arp(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.arp.retries == 0 || self.arp.retry_interval_ms == 0 {
            return Err(err(
                "arp".into(),
                "retries and retry_interval_ms must be at least 1".into(),
            ));
        }
        if self.arp.queue_per_neighbor == 0 || self.arp.queue_total < self.arp.queue_per_neighbor {
            return Err(err(
                "arp.queue_total".into(),
                "queue_per_neighbor must be at least 1 and queue_total at least queue_per_neighbor"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `[timeouts]`: each within its bounds.
    fn validate_timeouts(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        let t = &self.timeouts;
        for (name, v) in [
            ("tcp_established", t.tcp_established),
            ("tcp_syn_sent", t.tcp_syn_sent),
            ("tcp_syn_recv", t.tcp_syn_recv),
            ("tcp_fin_wait", t.tcp_fin_wait),
            ("tcp_time_wait", t.tcp_time_wait),
            ("tcp_close_wait", t.tcp_close_wait),
            ("tcp_last_ack", t.tcp_last_ack),
            ("tcp_close", t.tcp_close),
            ("udp", t.udp),
        ] {
            if v == 0 || v > 7 * 24 * 3600 {
                return Err(err(
                    format!("timeouts.{name}"),
                    "must be 1 to 604800 seconds".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[[port]]`: at least one; names, devices, addresses, gateways, MTU, rings.
    fn validate_ports(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.ports.is_empty() {
            return Err(err(
                "port".into(),
                "no [[port]]: declare at least one, e.g. name = \"lan\", vdev = \"net_af_packet0,iface=eth1\", address = \"192.0.2.1/24\"".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let f = |k: &str| {
                format!(
                    "port[{}].{k}",
                    if p.name.is_empty() {
                        i.to_string()
                    } else {
                        p.name.clone()
                    }
                )
            };
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(err(
                    f("name"),
                    "port names must be non-empty and unique".into(),
                ));
            }
            match (&p.vdev, &p.pci) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(err(f("vdev"), "give exactly one of vdev = \"net_...\" or pci = \"0000:03:00.0\"".into()))
                }
                (Some(v), None) if !v.starts_with("net_") => {
                    return Err(err(f("vdev"), format!("`{v}`: a network vdev starts with net_ (net_af_packet0,iface=..., net_pcap0,..., net_tap0, net_ring0)")))
                }
                (None, Some(pci)) if self.eal.args.iter().any(|a| a == "--no-pci") => {
                    return Err(err(f("pci"), format!("`{pci}` with --no-pci in eal.args: remove one of them")))
                }
                _ => {}
            }
            if let Some(gw) = p.gateway {
                if !p.address.contains(gw) || gw == p.address.addr {
                    return Err(err(
                        f("gateway"),
                        format!("{gw} is not another host inside {}", p.address),
                    ));
                }
            }
            if let Some(mtu) = p.mtu {
                if !(576..=9000).contains(&mtu) {
                    return Err(err(f("mtu"), "must be 576 to 9000".into()));
                }
            }
            if p.rx_desc < 32 || p.tx_desc < 32 {
                return Err(err(
                    f("rx_desc"),
                    "rx_desc and tx_desc must be at least 32".into(),
                ));
            }
        }
        let devices: HashSet<&str> = self.ports.iter().map(|p| p.device_name()).collect();
        if devices.len() != self.ports.len() {
            return Err(err("port".into(), "two ports name the same device".into()));
        }
        Ok(())
    }

    /// `[[neighbor]]`: on a port's subnet, unicast.
    fn validate_neighbors(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        for (i, n) in self.neighbors.iter().enumerate() {
            let Some(p) = self.ports.iter().find(|p| p.name == n.port) else {
                return Err(err(
                    format!("neighbor[{i}].port"),
                    format!("no port named `{}`", n.port),
                ));
            };
            if !p.address.contains(n.ip) {
                return Err(err(
                    format!("neighbor[{i}].ip"),
                    format!("{} is outside port {}'s subnet {}", n.ip, p.name, p.address),
                ));
            }
            if !n.mac.is_unicast() {
                return Err(err(
                    format!("neighbor[{i}].mac"),
                    "must be a unicast MAC address".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[[service]]` and `[[service.server]]`.
    fn validate_services(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        let mut svc_names = HashSet::new();
        let mut svc_keys: Vec<(String, (Protocol, Ipv4Addr, PortSet))> = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let label = if s.name.is_empty() {
                i.to_string()
            } else {
                s.name.clone()
            };
            if s.name.is_empty() || !svc_names.insert(s.name.as_str()) {
                return Err(err(
                    format!("service[{label}].name"),
                    "service names must be non-empty and unique".into(),
                ));
            }
            let set = match (&s.port, &s.ports) {
                (Some(0), None) => {
                    return Err(err(format!("service[{label}].port"), "must be 1 to 65535".into()))
                }
                (Some(p), None) => PortSet::single(*p),
                (None, Some(list)) => PortSet::parse(list)
                    .map_err(|m| err(format!("service[{label}].ports"), m))?,
                _ => {
                    return Err(err(
                        format!("service[{label}].port"),
                        "give exactly one of port = 80 or ports = [\"21\", \"10000-10100\"] (or [\"*\"])".into(),
                    ))
                }
            };
            if let Some((other, _)) = svc_keys.iter().find(|(_, (proto, vip, ports))| {
                *proto == s.protocol && *vip == s.vip && set.overlaps(ports)
            }) {
                return Err(err(
                    format!("service[{label}]"),
                    format!(
                        "its {} ports {set} on {} overlap those of service {other}",
                        s.protocol.name(),
                        s.vip
                    ),
                ));
            }
            svc_keys.push((label.clone(), (s.protocol, s.vip, set.clone())));
            if s.persistence_timeout > 7 * 24 * 3600 {
                return Err(err(
                    format!("service[{label}].persistence_timeout"),
                    "must be 0 (off) to 604800 seconds".into(),
                ));
            }
            if !(1..=32).contains(&s.persistence_netmask) {
                return Err(err(
                    format!("service[{label}].persistence_netmask"),
                    "a prefix length, 1 to 32 (24 groups a /24 like -M 255.255.255.0)".into(),
                ));
            }
            if !s.vip.is_unicast_like() {
                return Err(err(
                    format!("service[{label}].vip"),
                    format!("{} is not a unicast address", s.vip),
                ));
            }
            if self.ports.iter().any(|p| p.address.addr == s.vip) {
                return Err(err(
                    format!("service[{label}].vip"),
                    format!(
                        "{} is a port address; use another address for the VIP",
                        s.vip
                    ),
                ));
            }
            if (s.forward == ForwardMethod::Fnat) == s.local_addresses.is_empty() {
                return Err(err(
                    format!("service[{label}].local_addresses"),
                    "full NAT (forward = \"fnat\") needs local_addresses = [\"198.51.100.2\", ...], and only full NAT uses them".into(),
                ));
            }
            for (k, a) in s.local_addresses.iter().enumerate() {
                if self
                    .services
                    .iter()
                    .take(i)
                    .any(|o| o.local_addresses.contains(a))
                {
                    return Err(err(
                        format!("service[{label}].local_addresses[{k}]"),
                        format!("{a} is already a local address of an earlier service: give each full-NAT service its own"),
                    ));
                }
                let own = self.ports.iter().any(|p| p.address.addr == *a)
                    || self
                        .services
                        .iter()
                        .any(|o| o.vip == *a || o.servers.iter().any(|r| r.address == *a));
                if own || !self.ports.iter().any(|p| p.address.contains(*a)) {
                    return Err(err(
                        format!("service[{label}].local_addresses[{k}]"),
                        format!("{a} must be a free address on a port's subnet (not a port address, VIP or server)"),
                    ));
                }
            }
            if let Some(ftp) = &s.ftp {
                let f = |k: &str| format!("service[{label}].ftp.{k}");
                if s.protocol != Protocol::Tcp {
                    return Err(err(
                        format!("service[{label}].ftp"),
                        "FTP runs over TCP: remove [service.ftp] or set protocol = \"tcp\"".into(),
                    ));
                }
                if ftp.control_ports.is_empty() {
                    return Err(err(
                        f("control_ports"),
                        "name the control port(s), e.g. control_ports = [21]".into(),
                    ));
                }
                if let Some(p) = ftp.control_ports.iter().find(|p| !set.contains(**p)) {
                    return Err(err(
                        f("control_ports"),
                        format!("{p} is not one of the service's ports ({set}); the helper parses only connections to this service"),
                    ));
                }
                if !(1..=1024).contains(&ftp.max_expectations_per_connection) {
                    return Err(err(
                        f("max_expectations_per_connection"),
                        "must be 1 to 1024 (8 is plenty: a client opens one data connection at a time)".into(),
                    ));
                }
                if !(1..=86400).contains(&ftp.expectation_timeout) {
                    return Err(err(
                        f("expectation_timeout"),
                        "must be 1 to 86400 seconds (netfilter uses 300)".into(),
                    ));
                }
            }
            for (j, srv) in s.servers.iter().enumerate() {
                let f = |k: &str| format!("service[{label}].server[{j}].{k}");
                if srv.weight > MAX_WEIGHT {
                    return Err(err(f("weight"), format!("must be 0 to {MAX_WEIGHT}")));
                }
                if srv.port == Some(0) {
                    return Err(err(f("port"), "must be 1 to 65535".into()));
                }
                if srv.port.is_some() && set.as_single().is_none() {
                    return Err(err(
                        f("port"),
                        "a multi-port service keeps the client's destination port: remove the server's port".into(),
                    ));
                }
                if s.forward == ForwardMethod::Dr
                    && !self.ports.iter().any(|p| p.address.contains(srv.address))
                {
                    return Err(err(
                        f("address"),
                        format!("{}: direct routing needs the server on a connected subnet (a port's address range); use forward = \"tun\" to reach it through routers", srv.address),
                    ));
                }
                if !self.routable(srv.address) {
                    return Err(err(
                        f("address"),
                        format!(
                            "{}: no port's subnet contains it and no port has a gateway",
                            srv.address
                        ),
                    ));
                }
                if self.ports.iter().any(|p| p.address.addr == srv.address) || srv.address == s.vip
                {
                    return Err(err(
                        f("address"),
                        format!("{} is one of rvs's own addresses", srv.address),
                    ));
                }
            }
            self.validate_passive_ranges(s, &label, &set, path)?;
            let mut seen = HashSet::new();
            for (j, srv) in s.servers.iter().enumerate() {
                if !seen.insert((srv.address, s.server_port(srv))) {
                    return Err(err(
                        format!("service[{label}].server[{j}]"),
                        "the same address and port appear twice".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `[[service.server]] passive_ports`: DR/TUN FTP only, inside the service's ports, above
    /// the control ports and 1023, no two servers' ranges overlapping.
    fn validate_passive_ranges(
        &self,
        s: &ServiceConfig,
        label: &str,
        set: &PortSet,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let err = |j: usize, message: String| ConfigError {
            file: path.to_path_buf(),
            field: format!("service[{label}].server[{j}].passive_ports"),
            message,
        };
        let mut ranges: Vec<(usize, (u16, u16))> = Vec::new();
        for (j, srv) in s.servers.iter().enumerate() {
            let Some(text) = srv.passive_ports.as_deref() else {
                continue;
            };
            let Some(ftp) = &s.ftp else {
                return Err(err(j, "passive ports belong to an FTP service: add [service.ftp] or remove passive_ports".into()));
            };
            if !matches!(s.forward, ForwardMethod::Dr | ForwardMethod::Tun) {
                return Err(err(j, "only dr and tun services need passive ports (in nat and fnat rvs reads the 227/229 reply): remove passive_ports".into()));
            }
            let (lo, hi) = parse_port_range(text).map_err(|m| err(j, m))?;
            if lo < 1024 {
                return Err(err(j, format!("{lo}-{hi}: data ports below 1024 are refused; use a range from 1024 up (vsftpd: pasv_min_port)")));
            }
            if !(lo..=hi).all(|p| set.contains(p)) {
                return Err(err(j, format!("{lo}-{hi} is not inside the service's ports ({set}): add the range to ports, or the data connections never reach the service")));
            }
            if let Some(c) = ftp.control_ports.iter().find(|c| (lo..=hi).contains(c)) {
                return Err(err(j, format!("{lo}-{hi} holds the control port {c}")));
            }
            if let Some((k, (a, b))) = ranges.iter().find(|(_, (a, b))| lo <= *b && *a <= hi) {
                return Err(err(j, format!("{lo}-{hi} overlaps server[{k}]'s {a}-{b}: give each server its own range (a data port must name one server)")));
            }
            ranges.push((j, (lo, hi)));
        }
        Ok(())
    }

    /// Advice that does not stop rvs: configurations that run but will not do what an
    /// operator most likely wants. `rvs check` and `rvs run` print them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            let dr_tun = matches!(s.forward, ForwardMethod::Dr | ForwardMethod::Tun);
            if s.ftp.as_ref().is_some_and(|f| f.passive)
                && dr_tun
                && s.persistence_timeout == 0
                && s.servers.iter().any(|r| r.passive_ports.is_none())
                && s.servers.len() > 1
            {
                out.push(format!(
                    "service[{}]: a {} FTP service needs persistence_timeout (e.g. 300) or passive_ports on every server: rvs never sees the 227 reply, and concurrent passive sessions of one client on different servers would take each other's data connections",
                    s.name,
                    if s.forward == ForwardMethod::Dr { "dr" } else { "tun" },
                ));
            }
        }
        out
    }

    fn routable(&self, ip: Ipv4Addr) -> bool {
        self.ports
            .iter()
            .any(|p| p.address.contains(ip) || p.gateway.is_some())
    }
}

trait UnicastLike {
    fn is_unicast_like(&self) -> bool;
}

impl UnicastLike for Ipv4Addr {
    fn is_unicast_like(&self) -> bool {
        !(self.is_unspecified() || self.is_broadcast() || self.is_multicast() || self.is_loopback())
    }
}
