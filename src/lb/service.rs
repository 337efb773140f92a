//! Virtual services: (protocol, VIP, port) → a list of real servers and a scheduler.

use std::net::Ipv4Addr;

use hashbrown::{HashMap, HashSet};

use super::dest::Dest;
use super::sched::{self, Scheduler};
use crate::config::{Config, ForwardMethod};
use crate::flow::FlowKey;

/// One virtual service as a worker sees it.
#[derive(Debug)]
pub struct Service {
    /// Name from the config.
    pub name: String,
    /// IP protocol number.
    pub proto: u8,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub port: u16,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Real servers.
    pub dests: Vec<Dest>,
    sched: Box<dyn Scheduler>,
}

impl Service {
    /// The scheduler's name.
    pub fn scheduler(&self) -> &'static str {
        self.sched.name()
    }
}

/// All services of one worker.
#[derive(Debug, Default)]
pub struct ServiceTable {
    services: Vec<Service>,
    by_key: HashMap<(u8, Ipv4Addr, u16), u16>,
    vips: HashSet<Ipv4Addr>,
    servers: usize,
}

impl ServiceTable {
    /// Build from a validated config (server indices numbered across services in order).
    pub fn from_config(cfg: &Config) -> ServiceTable {
        let mut t = ServiceTable::default();
        let mut next_index: u16 = 0;
        for s in &cfg.services {
            let dests: Vec<Dest> = s
                .servers
                .iter()
                .map(|r| {
                    let d = Dest {
                        addr: r.address,
                        port: r.port.unwrap_or(s.port),
                        weight: r.weight,
                        index: next_index,
                        active: 0,
                        inactive: 0,
                    };
                    next_index = next_index.saturating_add(1);
                    d
                })
                .collect();
            let id = t.services.len() as u16;
            t.by_key.insert((s.protocol.ip_proto(), s.vip, s.port), id);
            t.vips.insert(s.vip);
            t.services.push(Service {
                name: s.name.clone(),
                proto: s.protocol.ip_proto(),
                vip: s.vip,
                port: s.port,
                forward: s.forward,
                sched: sched::new(s.scheduler, &dests),
                dests,
            });
        }
        t.servers = usize::from(next_index);
        t
    }

    /// The service for a destination, if any.
    #[inline]
    pub fn lookup(&self, proto: u8, vip: Ipv4Addr, port: u16) -> Option<u16> {
        self.by_key.get(&(proto, vip, port)).copied()
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

    /// Pick a real server of service `id` for a new flow and count it as active.
    /// Returns the server's position in the service and a copy of it.
    pub fn schedule(&mut self, id: u16, key: &FlowKey) -> Option<(u16, Dest)> {
        let svc = self.services.get_mut(usize::from(id))?;
        let i = svc.sched.schedule(&svc.dests, key)?;
        let d = svc.dests.get_mut(i)?;
        d.active = d.active.saturating_add(1);
        Some((i as u16, d.clone()))
    }

    /// A flow to server `dest` (global index) of service `id` ended; `active` says which count
    /// it was in.
    pub fn release(&mut self, id: u16, dest: u16, active: bool) {
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

    fn dest_mut(&mut self, id: u16, dest: u16) -> Option<&mut Dest> {
        self.services
            .get_mut(usize::from(id))?
            .dests
            .iter_mut()
            .find(|d| d.index == dest)
    }
}
