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

#[path = "common/lab.rs"]
mod lab;

use std::time::Duration;

use serde_json::Value;

use lab::{
    assert_accounting, assert_handed_over, assert_main_run_stats, check_main_run, drops_total, Lab,
    MAIN_RUN,
};

const LAB: &str = "rvsd";
const VIP: &str = "203.0.113.100";

/// Frames the client has received on an interface (its own namespace's sysfs).
fn rx_packets(lab: &Lab, ifname: &str) -> u64 {
    lab.in_ns(
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

#[test]
fn dr_lab_one_worker() {
    dr_lab(1);
}

/// Two workers on two-queue af_packet legs: the kernel's fanout hash decides each frame's
/// queue without regard to rvs's flow ownership, so frames reach the wrong worker and must be
/// handed over; DR must behave exactly as with one worker.
#[test]
fn dr_lab_two_workers() {
    assert_handed_over(&dr_lab(2));
}

/// Runs the DR lab with `workers` workers, checks everything, and returns rvs's final stats.
fn dr_lab(workers: usize) -> Value {
    let mut lab = Lab::up(LAB, Some("dr"), &format!("dr-{workers}"));
    let env = String::from_utf8_lossy(&lab.script("env").stdout).into_owned();
    assert!(env.contains("LAB_MODE=dr\n"), "{env}");
    assert!(
        env.contains(&format!("LAB_NS_RTR={}\n", lab.ns("rtr"))),
        "{env}"
    );

    // The DR lab's config with a file prefix and stats interval of our own.
    let cfg = lab::config("lab-dr.toml", "rvs-lab-dr", "rvs-lab-dr-test", workers);
    lab.start_rvs(&cfg);

    // ARP: the client forgets everything, then must learn the VIP's MAC from rvs (on cli0).
    lab.in_ns("cli", &["ip", "neigh", "flush", "all"]);
    let ping = lab.in_ns("cli", &["ping", "-c", "3", "-i", "0.2", "-W", "2", VIP]);
    assert!(ping.contains("3 received"), "{ping}");
    let neigh = lab.in_ns("cli", &["ip", "neigh", "show", VIP]);
    assert!(
        neigh.contains("dev cli0") && neigh.contains("lladdr"),
        "VIP not resolved by ARP on cli0: {neigh}"
    );

    // 200 TCP connections and 200 UDP exchanges from 8 client addresses. client.py checks that
    // every reply names a server, shows the client's own address and port, and (UDP) comes
    // from the VIP itself.
    let cli1_before = rx_packets(&lab, "cli1");
    let res = lab.client(MAIN_RUN);
    assert_eq!(res["tcp"]["failed"], 0, "{res}");
    assert_eq!(res["udp"]["failed"], 0, "{res}");
    let run = check_main_run(&res);
    // The replies came in on cli1, from the router (every TCP connection at least a SYN-ACK
    // and its reply line, every UDP exchange one datagram).
    let cli1_rx = rx_packets(&lab, "cli1") - cli1_before;
    assert!(cli1_rx >= 3 * 200, "only {cli1_rx} frames arrived on cli1");

    // rvs's own counters agree with what the client saw (wait for a fresh publication).
    std::thread::sleep(Duration::from_millis(2500));
    let s = lab.stats();
    assert_main_run_stats(&s, &run);
    let web = &s["services"][0];
    let udp = &s["services"][1];
    assert_eq!(udp["name"], "dns-like");
    // DR: rvs sees only client -> VIP; nothing ever went back out through it.
    assert_eq!(web["counters"]["pkts_out"], 0, "{web}");
    assert_eq!(udp["counters"]["pkts_out"], 0, "{udp}");
    let c = &s["counters"];
    assert_eq!(c["nat_out_packets"], 0, "a reply came through rvs: {c}");
    assert!(c["icmp_echo_replies"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["arp_replies_sent"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["garp_sent"], 3, "{c}");
    assert_eq!(s["drops"]["unexpected_reply"], 0, "{}", s["drops"]);
    assert_eq!(drops_total(&s), 0, "unexpected drops: {}", s["drops"]);

    // SIGTERM: a clean stop with the final report.
    let status = lab.stop_rvs();
    assert!(status.success(), "rvs exit status {status}");
    let log = lab.log();
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
    let fin = lab.stats();
    assert_eq!(fin["final"], true);
    let c = &fin["counters"];
    assert_eq!(c["nat_out_packets"].as_u64().unwrap(), 0, "{c}");
    assert_eq!(drops_total(&fin), 0, "unexpected drops: {}", fin["drops"]);
    assert_accounting(&fin);
    fin
}
