//! SIGHUP: what a reload may change while rvs runs (server weights, removals, servers known at
//! start added back), and the running config with those changes applied.

use std::path::Path;

use super::*;

impl Config {
    /// This running config with a reload's server changes applied: weights updated, removed
    /// servers kept (so counter rows keep their positions) but marked.
    pub fn with_changes(&self, changes: &[ServerChange]) -> Config {
        let mut c = self.clone();
        let mut index: u16 = 0;
        for s in &mut c.services {
            for r in &mut s.servers {
                if let Some(ch) = changes.iter().find(|ch| ch.server == index) {
                    r.weight = ch.weight;
                    r.removed = ch.removed;
                }
                index = index.saturating_add(1);
            }
        }
        c
    }
}

/// One server change a reload may make at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerChange {
    /// Service index (config order).
    pub service: u16,
    /// Global server index (config order across services, as at start).
    pub server: u16,
    /// New weight (0 when removed).
    pub weight: u32,
    /// The server is no longer in the config.
    pub removed: bool,
}

impl Config {
    /// What a reload from `self` (running) to `new` changes, or why it cannot be applied while
    /// running. Only server weights may change, and servers known at start may be removed and
    /// added back; everything else needs a restart. `path` names the file in messages.
    pub fn reload_changes(
        &self,
        new: &Config,
        path: &Path,
    ) -> Result<Vec<ServerChange>, ConfigError> {
        let refuse = |field: String, what: &str| ConfigError {
            file: path.to_path_buf(),
            field,
            message: format!(
                "{what} cannot change while rvs runs: restart to apply it (nothing was changed)"
            ),
        };
        if self.eal.args != new.eal.args || self.workers.count != new.workers.count {
            return Err(refuse(
                "eal/workers".into(),
                "EAL arguments or the worker count",
            ));
        }
        if self.ports.len() != new.ports.len()
            || self.ports.iter().zip(&new.ports).any(|(a, b)| {
                a.name != b.name
                    || a.vdev != b.vdev
                    || a.pci != b.pci
                    || a.address != b.address
                    || a.gateway != b.gateway
            })
        {
            return Err(refuse("port".into(), "ports"));
        }
        if self.services.len() != new.services.len() {
            return Err(refuse("service".into(), "the set of services"));
        }
        let mut changes = Vec::new();
        let mut index: u16 = 0;
        for (i, (a, b)) in self.services.iter().zip(&new.services).enumerate() {
            let label = format!("service[{}]", a.name);
            if a.name != b.name
                || a.protocol != b.protocol
                || a.vip != b.vip
                || a.port_set() != b.port_set()
                || a.scheduler != b.scheduler
                || a.forward != b.forward
                || a.persistence_timeout != b.persistence_timeout
                || a.persistence_netmask != b.persistence_netmask
                || a.expire_removed != b.expire_removed
                || a.local_addresses != b.local_addresses
            {
                return Err(refuse(
                    label,
                    "a service's name, protocol, VIP, ports, scheduler, method or persistence",
                ));
            }
            for (j, nb) in b.servers.iter().enumerate() {
                if a.servers.iter().any(|o| {
                    o.address == nb.address
                        && a.server_port(o) == b.server_port(nb)
                        && o.passive_range() != nb.passive_range()
                }) {
                    return Err(refuse(
                        format!("{label}.server[{j}].passive_ports"),
                        "a server's passive ports",
                    ));
                }
                if !a
                    .servers
                    .iter()
                    .any(|o| o.address == nb.address && a.server_port(o) == b.server_port(nb))
                {
                    return Err(refuse(
                        format!("{label}.server[{j}]"),
                        "adding a server not present at start",
                    ));
                }
            }
            for o in &a.servers {
                let now = b
                    .servers
                    .iter()
                    .find(|nb| nb.address == o.address && b.server_port(nb) == a.server_port(o));
                changes.push(ServerChange {
                    service: i as u16,
                    server: index,
                    weight: now.map_or(0, |n| n.weight),
                    removed: now.is_none(),
                });
                index = index.saturating_add(1);
            }
        }
        Ok(changes)
    }
}
