//! The summary `rvs check` and `rvs run` print: ports, neighbours, services and their servers,
//! as an operator reads them (ipvsadm's `-Ln` in spirit).

use super::*;

impl Config {
    /// The multi-line summary `rvs check` prints.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("eal: {}\n", self.eal_args().join(" ")));
        s.push_str(&format!(
            "workers: {} (burst {}, {} mbufs); flows: {} per worker; stats every {} s\n",
            self.workers.count,
            self.workers.burst,
            self.workers.mbufs,
            self.flows.capacity,
            self.stats.interval_secs
        ));
        for p in &self.ports {
            s.push_str(&format!(
                "port {}: {} address {}{}\n",
                p.name,
                p.vdev.as_deref().or(p.pci.as_deref()).unwrap_or("?"),
                p.address,
                p.gateway
                    .map(|g| format!(" gateway {g}"))
                    .unwrap_or_default()
            ));
        }
        for n in &self.neighbors {
            s.push_str(&format!("neighbor {} {} on {}\n", n.ip, n.mac, n.port));
        }
        for v in &self.services {
            let persist = if v.persistence_timeout > 0 {
                format!(
                    " persistent {} s /{}",
                    v.persistence_timeout, v.persistence_netmask
                )
            } else {
                String::new()
            };
            s.push_str(&format!(
                "service {}: {} {}:{} {} {}{persist} ({} servers)\n",
                v.name,
                v.protocol.name(),
                v.vip,
                v.port_set(),
                v.scheduler.name(),
                v.forward.name(),
                v.servers.len()
            ));
            for r in &v.servers {
                let port = v
                    .server_port(r)
                    .map_or_else(|| "(client's port)".to_string(), |p| p.to_string());
                s.push_str(&format!("  -> {}:{port} weight {}\n", r.address, r.weight));
            }
        }
        s
    }
}
