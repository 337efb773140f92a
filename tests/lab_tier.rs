//! Namespace lab tier: the real rvs binary on net_af_packet legs in network namespaces, with
//! real kernel TCP/UDP peers (scripts/lab.sh, scripts/lab/peer.py) and a real client
//! (scripts/lab/client.py). Needs root. Run: `cargo test --release --features lab-tests --test lab_tier`.
//!
//! The lab uses only RFC 5737 addresses inside namespaces this test creates; a guard tears the
//! lab down and kills rvs even when an assertion fails.
#![cfg(feature = "lab-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/lab.rs"]
mod lab;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use lab::{
    assert_accounting, assert_handed_over, assert_main_run_stats, check_main_run, drops_total, Lab,
    MAIN_RUN,
};

const LAB: &str = "rvst";

#[test]
fn nat_lab_one_worker() {
    nat_lab(1);
}

/// Two workers on two-queue af_packet legs: the kernel's fanout hash spreads frames over both
/// queues without regard to rvs's flow ownership, so replies and requests land on the wrong
/// worker and must be handed over.
#[test]
fn nat_lab_two_workers_hand_over() {
    assert_handed_over(&nat_lab(2));
}

/// The schedulers the main run does not use (it uses wrr and rr), and their VIP ports.
const SCHEDULERS: [(&str, u16); 6] = [
    ("lc", 8082),
    ("wlc", 8083),
    ("sed", 8084),
    ("nq", 8085),
    ("sh", 8086),
    ("mh", 8087),
];

/// Runs the lab with `workers` workers, checks everything, and returns rvs's final stats.
fn nat_lab(workers: usize) -> Value {
    let mut lab = Lab::up(LAB, None, &format!("tier-{workers}"));
    // The lab's config with a file prefix and stats interval of our own.
    let cfg = lab::config("lab.toml", "rvs-lab", "rvs-lab-tier", workers);
    // Every other IPVS scheduler gets a service of its own, so each runs on 1 and 2 workers. They
    // are full NAT, each with its own local address: several NAT services sending to the same
    // server:port would make a reused client port ambiguous in replies (rvs refuses such a
    // flow as `flow_conflict` rather than guess).
    let cfg = cfg
        + &SCHEDULERS
            .iter()
            .enumerate()
            .map(|(i, (name, port))| {
                let laddr = 3 + i;
                format!(
                    "\n[[service]]\nname = \"sched-{name}\"\nprotocol = \"tcp\"\nvip = \"203.0.113.100\"\n\
                     port = {port}\nscheduler = \"{name}\"\nforward = \"fnat\"\nlocal_addresses = [\"198.51.100.{laddr}\"]\n\n[[service.server]]\naddress = \"198.51.100.11\"\n\
                     port = 8080\nweight = 2\n\n[[service.server]]\naddress = \"198.51.100.12\"\nport = 8080\n"
                )
            })
            .collect::<String>();
    let paths = lab.start_rvs(&cfg);

    // ARP: the client forgets everything, then must learn the VIP's MAC from rvs.
    lab.in_ns("cli", &["ip", "neigh", "flush", "all"]);
    let ping = lab.in_ns(
        "cli",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "203.0.113.100"],
    );
    assert!(ping.contains("3 received"), "{ping}");
    let neigh = lab.in_ns("cli", &["ip", "neigh", "show", "203.0.113.100"]);
    assert!(neigh.contains("lladdr"), "VIP not resolved by ARP: {neigh}");

    // 200 TCP connections and 200 UDP exchanges from 8 client addresses.
    let run = check_main_run(&lab.client(MAIN_RUN));

    // Full NAT: the servers must see rvs's local address, and every reply come back through it.
    let fnat = lab.client(&[
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
    ]);
    assert_eq!(fnat["tcp"]["ok"], 100, "{fnat}");
    let f1 = fnat["tcp"]["by_server"]["srv1"].as_u64().unwrap();
    assert!((45..=55).contains(&f1), "fnat rr split {f1}/{}", 100 - f1);

    // The other schedulers: 40 connections each, all answered. The connection-counting ones
    // must use both servers (closed flows linger as inactive, which they weigh); sh and mh hash
    // the 8 client addresses, which may all land on one server.
    let mut sched_runs = Vec::new();
    for (name, port) in SCHEDULERS {
        let laddr = format!("198.51.100.{}", 3 + sched_runs.len());
        let r = lab.client(&[
            "--vip",
            "203.0.113.100",
            "--tcp-port",
            &port.to_string(),
            "--count",
            "40",
            "--proto",
            "tcp",
            "--seen-from",
            &laddr,
        ]);
        assert_eq!(r["tcp"]["ok"], 40, "{name}: {r}");
        if !matches!(name, "sh" | "mh") {
            for srv in ["srv1", "srv2"] {
                assert!(
                    r["tcp"]["by_server"][srv].as_u64().unwrap() > 0,
                    "{name} never used {srv}: {r}"
                );
            }
        }
        sched_runs.push((name, r));
    }

    // rvs's own counters agree with what the client saw (wait for a fresh publication).
    std::thread::sleep(Duration::from_millis(2500));
    let s = lab.stats();
    assert_eq!(s["services"][2]["name"], "web-fnat");
    assert_eq!(
        s["services"][2]["counters"]["conns"], 100,
        "{}",
        s["services"][2]
    );
    assert_main_run_stats(&s, &run);
    for (i, (name, r)) in sched_runs.iter().enumerate() {
        let svc = &s["services"][3 + i];
        assert_eq!(svc["name"], format!("sched-{name}"));
        assert_eq!(svc["counters"]["conns"], 40, "{svc}");
        for (k, srv) in ["srv1", "srv2"].iter().enumerate() {
            assert_eq!(
                svc["servers"][k]["counters"]["conns"], r["tcp"]["by_server"][*srv],
                "{name}: {svc}"
            );
        }
    }
    // Every UDP exchange is one datagram each way.
    assert_eq!(
        s["services"][1]["counters"]["pkts_out"].as_u64().unwrap(),
        200
    );
    let c = &s["counters"];
    assert!(c["icmp_echo_replies"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["arp_replies_sent"].as_u64().unwrap() >= 1, "{c}");
    // Port addresses (2), the VIP, and the 7 full-NAT local addresses.
    assert_eq!(c["garp_sent"].as_u64().unwrap(), 10, "{c}");
    assert_eq!(drops_total(&s), 0, "unexpected drops: {}", s["drops"]);
    // Drain srv1 at run time: weight 0 in the file, SIGHUP. Every new connection, on every
    // worker, must then go to srv2.
    let drained =
        std::fs::read_to_string(&paths.config)
            .unwrap()
            .replacen("weight = 3", "weight = 0", 1);
    std::fs::write(&paths.config, drained).unwrap();
    // `ip netns exec` runs rvs as its child: signal the process that runs the config.
    let hup = Command::new("pkill")
        .args(["-HUP", "-f", paths.config.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(hup.success(), "no rvs to signal (pid {})", lab.rvs_pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.log().contains("rvs: reload applied") {
        assert!(Instant::now() < deadline, "no reload: {}", lab.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = lab.client(&[
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
    ]);
    assert_eq!(after["tcp"]["ok"], 40, "{after}");
    assert_eq!(
        after["tcp"]["by_server"]["srv1"], 0,
        "a drained server got new connections: {after}"
    );
    assert_eq!(after["tcp"]["by_server"]["srv2"], 40, "{after}");

    // SIGTERM: a clean stop with the final report.
    let status = lab.stop_rvs();
    assert!(status.success(), "rvs exit status {status}");
    let log = lab.log();
    assert!(log.contains("rvs: final counters"), "{log}");
    assert!(
        log.contains("service web tcp 203.0.113.100:80 wrr: conns=240"),
        "{log}"
    );
    assert!(log.contains("-> 198.51.100.11:8080 weight 0:"), "{log}");
    let fin = lab.stats();
    assert_eq!(fin["final"], true);
    assert_accounting(&fin);
    fin
}
