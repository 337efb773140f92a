//! The real `rvs` binary on two DPDK `net_pcap` vdevs, for the pcap tiers (`pcap_nat`,
//! `pcap_workers`, `pcap_dr_tun`, `pcap_ftp`): the lab's addresses and MACs, a run's directory
//! and process (both cleaned up however the test ends), its config, starting it, waiting until
//! it has received every input frame, stopping it with SIGTERM and reading its `--stats-file`,
//! and the few readers of its output those tiers share. Needs the `frames` and `pcap` modules
//! included beside it (`#[path = "common/frames.rs"] mod frames;` and the same for `pcap`).
//!
//! What the tiers rely on, found by running DPDK 22.11's pcap PMD:
//! - `net_pcap` ports get the MAC `02:70:63:61:70:<n>` ("\x02pcap" and a per-process counter
//!   of created pcap devices), so `net_pcap0` is `..:00` and `net_pcap1` is `..:01`. Every run
//!   checks rvs's start-up lines against these before trusting anything else.
//! - A port gets one rx queue per `rx_pcap=` argument and one tx queue per `tx_pcap=` argument,
//!   in argument order.
//! - `rx_pcap` hands out frames as fast as `rx_burst` asks and then nothing; the `tx_pcap` file
//!   is complete once rvs has closed its ports, and is written with nanosecond timestamps.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::frames::{arp_frame, hex, ip_frame, ip_id, Ip, IpFrame, Mac, Tcp, ACK};
use super::pcap;

// ---------------------------------------------------------------------------------------------
// The lab.

/// `net_pcap0`'s MAC (the client port).
pub const CLIENT_PORT_MAC: Mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
/// `net_pcap1`'s MAC (the server port).
pub const SERVER_PORT_MAC: Mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
pub const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];
pub const SRV11_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x11];
pub const SRV12_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x12];
pub const SRV13_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x13];
/// Nobody's MAC: frames to it must be dropped as `other_mac`.
pub const STRANGER_MAC: Mac = [0x02, 0, 0, 0, 0x99, 0x99];

pub const CLIENT_PORT_ADDR: Ip = [203, 0, 113, 1];
pub const SERVER_PORT_ADDR: Ip = [198, 51, 100, 1];
pub const CLIENT: Ip = [203, 0, 113, 2];
/// The VIP of `pcap_nat`, `pcap_workers` and `pcap_dr_tun` (`pcap_ftp` has VIPs of its own).
pub const VIP: Ip = [203, 0, 113, 100];
pub const SRV11: Ip = [198, 51, 100, 11];
pub const SRV12: Ip = [198, 51, 100, 12];
pub const SRV13: Ip = [198, 51, 100, 13];

/// A frame for nobody (dropped as `other_mac`): an ACK from `SRV13` to `CLIENT`, tagged `id`,
/// from `src_mac` to `STRANGER_MAC`. A server queue starts with a burst or more of these, so
/// that what follows is read in a later loop iteration than the client frames.
pub fn filler(id: u16, src_mac: Mac) -> Vec<u8> {
    Tcp {
        src: SRV13,
        dst: CLIENT,
        id,
        sport: 9,
        dport: 9,
        flags: ACK,
        ..Tcp::default()
    }
    .frame(src_mac, STRANGER_MAC)
}

// ---------------------------------------------------------------------------------------------
// A run.

/// A temp directory and a running rvs, both cleaned up however the test ends.
pub struct Run {
    pub dir: PathBuf,
    pub prefix: String,
    pub child: Option<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The EAL's runtime directory for our --file-prefix (config and fbarray files).
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
    }
}

/// What rvs wrote out of each port, one file per tx queue (`client[q]`, `server[q]`), its final
/// stats and its stdout.
pub struct Output {
    pub client: Vec<Vec<Vec<u8>>>,
    pub server: Vec<Vec<Vec<u8>>>,
    pub stats: Value,
    pub stdout: String,
}

impl Run {
    /// A fresh directory `rvs-<tier>-<pid>-<n>-<name>` and the EAL file prefix to match.
    pub fn new(tier: &str, name: &str) -> Run {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}-{}-{name}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("rvs-{tier}-{tag}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Run {
            dir,
            prefix: format!("rvs-{tier}-{tag}"),
            child: None,
        }
    }

    /// A file in the run's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The vdev argument of `net_pcap<n>` reading the run's files `rx` (one rx queue each) and
    /// writing `tx` (one tx queue each).
    pub fn vdev<S: AsRef<str>>(&self, n: usize, rx: &[S], tx: &[S]) -> String {
        let mut v = format!("net_pcap{n}");
        for (key, files) in [("rx_pcap", rx), ("tx_pcap", tx)] {
            for f in files {
                v.push_str(&format!(",{key}={}", self.path(f.as_ref()).display()));
            }
        }
        v
    }

    /// The rvs config: EAL on lcores 0-1 without hugepages, stats every second, the client port
    /// on `vdevs[0]` and the server port on `vdevs[1]` (with `server_port`'s lines, if any),
    /// then `rest` (workers, neighbours, services).
    pub fn config(&self, vdevs: [&str; 2], server_port: &str, rest: &str) -> String {
        format!(
            r#"[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--file-prefix", "{prefix}", "--log-level", "*:warning"]

[stats]
interval_secs = 1

[[port]]
name = "client"
vdev = "{cv}"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "{sv}"
address = "198.51.100.1/24"
{server_port}
{rest}"#,
            prefix = self.prefix,
            cv = vdevs[0],
            sv = vdevs[1],
        )
    }

    /// Run rvs with one queue pair per entry of `client_in` (and of `server_in`: as many) over
    /// those frames (rx queue q of a port reads `<side>-in-<q>.pcap`) until it has received them
    /// all; stop it and read what each tx queue wrote (`<side>-out-<q>.pcap`). `server_port` and
    /// `rest` as in [`Run::config`].
    pub fn execute(
        &mut self,
        client_in: &[Vec<Vec<u8>>],
        server_in: &[Vec<Vec<u8>>],
        server_port: &str,
        rest: &str,
    ) -> Result<Output, String> {
        let queues = client_in.len();
        assert_eq!(server_in.len(), queues, "as many queues on both ports");
        let files = |side: &str, dir: &str| -> Vec<String> {
            (0..queues)
                .map(|q| format!("{side}-{dir}-{q}.pcap"))
                .collect()
        };
        let mut vdevs = Vec::new();
        for (n, side, input) in [(0, "client", client_in), (1, "server", server_in)] {
            let rx = files(side, "in");
            for (name, frames) in rx.iter().zip(input) {
                pcap::write(&self.path(name), frames).map_err(|e| format!("{name}: {e}"))?;
            }
            vdevs.push(self.vdev(n, &rx, &files(side, "out")));
        }
        let config = self.config([&vdevs[0], &vdevs[1]], server_port, rest);
        std::fs::write(self.path("rvs.toml"), config).map_err(|e| format!("rvs.toml: {e}"))?;
        let expected_rx = client_in
            .iter()
            .chain(server_in)
            .map(Vec::len)
            .sum::<usize>();
        self.start()?;
        self.wait_for_rx(expected_rx as u64, Duration::ZERO)?;
        let (stats, stdout) = self.stop()?;
        if queues > 1 {
            for name in ["client", "server"] {
                let line = port_line(&stdout, name).unwrap_or_default();
                if !line.contains(&format!(", {queues} queue(s),")) {
                    return Err(format!(
                        "port {name}: not {queues} queues: {line}\n{}",
                        self.logs()
                    ));
                }
            }
        }
        let read = |side: &str| -> Result<Vec<Vec<Vec<u8>>>, String> {
            files(side, "out")
                .iter()
                .map(|n| pcap::read(&self.path(n)).map_err(|e| format!("{n}: {e}")))
                .collect()
        };
        Ok(Output {
            client: read("client")?,
            server: read("server")?,
            stats,
            stdout,
        })
    }

    /// Start rvs on the `rvs.toml` in the run's directory, with a `stats.json` stats file and
    /// its stdout and stderr in files.
    pub fn start(&mut self) -> Result<(), String> {
        let log = |n: &str| File::create(self.path(n)).map_err(|e| format!("{n}: {e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_rvs"))
            .arg("run")
            .arg("--config")
            .arg(self.path("rvs.toml"))
            .arg("--stats-file")
            .arg(self.path("stats.json"))
            .stdin(Stdio::null())
            .stdout(log("stdout.txt")?)
            .stderr(log("stderr.txt")?)
            .spawn()
            .map_err(|e| format!("cannot start rvs: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// An error unless rvs is still running.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            other => Err(format!("rvs is not running ({other:?})\n{}", self.logs())),
        }
    }

    /// Wait until rvs has received `expected` frames and, with several workers, every frame
    /// handed between workers was taken out of its owner's inbox (frames still queued at
    /// SIGTERM would be freed uncounted); then `settle` longer, for work that follows the last
    /// frame. The stats file is rewritten every second; a worker publishes its counters after
    /// flushing the frames it sent.
    pub fn wait_for_rx(&mut self, expected: u64, settle: Duration) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut all_read_at = None;
        loop {
            self.alive()?;
            let stats = self.stats();
            let counter = |k: &str| stats.as_ref().and_then(|v| v["counters"][k].as_u64());
            let rx = counter("rx_packets");
            let handed_all = counter("handover_out") == counter("handover_in");
            match rx {
                Some(n) if n > expected => {
                    return Err(format!(
                        "rvs received {n} frames, the input holds {expected}\n{}",
                        self.logs()
                    ))
                }
                Some(n) if n == expected && handed_all => {
                    let at = *all_read_at.get_or_insert_with(Instant::now);
                    if at.elapsed() >= settle {
                        return Ok(());
                    }
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "rvs did not receive all {expected} frames within 15 s (last rx_packets {rx:?})\n{}",
                        self.logs()
                    ))
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop rvs with SIGTERM, check it exited cleanly and that its ports have the `net_pcap`
    /// MACs the input frames are built for, and return its final stats and its stdout.
    pub fn stop(&mut self) -> Result<(Value, String), String> {
        let pid = self.child.as_ref().ok_or("rvs was not started")?.id();
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !killed.success() {
            return Err(format!("kill -TERM {pid} failed\n{}", self.logs()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let child = self.child.as_mut().ok_or("rvs was not started")?;
            if let Some(st) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
                break st;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "rvs did not stop within 10 s of SIGTERM (killed)\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            return Err(format!("rvs exited with {status}\n{}", self.logs()));
        }

        let stdout = std::fs::read_to_string(self.path("stdout.txt")).unwrap_or_default();
        for (name, mac) in [("client", CLIENT_PORT_MAC), ("server", SERVER_PORT_MAC)] {
            let want = format!("mac {}", mac_str(mac));
            let line = port_line(&stdout, name);
            if !line.is_some_and(|l| l.contains(&want)) {
                return Err(format!(
                    "port {name}: expected the net_pcap MAC `{want}` (the input frames are built for it), got {line:?}\n{}",
                    self.logs()
                ));
            }
        }
        let stats = self
            .stats()
            .ok_or_else(|| format!("no readable final stats file\n{}", self.logs()))?;
        if stats["final"] != Value::Bool(true) {
            return Err(format!(
                "the stats file is not the final one: {stats}\n{}",
                self.logs()
            ));
        }
        Ok((stats, stdout))
    }

    /// rvs's stdout and stderr so far, for failure messages.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.path("stdout.txt")).unwrap_or_default();
        let err = std::fs::read_to_string(self.path("stderr.txt")).unwrap_or_default();
        format!("--- rvs stdout ---\n{out}--- rvs stderr ---\n{err}")
    }

    /// The stats file as it is now, if it can be read.
    pub fn stats(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path("stats.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// rvs's start-up line for port `name`.
fn port_line<'a>(stdout: &'a str, name: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("rvs: port {name} = ")))
}

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------------------------
// Reading the stats file.

/// The service `name` in the stats.
pub fn service<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {stats}"))
}

/// The port `name` in the stats.
pub fn port<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {stats}"))
}

/// Every drop reason counted at least once, with its count.
pub fn nonzero_drops(stats: &Value) -> BTreeMap<String, u64> {
    stats["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v != 0)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading what came out: every IPv4 frame the tiers send is tagged with its IP identification,
// and NAT keeps the tag.

/// The IPv4 frame tagged `id` among `frames`, checksums verified; exactly one must be there.
pub fn by_id(frames: &[Vec<u8>], id: u16) -> IpFrame {
    let found: Vec<IpFrame> = frames
        .iter()
        .filter(|f| ip_id(f) == Some(id))
        .map(|f| ip_frame(f))
        .collect();
    assert_eq!(found.len(), 1, "frames with IP id {id:#06x}: {found:?}");
    found.into_iter().next().unwrap()
}

/// A short label per frame: `arp <op> <spa>`, `ip <id>` or `other <hex>`.
pub fn label(f: &[u8]) -> String {
    if let Some(a) = arp_frame(f) {
        format!("arp {} {}", a.arp.op, std::net::Ipv4Addr::from(a.arp.spa))
    } else if let Some(id) = ip_id(f) {
        format!("ip {id:#06x}")
    } else {
        format!("other {}", hex(f))
    }
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
