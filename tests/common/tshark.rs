//! tshark (Wireshark's dissectors) as a second decoder for the pcap tiers: it reads a pcap file
//! rvs wrote and gives, per frame, each asked-for field's occurrences (outermost layer first),
//! with the IP, TCP and UDP checksum checks on (a `*.checksum.status` of 1 is good, 0 bad,
//! 2 unverified) and each TCP segment dissected on its own (no reassembly across frames).
//! tshark must be installed (`scripts/deps.sh` does it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// One frame as tshark decodes it: each field's occurrences.
#[derive(Debug)]
pub struct Decoded(BTreeMap<&'static str, Vec<String>>);

impl Decoded {
    pub fn get(&self, field: &str) -> Vec<&str> {
        self.0
            .get(field)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Decode the pcap at `path`: one `Decoded` with `fields` per frame, in file order.
pub fn tshark(path: &Path, fields: &[&'static str]) -> Result<Vec<Decoded>, String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path);
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "aggregator=;"]);
    cmd.args(["-E", "occurrence=a"]);
    for o in [
        "ip.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
        "tcp.desegment_tcp_streams:FALSE",
    ] {
        cmd.args(["-o", o]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tshark (scripts/deps.sh installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -r {} failed: {}\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != fields.len() {
                return Err(format!("tshark line with {} columns: {line}", cols.len()));
            }
            Ok(Decoded(
                fields
                    .iter()
                    .zip(cols)
                    .map(|(f, c)| {
                        let occ = c.split(';').filter(|s| !s.is_empty()).map(String::from);
                        (*f, occ.collect())
                    })
                    .collect(),
            ))
        })
        .collect()
}

/// An IPv4 address as tshark prints it.
pub fn ip_str(a: [u8; 4]) -> String {
    Ipv4Addr::from(a).to_string()
}
