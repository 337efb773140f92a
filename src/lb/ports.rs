//! Sets of ports: a service's ports (`["21", "10000-10100"]`, or `["*"]` for all of them, like
//! an LVS firewall-mark service) and a server's passive range, as sorted, merged, inclusive
//! ranges, parsed once when the config is loaded.

use std::fmt;

/// A set of ports: sorted, merged, inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// No port (what a service with an invalid port list gets; validation refuses it).
    pub fn empty() -> PortSet {
        PortSet { ranges: Vec::new() }
    }

    /// Every port.
    pub fn all() -> PortSet {
        PortSet {
            ranges: vec![(1, u16::MAX)],
        }
    }

    /// One port.
    pub fn single(p: u16) -> PortSet {
        PortSet {
            ranges: vec![(p, p)],
        }
    }

    /// Parse `["21", "10000-10100"]` or `["*"]`.
    pub fn parse(items: &[String]) -> Result<PortSet, String> {
        let mut ranges = Vec::new();
        for it in items {
            let t = it.trim();
            if t == "*" {
                return Ok(PortSet::all());
            }
            let (a, b) = t.split_once('-').unwrap_or((t, t));
            let lo = a.trim().parse::<u16>().ok().filter(|p| *p > 0);
            let hi = b.trim().parse::<u16>().ok().filter(|p| *p > 0);
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => ranges.push((lo, hi)),
                _ => {
                    return Err(format!(
                        "`{it}` is not a port (1-65535), a range like \"10000-10100\", or \"*\""
                    ))
                }
            }
        }
        if ranges.is_empty() {
            return Err(
                "an empty list: give ports like [\"21\", \"10000-10100\"] or [\"*\"]".into(),
            );
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(PortSet { ranges: merged })
    }

    /// True when `p` is in the set.
    pub fn contains(&self, p: u16) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p))
    }

    /// The port when the set holds exactly one.
    pub fn as_single(&self) -> Option<u16> {
        match self.ranges.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }

    /// True when the two sets share a port.
    pub fn overlaps(&self, other: &PortSet) -> bool {
        self.ranges
            .iter()
            .any(|(a, b)| other.ranges.iter().any(|(c, d)| a <= d && c <= b))
    }

    /// The ranges, sorted and merged.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges == [(1, u16::MAX)] {
            return f.write_str("*");
        }
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}
