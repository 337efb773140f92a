//! Namespace lab, direct-routing mode: the real rvs binary on net_af_packet legs with
//! `forward = "dr"` (config/lab-dr.toml), real kernel TCP/UDP peers that hold the VIP on `lo`
//! and answer clients through the lab's router, never through rvs
//! (`RVS_LAB_MODE=dr scripts/lab.sh up`). Needs root. Run:
//! `cargo test --release --features dpdk-tests,lab-tests --test lab_dr -- --test-threads=1`.
//!
//! The lab uses only RFC 5737 addresses inside namespaces this test creates (prefix `rvsd`, so
//! it never meets lab_tier's `rvst`); a guard tears the lab down and kills rvs even when an
//! assertion fails.
#![cfg(feature = "lab-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LAB: &str = "rvsd";
const VIP: &str = "203.0.113.100";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab(cmd: &str) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("scripts/lab.sh"))
        .arg(cmd)
        .env("RVS_LAB", LAB)
        .env("RVS_LAB_MODE", "dr")
        .output()
        .expect("run scripts/lab.sh")
}

fn ns(name: &str) -> String {
    format!("{LAB}-{name}")
}

/// Runs a command inside a lab namespace and returns its stdout (panics on failure).
fn in_ns(name: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns(name)])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} in {} failed: {}{}",
        ns(name),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tears the lab down and stops rvs however the test ends.
struct Lab {
    rvs: Option<Child>,
    dir: PathBuf,
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
        let _ = lab("down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_stats(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Frames the client has received on an interface (its own namespace's sysfs).
fn rx_packets(ifname: &str) -> u64 {
    in_ns(
        "cli",
        &[
            "cat",
            &format!("/sys/class/net/{ifname}/statistics/rx_packets"),
        ],
    )
    .trim()
    .parse()
    .unwrap()
}

fn drops_total(s: &Value) -> u64 {
    s["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn dr_lab_one_worker() {
    dr_lab(1);
}

/// Two workers on two-queue af_packet legs: the kernel's fanout hash decides each frame's
/// queue without regard to rvs's flow ownership, so frames reach the wrong worker and must be
/// handed over; DR must behave exactly as with one worker.
#[test]
fn dr_lab_two_workers() {
    let s = dr_lab(2);
    let c = &s["counters"];
    let (out, inn) = (
        c["handover_out"].as_u64().unwrap(),
        c["handover_in"].as_u64().unwrap(),
    );
    assert!(out > 0, "no frame was handed over: {c}");
    assert_eq!(out, inn, "every frame handed over was received: {c}");
}

/// Runs the DR lab with `workers` workers, checks everything, and returns rvs's final stats.
fn dr_lab(workers: usize) -> Value {
    let dir = std::env::temp_dir().join(format!("rvs-lab-dr-{}-{workers}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut guard = Lab {
        rvs: None,
        dir: dir.clone(),
    };
    let up = lab("up");
    assert!(
        up.status.success(),
        "lab up failed: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let env = String::from_utf8_lossy(&lab("env").stdout).into_owned();
    assert!(env.contains("LAB_MODE=dr\n"), "{env}");
    assert!(
        env.contains(&format!("LAB_NS_RTR={}\n", ns("rtr"))),
        "{env}"
    );

    // The DR lab's config with a file prefix and stats interval of our own.
    let cfg = std::fs::read_to_string(root().join("config/lab-dr.toml")).unwrap();
    assert!(cfg.contains("\"rvs-lab-dr\"") && cfg.contains("interval_secs = 2"));
    let cfg = cfg
        .replace("\"rvs-lab-dr\"", "\"rvs-lab-dr-test\"")
        .replace("interval_secs = 2", "interval_secs = 1");
    let cfg = if workers > 1 {
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
    };
    let cfg_path = dir.join("lab-dr.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let stats = dir.join("stats.json");
    let log = std::fs::File::create(dir.join("rvs.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns("lb")])
        .arg(env!("CARGO_BIN_EXE_rvs"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .arg("--stats-file")
        .arg(&stats)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    guard.rvs = Some(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_stats(&stats).is_none() {
        if let Some(c) = guard.rvs.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "rvs exited early ({st}): {}",
                    std::fs::read_to_string(dir.join("rvs.log")).unwrap_or_default()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "rvs did not start: {}",
            std::fs::read_to_string(dir.join("rvs.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // ARP: the client forgets everything, then must learn the VIP's MAC from rvs (on cli0).
    in_ns("cli", &["ip", "neigh", "flush", "all"]);
    let ping = in_ns("cli", &["ping", "-c", "3", "-i", "0.2", "-W", "2", VIP]);
    assert!(ping.contains("3 received"), "{ping}");
    let neigh = in_ns("cli", &["ip", "neigh", "show", VIP]);
    assert!(
        neigh.contains("dev cli0") && neigh.contains("lladdr"),
        "VIP not resolved by ARP on cli0: {neigh}"
    );

    // 200 TCP connections and 200 UDP exchanges from 8 client addresses. client.py checks that
    // every reply names a server, shows the client's own address and port, and (UDP) comes
    // from the VIP itself.
    let cli1_before = rx_packets("cli1");
    let out = in_ns(
        "cli",
        &[
            python(),
            root().join("scripts/lab/client.py").to_str().unwrap(),
            "--vip",
            VIP,
            "--tcp-port",
            "80",
            "--udp-port",
            "9000",
            "--count",
            "200",
        ],
    );
    let res: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out}: {e}"));
    assert_eq!(res["tcp"]["ok"], 200, "{res}");
    assert_eq!(res["udp"]["ok"], 200, "{res}");
    assert_eq!(res["tcp"]["failed"], 0, "{res}");
    assert_eq!(res["udp"]["failed"], 0, "{res}");
    // The replies came in on cli1, from the router (every TCP connection at least a SYN-ACK
    // and its reply line, every UDP exchange one datagram).
    let cli1_rx = rx_packets("cli1") - cli1_before;
    assert!(cli1_rx >= 3 * 200, "only {cli1_rx} frames arrived on cli1");
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

    // rvs's own counters agree with what the client saw (wait for a fresh publication).
    std::thread::sleep(Duration::from_millis(2500));
    let s = read_stats(&stats).unwrap();
    let web = &s["services"][0];
    let udp = &s["services"][1];
    assert_eq!(web["name"], "web");
    assert_eq!(udp["name"], "dns-like");
    assert_eq!(web["counters"]["conns"], 200, "{s}");
    assert_eq!(
        udp["counters"]["conns"].as_u64().unwrap(),
        udp_flows,
        "{udp}"
    );
    assert_eq!(web["servers"][0]["counters"]["conns"].as_u64().unwrap(), t1);
    assert_eq!(web["servers"][1]["counters"]["conns"].as_u64().unwrap(), t2);
    // DR: rvs sees only client -> VIP; nothing ever went back out through it.
    assert_eq!(web["counters"]["pkts_out"], 0, "{web}");
    assert_eq!(udp["counters"]["pkts_out"], 0, "{udp}");
    assert_eq!(
        udp["counters"]["pkts_in"].as_u64().unwrap(),
        200 + udp_retries,
        "{udp}"
    );
    let c = &s["counters"];
    assert_eq!(c["nat_out_packets"], 0, "a reply came through rvs: {c}");
    assert!(c["icmp_echo_replies"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["arp_replies_sent"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["garp_sent"], 3, "{c}");
    assert_eq!(s["drops"]["unexpected_reply"], 0, "{}", s["drops"]);
    assert_eq!(drops_total(&s), 0, "unexpected drops: {}", s["drops"]);

    // SIGTERM: a clean stop with the final report.
    let mut child = guard.rvs.take().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rvs did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "rvs exit status {status}");
    let log = std::fs::read_to_string(dir.join("rvs.log")).unwrap();
    assert!(log.contains("rvs: final counters"), "{log}");
    for svc in [
        "service web tcp 203.0.113.100:80 wrr: conns=200 ",
        "service dns-like udp 203.0.113.100:9000 rr: conns=",
    ] {
        let line = log.lines().find(|l| l.contains(svc)).unwrap_or_default();
        assert!(line.contains(" pkts_out=0 "), "{svc}: {line}\n{log}");
    }
    // DR keeps the port: the servers are reached on the VIP's own ports.
    assert!(log.contains("-> 198.51.100.11:80 weight 3:"), "{log}");
    assert!(log.contains("-> 198.51.100.12:9000 weight 1:"), "{log}");
    let fin = read_stats(&stats).unwrap();
    assert_eq!(fin["final"], true);
    let c = &fin["counters"];
    let g = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(g("nat_out_packets"), 0, "{c}");
    assert_eq!(drops_total(&fin), 0, "unexpected drops: {}", fin["drops"]);
    // Exact accounting: every frame received from a NIC was forwarded, answered, consumed,
    // handed to its owner, or dropped (a frame handed over is processed once more by its owner,
    // so handover_in frames come on top of rx).
    assert_eq!(
        g("rx_packets") + g("handover_in"),
        g("nat_in_packets")
            + g("nat_out_packets")
            + g("icmp_echo_replies")
            + g("arp_replies_sent")
            + g("arp_consumed")
            + g("handover_out"),
        "accounting: {c}"
    );
    fin
}
