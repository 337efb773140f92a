//! Virtual services: (protocol, VIP, port or port set) → a list of real servers and a scheduler,
//! with optional persistence.
//!
//! A single-port service is found by an exact hash lookup; multi-port services (the LVS
//! firewall-mark recipe, e.g. FTP's 21 plus a passive range) are checked after an exact miss, in
//! config order; the config refuses overlaps. A multi-port service's servers keep the client's
//! destination port (their `Dest::port` is 0).

use std::net::Ipv4Addr;

use hashbrown::{HashMap, HashSet};

use super::dest::Dest;
use super::persist::Persistence;
use super::sched::{self, Scheduler};
use super::PortSet;
use crate::config::Config;
use crate::flow::FlowKey;
use crate::time::Instant;
use crate::xmit::ForwardMethod;

/// One virtual service as a worker sees it.
#[derive(Debug)]
pub struct Service {
    /// Name from the config.
    pub name: String,
    /// IP protocol number.
    pub proto: u8,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual ports (one, ranges, or all).
    pub ports: PortSet,
    /// Persistence: timeout and client address mask, when on.
    pub persistence: Option<(std::time::Duration, u32)>,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Real servers.
    pub dests: Vec<Dest>,
    /// FTP control ports (empty: no FTP helper).
    pub ftp_control: Vec<u16>,
    /// Some server names its passive ports (DR/TUN FTP): look there before scheduling.
    pub passive_ranges: bool,
    sched: Box<dyn Scheduler>,
}

impl Service {
    /// The scheduler's name.
    pub fn scheduler(&self) -> &'static str {
        self.sched.name()
    }
}

/// All services of one worker.
#[derive(Debug)]
pub struct ServiceTable {
    services: Vec<Service>,
    by_key: HashMap<(u8, Ipv4Addr, u16), u16>,
    multi: Vec<(u8, Ipv4Addr, u16)>,
    vips: HashSet<Ipv4Addr>,
    servers: usize,
    persist: Persistence,
    /// New connections scheduled without persistence because the template table was full.
    pub persistence_full: u64,
    /// By global server index: removed by a reload in a service that expires such flows.
    expiring: Vec<bool>,
    any_expiring: bool,
    expire_removed: Vec<bool>,
}

impl ServiceTable {
    /// Build from a validated config (server indices numbered across services in order).
    pub fn from_config(cfg: &Config) -> ServiceTable {
        let mut t = ServiceTable {
            services: Vec::new(),
            by_key: HashMap::new(),
            multi: Vec::new(),
            vips: HashSet::new(),
            servers: 0,
            persist: Persistence::new(cfg.flows.capacity),
            persistence_full: 0,
            expiring: Vec::new(),
            any_expiring: false,
            expire_removed: cfg.services.iter().map(|s| s.expire_removed).collect(),
        };
        let mut next_index: u16 = 0;
        for s in &cfg.services {
            let dests: Vec<Dest> = s
                .servers
                .iter()
                .map(|r| {
                    let d = Dest {
                        addr: r.address,
                        port: s.server_port(r).unwrap_or(0),
                        weight: r.weight,
                        index: next_index,
                        active: 0,
                        inactive: 0,
                        passive: r.passive_range(),
                    };
                    next_index = next_index.saturating_add(1);
                    d
                })
                .collect();
            let id = t.services.len() as u16;
            let ports = s.port_set();
            let proto = s.protocol.ip_proto();
            match ports.as_single() {
                Some(p) => {
                    t.by_key.insert((proto, s.vip, p), id);
                }
                None => t.multi.push((proto, s.vip, id)),
            }
            t.vips.insert(s.vip);
            let persistence = (s.persistence_timeout > 0).then(|| {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(s.persistence_netmask.min(32)))
                    .unwrap_or(0);
                (std::time::Duration::from_secs(s.persistence_timeout), mask)
            });
            t.services.push(Service {
                name: s.name.clone(),
                proto,
                vip: s.vip,
                ports,
                persistence,
                forward: s.forward,
                ftp_control: s
                    .ftp
                    .as_ref()
                    .map(|f| f.control_ports.clone())
                    .unwrap_or_default(),
                sched: sched::new(s.scheduler, &dests),
                passive_ranges: dests.iter().any(|d| d.passive.is_some()),
                dests,
            });
        }
        t.servers = usize::from(next_index);
        t.expiring = vec![false; t.servers];
        t
    }

    /// The shortest persistence netmask of any persistent service (32 when none): the sharding
    /// prefix that keeps every persistence group on one worker.
    pub fn affinity_prefix(cfg: &Config) -> u8 {
        cfg.services
            .iter()
            .filter(|s| s.persistence_timeout > 0)
            .map(|s| s.persistence_netmask)
            .min()
            .unwrap_or(32)
    }

    /// The service for a destination, if any.
    #[inline]
    pub fn lookup(&self, proto: u8, vip: Ipv4Addr, port: u16) -> Option<u16> {
        if let Some(id) = self.by_key.get(&(proto, vip, port)) {
            return Some(*id);
        }
        self.multi
            .iter()
            .find(|(p, v, id)| {
                *p == proto
                    && *v == vip
                    && self
                        .services
                        .get(usize::from(*id))
                        .is_some_and(|s| s.ports.contains(port))
            })
            .map(|(_, _, id)| *id)
    }

    /// True when `ip` is the VIP of any service.
    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.vips.contains(&ip)
    }

    /// Every VIP.
    pub fn vips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.vips.iter().copied()
    }

    /// A service by index.
    pub fn get(&self, id: u16) -> Option<&Service> {
        self.services.get(usize::from(id))
    }

    /// All services in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Service> {
        self.services.iter()
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when there are no services.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Number of real servers over all services.
    pub fn server_count(&self) -> usize {
        self.servers
    }

    /// Pick a real server of service `id` for a new flow from `key.src` and count it as
    /// active: the client's persistence template first (when the service is persistent and its
    /// server still takes connections), else the scheduler. Returns the server's position in
    /// the service and a copy of it.
    pub fn schedule(&mut self, id: u16, key: &FlowKey, now: Instant) -> Option<(u16, Dest)> {
        let svc = self.services.get_mut(usize::from(id))?;
        // A DR/TUN FTP data connection to a server's own passive port belongs to that server,
        // whatever its weight (its control connection lives there): no scheduler, no template.
        if let Some(i) = svc
            .passive_ranges
            .then(|| {
                svc.dests.iter().position(|d| {
                    d.passive
                        .is_some_and(|(lo, hi)| (lo..=hi).contains(&key.dport))
                })
            })
            .flatten()
        {
            let d = svc.dests.get_mut(i)?;
            d.active = d.active.saturating_add(1);
            return Some((i as u16, d.clone()));
        }
        let persist = svc
            .persistence
            .map(|(timeout, mask)| (u32::from(key.src) & mask, now + timeout));
        let pinned = persist
            .and_then(|(client, _)| self.persist.lookup(id, client, now))
            .filter(|i| {
                // A quiescent (weight 0) or removed server never gets new flows, template or not.
                svc.dests.get(usize::from(*i)).is_some_and(Dest::available)
            });
        let i = match pinned {
            Some(i) => usize::from(i),
            None => svc.sched.schedule(&svc.dests, key)?,
        };
        if let Some((client, expires)) = persist {
            if !self.persist.attach(id, client, i as u16, expires) {
                self.persistence_full += 1;
            }
        }
        let d = svc.dests.get_mut(i)?;
        d.active = d.active.saturating_add(1);
        Some((i as u16, d.clone()))
    }

    /// Count a flow that an FTP expectation (not the scheduler) gave to server `dest` (global
    /// index) of service `id`, as [`ServiceTable::schedule`] would have; [`ServiceTable::release`]
    /// undoes it. Also refreshes the client's persistence template. False when the server is
    /// not in the service.
    pub fn attach(&mut self, id: u16, dest: u16, client: Ipv4Addr, now: Instant) -> bool {
        let Some(svc) = self.services.get_mut(usize::from(id)) else {
            return false;
        };
        let Some(i) = svc.dests.iter().position(|d| d.index == dest) else {
            return false;
        };
        if let Some((timeout, mask)) = svc.persistence {
            if !self
                .persist
                .attach(id, u32::from(client) & mask, i as u16, now + timeout)
            {
                self.persistence_full += 1;
            }
        }
        if let Some(d) = svc.dests.get_mut(i) {
            d.active = d.active.saturating_add(1);
        }
        true
    }

    /// Lapsed persistence templates: remove them, looking at no more than `budget`.
    pub fn expire_persistence(&mut self, now: Instant, budget: usize) -> usize {
        self.persist.expire(now, budget)
    }

    /// Persistence templates held.
    pub fn persistence_templates(&self) -> usize {
        self.persist.len()
    }

    /// A flow of `client` to server `dest` (global index) of service `id` ended; `active` says
    /// which count it was in.
    pub fn release(&mut self, id: u16, dest: u16, active: bool, client: Ipv4Addr) {
        if let Some((_, mask)) = self
            .services
            .get(usize::from(id))
            .and_then(|s| s.persistence)
        {
            self.persist.detach(id, u32::from(client) & mask);
        }
        if let Some(d) = self.dest_mut(id, dest) {
            if active {
                d.active = d.active.saturating_sub(1);
            } else {
                d.inactive = d.inactive.saturating_sub(1);
            }
        }
    }

    /// A flow to server `dest` of service `id` became active (`true`) or inactive (`false`):
    /// move it between IPVS's activeconns and inactconns, which lc/wlc weigh.
    pub fn set_active(&mut self, id: u16, dest: u16, active: bool) {
        if let Some(d) = self.dest_mut(id, dest) {
            if active {
                d.inactive = d.inactive.saturating_sub(1);
                d.active = d.active.saturating_add(1);
            } else {
                d.active = d.active.saturating_sub(1);
                d.inactive = d.inactive.saturating_add(1);
            }
        }
    }

    /// Change the weight of server `dest` (global index) of service `id`; 0 drains it: existing
    /// flows carry on, no new flow (nor persistence template) sends it anything.
    pub fn set_weight(&mut self, id: u16, dest: u16, weight: u32) -> bool {
        let Some(svc) = self.services.get_mut(usize::from(id)) else {
            return false;
        };
        let Some(d) = svc.dests.iter_mut().find(|d| d.index == dest) else {
            return false;
        };
        d.weight = weight;
        svc.sched.update(&svc.dests);
        true
    }

    /// Apply a reload's server changes: weights, and removals (weight 0; with the service's
    /// `expire_removed`, the server's flows end at their next packet).
    pub fn apply(&mut self, changes: &[crate::config::ServerChange]) {
        for c in changes {
            self.set_weight(c.service, c.server, c.weight);
            let expire = c.removed
                && self
                    .expire_removed
                    .get(usize::from(c.service))
                    .copied()
                    .unwrap_or(false);
            if let Some(e) = self.expiring.get_mut(usize::from(c.server)) {
                *e = expire;
            }
        }
        self.any_expiring = self.expiring.iter().any(|e| *e);
    }

    /// True when flows to server `dest` (global index) must end: it was removed from a service
    /// that expires such flows. One branch on the fast path when no server is in that state.
    #[inline]
    pub fn must_expire(&self, dest: u16) -> bool {
        self.any_expiring
            && self
                .expiring
                .get(usize::from(dest))
                .copied()
                .unwrap_or(false)
    }

    fn dest_mut(&mut self, id: u16, dest: u16) -> Option<&mut Dest> {
        self.services
            .get_mut(usize::from(id))?
            .dests
            .iter_mut()
            .find(|d| d.index == dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CFG: &str = r#"
[[port]]
name = "p"
vdev = "net_null0"
address = "198.51.100.1/24"

[[service]]
name = "s"
protocol = "tcp"
vip = "203.0.113.100"
port = 21
scheduler = "rr"
persistence_timeout = 300

[[service.server]]
address = "198.51.100.11"

[[service.server]]
address = "198.51.100.12"
"#;

    fn key(src: [u8; 4], sport: u16) -> FlowKey {
        FlowKey {
            src: src.into(),
            dst: Ipv4Addr::new(203, 0, 113, 100),
            sport,
            dport: 21,
            proto: 6,
        }
    }

    #[test]
    fn draining_a_pinned_server_moves_its_clients_and_keeps_them_there() {
        let cfg = Config::parse(CFG, Path::new("t.toml")).unwrap();
        let mut t = ServiceTable::from_config(&cfg);
        let now = Instant::from_secs(1);
        let (first, d) = t.schedule(0, &key([192, 0, 2, 7], 1000), now).unwrap();
        assert_eq!(
            t.schedule(0, &key([192, 0, 2, 7], 1001), now).unwrap().0,
            first
        );
        assert!(t.set_weight(0, d.index, 0));
        let (moved, _) = t.schedule(0, &key([192, 0, 2, 7], 1002), now).unwrap();
        assert_ne!(
            moved, first,
            "a quiescent server gets no new flow, template or not"
        );
        assert_eq!(
            t.schedule(0, &key([192, 0, 2, 7], 1003), now).unwrap().0,
            moved,
            "re-pinned"
        );
        assert!(!t.set_weight(0, 99, 1));
        assert!(!t.set_weight(5, 0, 1));
    }

    /// DR/TUN FTP with per-server passive ports: a connection to a server's passive port goes
    /// to that server (drained or not), other ports are scheduled as usual.
    #[test]
    fn a_passive_port_names_its_server() {
        // The shipped lab config, its service widened by ports that no server names.
        let text = include_str!("../../config/lab-ftp-dr.toml")
            .replace("\"10000-19999\"]", "\"10000-20099\"]");
        let cfg = Config::parse(&text, Path::new("lab-ftp-dr.toml")).unwrap();
        let mut t = ServiceTable::from_config(&cfg);
        let now = Instant::from_secs(1);
        let client = Ipv4Addr::new(203, 0, 113, 2);
        let to = |dport: u16, sport: u16| FlowKey {
            src: client,
            dst: Ipv4Addr::new(203, 0, 113, 100),
            sport,
            dport,
            proto: 6,
        };
        for (i, port) in [10000u16, 14999, 15000, 19999, 10001, 19998]
            .iter()
            .enumerate()
        {
            let (_, d) = t.schedule(0, &to(*port, 40000 + i as u16), now).unwrap();
            let want = if *port < 15000 {
                [198, 51, 100, 11]
            } else {
                [198, 51, 100, 12]
            };
            assert_eq!(d.addr, Ipv4Addr::from(want), "port {port}");
        }
        // Port 20050 is in the service but in no server's range: round robin.
        let a = t.schedule(0, &to(20050, 1), now).unwrap().1.addr;
        let b = t.schedule(0, &to(20050, 2), now).unwrap().1.addr;
        assert_ne!(a, b);
        // A drained server still takes the data connections of its sessions.
        assert!(t.set_weight(0, 0, 0));
        let (_, d) = t.schedule(0, &to(10010, 3), now).unwrap();
        assert_eq!(d.addr, Ipv4Addr::new(198, 51, 100, 11));
        let (_, d) = t.schedule(0, &to(21, 4), now).unwrap();
        assert_eq!(
            d.addr,
            Ipv4Addr::new(198, 51, 100, 12),
            "control: scheduled"
        );
    }
}
