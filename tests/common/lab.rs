//! Plumbing shared by the namespace-lab tiers (`lab_tier`, `lab_dr`, `lab_ftp`): bringing a lab
//! up and down with scripts/lab.sh, running commands in its namespaces, running rvs in the `lb`
//! namespace with a `--stats-file`, running scripts/lab/client.py and scripts/lab/ftp_client.py,
//! and the checks every lab run makes of rvs's final counters.
// Each test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read_stats(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A lab config (`config/<file>`) made our own: its EAL file prefix `from` becomes `to`, the
/// stats interval 1 s, and with `workers > 1` that many workers and queue pairs per leg.
pub fn config(file: &str, from: &str, to: &str, workers: usize) -> String {
    let cfg = std::fs::read_to_string(root().join("config").join(file)).unwrap();
    let (from, to) = (format!("\"{from}\""), format!("\"{to}\""));
    assert!(
        cfg.contains(&from) && cfg.contains("interval_secs = 2"),
        "{file}"
    );
    let cfg = cfg
        .replace(&from, &to)
        .replace("interval_secs = 2", "interval_secs = 1");
    if workers > 1 {
        assert!(
            cfg.contains("count = 1")
                && cfg.contains("iface=lb-cli\"")
                && cfg.contains("iface=lb-srv\"")
        );
        cfg.replace("count = 1", &format!("count = {workers}"))
            .replace(
                "iface=lb-cli\"",
                &format!("iface=lb-cli,qpairs={workers}\""),
            )
            .replace(
                "iface=lb-srv\"",
                &format!("iface=lb-srv,qpairs={workers}\""),
            )
    } else {
        cfg
    }
}

/// The sum of every drop counter in a stats document.
pub fn drops_total(s: &Value) -> u64 {
    s["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Exact accounting: every frame received from a NIC was forwarded, answered, consumed, handed
/// to its owner, or dropped (a frame handed over is processed once more by its owner, so
/// handover_in frames come on top of rx).
pub fn assert_accounting(s: &Value) {
    let c = &s["counters"];
    let g = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(
        g("rx_packets") + g("handover_in"),
        g("nat_in_packets")
            + g("nat_out_packets")
            + g("icmp_echo_replies")
            + g("arp_replies_sent")
            + g("arp_consumed")
            + g("handover_out")
            + drops_total(s),
        "accounting: {c}"
    );
}

/// A multi-worker run handed frames over, and every frame handed over was received.
pub fn assert_handed_over(s: &Value) {
    let c = &s["counters"];
    let (out, inn) = (
        c["handover_out"].as_u64().unwrap(),
        c["handover_in"].as_u64().unwrap(),
    );
    assert!(out > 0, "no frame was handed over: {c}");
    assert_eq!(out, inn, "every frame handed over was received: {c}");
}

/// The client.py arguments of each lab's main run: 200 TCP connections to the VIP's port 80
/// (a wrr 3:1 service) and 200 UDP exchanges to its port 9000 (an rr 1:1 one), from 8 client
/// addresses.
pub const MAIN_RUN: &[&str] = &[
    "--vip",
    "203.0.113.100",
    "--tcp-port",
    "80",
    "--udp-port",
    "9000",
    "--count",
    "200",
];

/// What the main run's client saw, once [`check_main_run`] has checked it.
pub struct MainRun {
    /// TCP connections answered by srv1 and srv2.
    pub tcp: (u64, u64),
    pub udp_retries: u64,
    /// Distinct UDP 5-tuples.
    pub udp_flows: u64,
}

/// Checks the client's report of the main run: everything answered, split 3:1 (TCP) and 1:1
/// (UDP) within 10 %.
pub fn check_main_run(res: &Value) -> MainRun {
    assert_eq!(res["tcp"]["ok"], 200, "{res}");
    assert_eq!(res["udp"]["ok"], 200, "{res}");
    let t1 = res["tcp"]["by_server"]["srv1"].as_u64().unwrap();
    let t2 = res["tcp"]["by_server"]["srv2"].as_u64().unwrap();
    let u1 = res["udp"]["by_server"]["srv1"].as_u64().unwrap();
    let u2 = res["udp"]["by_server"]["srv2"].as_u64().unwrap();
    // wrr 3:1 and rr 1:1, each within 10 %.
    assert!(
        (135..=165).contains(&t1) && t1 + t2 == 200,
        "tcp split {t1}/{t2}"
    );
    assert!(
        (90..=110).contains(&u1) && u1 + u2 == 200,
        "udp split {u1}/{u2}"
    );
    let udp_retries = res["udp"]["retries"].as_u64().unwrap();
    // The kernel may hand out a UDP source port again within the flow timeout: the same
    // 5-tuple is then the same flow, so rvs's count is that of distinct 5-tuples.
    let udp_flows = res["udp"]["flows"].as_u64().unwrap();
    assert!((190..=200).contains(&udp_flows), "{res}");
    MainRun {
        tcp: (t1, t2),
        udp_retries,
        udp_flows,
    }
}

/// rvs's counters agree with what the client saw of the main run: services 0 (`web`) and 1
/// count its connections and flows, per server for `web`, and every UDP request once.
pub fn assert_main_run_stats(s: &Value, run: &MainRun) {
    let web = &s["services"][0];
    let udp = &s["services"][1];
    assert_eq!(web["name"], "web");
    assert_eq!(web["counters"]["conns"], 200, "{web}");
    assert_eq!(
        udp["counters"]["conns"].as_u64().unwrap(),
        run.udp_flows,
        "{udp}"
    );
    assert_eq!(
        web["servers"][0]["counters"]["conns"].as_u64().unwrap(),
        run.tcp.0
    );
    assert_eq!(
        web["servers"][1]["counters"]["conns"].as_u64().unwrap(),
        run.tcp.1
    );
    assert_eq!(
        udp["counters"]["pkts_in"].as_u64().unwrap(),
        200 + run.udp_retries,
        "{udp}"
    );
}

/// The rvs binary a lab test runs: `RVS_LAB_BIN` if set (e.g. a build from another work
/// tree), else the one cargo built with the test.
pub fn rvs_bin() -> PathBuf {
    std::env::var_os("RVS_LAB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rvs")))
}

/// Where a run of rvs keeps its files.
#[derive(Clone, Debug)]
pub struct Paths {
    pub config: PathBuf,
    pub stats: PathBuf,
    pub log: PathBuf,
}

/// A lab brought up by scripts/lab.sh, with rvs once started. Dropping it stops rvs, tears the
/// lab down and removes its temporary directory however the test ends.
pub struct Lab {
    prefix: String,
    mode: Option<String>,
    rvs: Option<Child>,
    dir: PathBuf,
    paths: Paths,
}

impl Lab {
    /// Brings up the lab whose namespaces are named `<prefix>-*` (`RVS_LAB=<prefix>`), in
    /// `mode` (`RVS_LAB_MODE`) if given, with a temporary directory named after `tag`.
    pub fn up(prefix: &str, mode: Option<&str>, tag: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!("rvs-lab-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            prefix: prefix.to_owned(),
            mode: mode.map(str::to_owned),
            rvs: None,
            paths: Paths {
                config: dir.join("rvs.toml"),
                stats: dir.join("stats.json"),
                log: dir.join("rvs.log"),
            },
            dir,
        };
        let up = lab.script("up");
        assert!(
            up.status.success(),
            "lab up failed: {}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        lab
    }

    /// Runs `scripts/lab.sh <cmd>` for this lab.
    pub fn script(&self, cmd: &str) -> Output {
        let mut c = Command::new("bash");
        c.arg(root().join("scripts/lab.sh"))
            .arg(cmd)
            .env("RVS_LAB", &self.prefix);
        if let Some(mode) = &self.mode {
            c.env("RVS_LAB_MODE", mode);
        }
        c.output().expect("run scripts/lab.sh")
    }

    /// The full name of the lab namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Runs a command inside a lab namespace and returns its stdout (panics on failure).
    pub fn in_ns(&self, name: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(name)])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.ns(name),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts rvs in the `lb` namespace with `config_text` as its config and a stats file, and
    /// waits (at most 30 s) for its first stats publication.
    pub fn start_rvs(&mut self, config_text: &str) -> Paths {
        self.start_rvs_bin(Path::new(env!("CARGO_BIN_EXE_rvs")), config_text)
    }

    /// [`Lab::start_rvs`] with the rvs binary at `bin` (see [`rvs_bin`]).
    pub fn start_rvs_bin(&mut self, bin: &Path, config_text: &str) -> Paths {
        assert!(self.rvs.is_none(), "rvs already running");
        let p = self.paths.clone();
        std::fs::write(&p.config, config_text).unwrap();
        let log = std::fs::File::create(&p.log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb")])
            .arg(bin)
            .args(["run", "--config"])
            .arg(&p.config)
            .arg("--stats-file")
            .arg(&p.stats)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.rvs = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_stats(&p.stats).is_none() {
            if let Some(c) = self.rvs.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("rvs exited early ({st}): {}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "rvs did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The pid of the running rvs (that of `ip netns exec`'s process).
    pub fn rvs_pid(&self) -> u32 {
        self.rvs.as_ref().expect("rvs not running").id()
    }

    /// Runs scripts/lab/client.py with `args` in the client namespace and parses its report.
    pub fn client(&self, args: &[&str]) -> Value {
        let script = root().join("scripts/lab/client.py");
        let mut argv = vec![python(), script.to_str().unwrap()];
        argv.extend_from_slice(args);
        let out = self.in_ns("cli", &argv);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out}: {e}"))
    }

    /// The value of `key` in `scripts/lab.sh env` for this lab (LAB_RUN_DIR, LAB_FTP_DIR...).
    pub fn env_var(&self, key: &str) -> Option<String> {
        let out = self.script("env");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(
                v.strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(v)
                    .to_owned(),
            )
        })
    }

    /// Runs scripts/lab/ftp_client.py with `args` in the client namespace: its JSON report and
    /// whether it exited 0 (every session passed). Panics only if it printed no report.
    pub fn ftp_client(&self, args: &[&str]) -> (Value, bool) {
        let script = root().join("scripts/lab/ftp_client.py");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("cli"), python()])
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "ftp_client.py ({}) printed no report: {e}\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (v, out.status.success())
    }

    /// rvs's latest stats publication (panics if there is none).
    pub fn stats(&self) -> Value {
        read_stats(&self.paths.stats).expect("no stats file")
    }

    /// What rvs has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.paths.log).unwrap_or_default()
    }

    /// Stops rvs with SIGTERM and returns its exit status (panics if it takes over 15 s).
    pub fn stop_rvs(&mut self) -> ExitStatus {
        let mut child = self.rvs.take().expect("rvs not running");
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rvs did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.rvs.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.script("down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs scripts/kernel-compare.sh with `env` (KC_* variables) and the rvs binary under test, as
/// root, and returns its JSON lines (one per run) and its stderr. The script builds and removes
/// its own namespaces (prefix `KC_NS`); its results go to a fresh directory, not target/bench.
pub fn kernel_compare(env: &[(&str, &str)]) -> (Vec<Value>, String) {
    let ns = env
        .iter()
        .find(|(k, _)| *k == "KC_NS")
        .map_or("rvskc", |(_, v)| *v);
    let out = std::env::temp_dir().join(format!("rvs-kc-test-{}-{ns}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new("bash")
        .arg(root().join("scripts/kernel-compare.sh"))
        .env("RVS", env!("CARGO_BIN_EXE_rvs"))
        .env("KC_OUT", &out)
        .env("KC_NO_QUIET", "1")
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "kernel-compare.sh failed ({}):\n{stderr}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    let text = std::fs::read_to_string(out.join("kernel-compare.jsonl")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (rows, stderr)
}
