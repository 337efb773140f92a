//! Namespace lab tier: the real rvs binary on net_af_packet legs in network namespaces, with
//! real kernel TCP/UDP peers (scripts/lab.sh, scripts/lab/peer.py) and a real client
//! (scripts/lab/client.py). Needs root. Run: `cargo test --release --features lab-tests --test lab_tier`.
//!
//! The lab uses only RFC 5737 addresses inside namespaces this test creates; a guard tears the
//! lab down and kills rvs even when an assertion fails.
#![cfg(feature = "lab-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LAB: &str = "rvst";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab(cmd: &str) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("scripts/lab.sh"))
        .arg(cmd)
        .env("RVS_LAB", LAB)
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

#[test]
fn nat_lab_one_worker() {
    nat_lab(1);
}

/// Two workers on two-queue af_packet legs: the kernel's fanout hash spreads frames over both
/// queues without regard to rvs's flow ownership, so replies and requests land on the wrong
/// worker and must be handed over.
#[test]
fn nat_lab_two_workers_hand_over() {
    let s = nat_lab(2);
    let c = &s["counters"];
    let (out, inn) = (
        c["handover_out"].as_u64().unwrap(),
        c["handover_in"].as_u64().unwrap(),
    );
    assert!(out > 0, "no frame was handed over: {c}");
    assert_eq!(out, inn, "every frame handed over was received: {c}");
}

/// Runs the lab with `workers` workers, checks everything, and returns rvs's final stats.
fn nat_lab(workers: usize) -> Value {
    let dir = std::env::temp_dir().join(format!("rvs-lab-tier-{}-{workers}", std::process::id()));
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

    // The lab's config with a file prefix and stats interval of our own.
    let cfg = std::fs::read_to_string(root().join("config/lab.toml")).unwrap();
    let cfg = cfg
        .replace("\"rvs-lab\"", "\"rvs-lab-tier\"")
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
    let cfg_path = dir.join("lab.toml");
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

    // ARP: the client forgets everything, then must learn the VIP's MAC from rvs.
    in_ns("cli", &["ip", "neigh", "flush", "all"]);
    let ping = in_ns(
        "cli",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "203.0.113.100"],
    );
    assert!(ping.contains("3 received"), "{ping}");
    let neigh = in_ns("cli", &["ip", "neigh", "show", "203.0.113.100"]);
    assert!(neigh.contains("lladdr"), "VIP not resolved by ARP: {neigh}");

    // 200 TCP connections and 200 UDP exchanges from 8 client addresses.
    let out = in_ns(
        "cli",
        &[
            python(),
            root().join("scripts/lab/client.py").to_str().unwrap(),
            "--vip",
            "203.0.113.100",
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

    // Full NAT: the servers must see rvs's local address, and every reply come back through it.
    let out = in_ns(
        "cli",
        &[
            python(),
            root().join("scripts/lab/client.py").to_str().unwrap(),
            "--vip",
            "203.0.113.100",
            "--tcp-port",
            "8081",
            "--count",
            "100",
            "--proto",
            "tcp",
            "--seen-from",
            "198.51.100.2",
        ],
    );
    let fnat: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out}: {e}"));
    assert_eq!(fnat["tcp"]["ok"], 100, "{fnat}");
    let f1 = fnat["tcp"]["by_server"]["srv1"].as_u64().unwrap();
    assert!((45..=55).contains(&f1), "fnat rr split {f1}/{}", 100 - f1);

    // rvs's own counters agree with what the client saw (wait for a fresh publication).
    std::thread::sleep(Duration::from_millis(2500));
    let s = read_stats(&stats).unwrap();
    let web = &s["services"][0];
    let udp = &s["services"][1];
    assert_eq!(s["services"][2]["name"], "web-fnat");
    assert_eq!(
        s["services"][2]["counters"]["conns"], 100,
        "{}",
        s["services"][2]
    );
    assert_eq!(web["name"], "web");
    assert_eq!(web["counters"]["conns"], 200, "{web}");
    assert_eq!(
        udp["counters"]["conns"].as_u64().unwrap(),
        udp_flows,
        "{udp}"
    );
    assert_eq!(web["servers"][0]["counters"]["conns"].as_u64().unwrap(), t1);
    assert_eq!(web["servers"][1]["counters"]["conns"].as_u64().unwrap(), t2);
    // Every UDP exchange is one datagram each way.
    assert_eq!(
        udp["counters"]["pkts_in"].as_u64().unwrap(),
        200 + udp_retries
    );
    assert_eq!(udp["counters"]["pkts_out"].as_u64().unwrap(), 200);
    let c = &s["counters"];
    assert!(c["icmp_echo_replies"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["arp_replies_sent"].as_u64().unwrap() >= 1, "{c}");
    // Port addresses (2), the VIP, and the full-NAT local address.
    assert_eq!(c["garp_sent"].as_u64().unwrap(), 4, "{c}");
    let drops: u64 = s["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(drops, 0, "unexpected drops: {}", s["drops"]);
    // Drain srv1 at run time: weight 0 in the file, SIGHUP. Every new connection, on every
    // worker, must then go to srv2.
    let drained =
        std::fs::read_to_string(&cfg_path)
            .unwrap()
            .replacen("weight = 3", "weight = 0", 1);
    std::fs::write(&cfg_path, drained).unwrap();
    let pid = guard.rvs.as_ref().unwrap().id();
    // `ip netns exec` runs rvs as its child: signal the process that runs the config.
    let hup = Command::new("pkill")
        .args(["-HUP", "-f", cfg_path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(hup.success(), "no rvs to signal (pid {pid})");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(dir.join("rvs.log"))
        .unwrap_or_default()
        .contains("rvs: reload applied")
    {
        assert!(
            Instant::now() < deadline,
            "no reload: {}",
            std::fs::read_to_string(dir.join("rvs.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = in_ns(
        "cli",
        &[
            python(),
            root().join("scripts/lab/client.py").to_str().unwrap(),
            "--vip",
            "203.0.113.100",
            "--tcp-port",
            "80",
            "--udp-port",
            "9000",
            "--count",
            "40",
            "--proto",
            "tcp",
        ],
    );
    let after: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out}: {e}"));
    assert_eq!(after["tcp"]["ok"], 40, "{after}");
    assert_eq!(
        after["tcp"]["by_server"]["srv1"], 0,
        "a drained server got new connections: {after}"
    );
    assert_eq!(after["tcp"]["by_server"]["srv2"], 40, "{after}");

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
    assert!(
        log.contains("service web tcp 203.0.113.100:80 wrr: conns=240"),
        "{log}"
    );
    assert!(log.contains("-> 198.51.100.11:8080 weight 0:"), "{log}");
    let fin = read_stats(&stats).unwrap();
    assert_eq!(fin["final"], true);
    let c = &fin["counters"];
    // Exact accounting: every frame received from a NIC was forwarded, answered, consumed,
    // handed to its owner, or dropped (a frame handed over is processed once more by its owner,
    // so handover_in frames come on top of rx).
    let g = |k: &str| c[k].as_u64().unwrap();
    let drops: u64 = fin["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        g("rx_packets") + g("handover_in"),
        g("nat_in_packets")
            + g("nat_out_packets")
            + g("icmp_echo_replies")
            + g("arp_replies_sent")
            + g("arp_consumed")
            + g("handover_out")
            + drops,
        "accounting: {c}"
    );
    fin
}
