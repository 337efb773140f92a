//! Routes: connected subnets per port, plus a gateway per port for everything else.

use std::net::Ipv4Addr;

use std::fmt;
use std::str::FromStr;

/// The routing table: one connected subnet per port, optional gateways.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    ports: Vec<(Ipv4Net, Option<Ipv4Addr>)>,
}

impl Routes {
    /// From each port's subnet and gateway, in port order (port index = position).
    pub fn new(ports: impl IntoIterator<Item = (Ipv4Net, Option<Ipv4Addr>)>) -> Routes {
        Routes {
            ports: ports.into_iter().collect(),
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

/// An IPv4 interface address with its prefix length, written `192.0.2.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 1..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The netmask as an integer.
    pub fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
    /// True when `ip` is inside this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` needs a prefix length, e.g. 192.0.2.1/24"))?;
        let addr = a
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("prefix `/{p}` must be 1 to 32"))?;
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
