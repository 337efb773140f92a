//! Routes: connected subnets per port, plus a gateway per port for everything else.

use std::net::Ipv4Addr;

use crate::config::{Config, Ipv4Net};

/// The routing table: one connected subnet per port, optional gateways.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    ports: Vec<(Ipv4Net, Option<Ipv4Addr>)>,
}

impl Routes {
    /// From the config's ports, in port order (port index = position).
    pub fn from_config(cfg: &Config) -> Routes {
        Routes {
            ports: cfg.ports.iter().map(|p| (p.address, p.gateway)).collect(),
        }
    }

    /// The port and next hop for `dst`: the longest connected prefix that holds it, else the
    /// first port with a gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        let connected = self
            .ports
            .iter()
            .enumerate()
            .filter(|(_, (net, _))| net.contains(dst))
            .max_by_key(|(_, (net, _))| net.prefix);
        if let Some((i, _)) = connected {
            return Some((i as u16, dst));
        }
        self.ports
            .iter()
            .enumerate()
            .find_map(|(i, (_, gw))| gw.map(|g| (i as u16, g)))
    }

    /// True when `ip` is inside port `port`'s subnet.
    pub fn on_link(&self, port: u16, ip: Ipv4Addr) -> bool {
        self.ports
            .get(usize::from(port))
            .is_some_and(|(net, _)| net.contains(ip))
    }

    /// Our address on `port`.
    pub fn address(&self, port: u16) -> Option<Ipv4Addr> {
        self.ports.get(usize::from(port)).map(|(net, _)| net.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_then_gateway() {
        let r = Routes {
            ports: vec![
                (
                    "192.0.2.1/24".parse().unwrap(),
                    Some(Ipv4Addr::new(192, 0, 2, 254)),
                ),
                ("198.51.100.1/24".parse().unwrap(), None),
            ],
        };
        assert_eq!(
            r.next_hop(Ipv4Addr::new(198, 51, 100, 7)),
            Some((1, Ipv4Addr::new(198, 51, 100, 7)))
        );
        assert_eq!(
            r.next_hop(Ipv4Addr::new(192, 0, 2, 9)),
            Some((0, Ipv4Addr::new(192, 0, 2, 9)))
        );
        assert_eq!(
            r.next_hop(Ipv4Addr::new(203, 0, 113, 5)),
            Some((0, Ipv4Addr::new(192, 0, 2, 254)))
        );
        assert!(
            r.on_link(1, Ipv4Addr::new(198, 51, 100, 200))
                && !r.on_link(0, Ipv4Addr::new(198, 51, 100, 2))
        );
        let none = Routes {
            ports: vec![("192.0.2.1/24".parse().unwrap(), None)],
        };
        assert_eq!(none.next_hop(Ipv4Addr::new(203, 0, 113, 5)), None);
    }
}
