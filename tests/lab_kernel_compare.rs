//! Namespace lab tier: the external-DUT generator (`rvs bench --dut external`) through both
//! devices under test of scripts/kernel-compare.sh — the Linux kernel (nft DNAT with conntrack)
//! and `rvs run` on the same veths — at a modest paced rate. Needs root. Run:
//! `cargo test --release --features lab-tests --test lab_kernel_compare`.
//!
//! Short on purpose (1 000 flows, 1 s at 50 kpps per DUT): it checks that the method works —
//! every flow is established by handshakes both DUTs accept, nothing is lost, the kernel really
//! translated the VIP (the sink counts only frames to the server's address and port) — not the
//! figures. The script removes its namespaces even when it fails; the test checks they are gone.
//! A second test drives the script's zero-loss rate search (`KC_RATE=search`) through its
//! bisection with a loss threshold no run can meet.
#![cfg(feature = "lab-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::sync::Mutex;

const NS: &str = "rvskct";
/// The tests pin the same CPUs and build namespaces: one at a time, whatever the test threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn namespaces_removed(ns: &str) {
    for side in ["gen", "dut"] {
        assert!(
            !Path::new(&format!("/run/netns/{ns}-{side}")).exists(),
            "namespace {ns}-{side} left behind"
        );
    }
}

#[test]
fn both_duts_forward_every_packet() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (rows, log) = lab::kernel_compare(&[
        ("KC_NS", NS),
        ("KC_ROWS", "kernel rvs-veth"),
        ("KC_FLOWS", "1000"),
        ("KC_RATE", "50k"),
        ("KC_DURATION", "1"),
        ("KC_WARMUP", "0.5"),
    ]);
    namespaces_removed(NS);
    assert_eq!(rows.len(), 2, "{log}");
    for (r, dut) in rows.iter().zip(["kernel", "rvs-veth"]) {
        assert_eq!(r["dut"], dut, "{r}");
        assert_eq!(r["flows"], 1000, "{r}");
        let sent = r["sent_total"].as_u64().unwrap();
        // 1.5 s at 50 kpps, give or take the pacer's start.
        assert!(sent > 60_000, "{dut}: only {sent} sent: {r}");
        assert_eq!(r["received_total"], sent, "{dut} lost packets: {r}");
        assert_eq!(r["lost"], 0, "{r}");
        assert_eq!(r["gen_lost"], 0, "{r}");
        // Everything the sink saw was addressed to the server: the DUT translated the VIP.
        assert_eq!(r["sink_other"], 0, "{dut}: frames not DNATed: {r}");
        assert_eq!(r["client_side_frames"], 0, "{r}");
        let out = r["out_pps"].as_f64().unwrap();
        assert!((40_000.0..60_000.0).contains(&out), "{dut}: {out} pps: {r}");
        assert!(r["latency"]["samples"].as_u64().unwrap() > 0, "{r}");
        assert!(r["dut_busy"].as_f64().unwrap() > 0.0, "{r}");
    }
    // The kernel's DNAT rule matched each connection's first packet once.
    assert!(
        log.contains("kernel nft counter: packets 1000 "),
        "the kernel's DNAT rule did not see 1000 connections:\n{log}"
    );
}

/// `KC_RATE=search` (the script's default) bisects below `--rate max` while a run loses more
/// than `KC_LOSS`. With a threshold no run can meet, every step must halve the rate, and the
/// row reported is the last run, with every trial in its `search` field.
#[test]
fn search_bisects_below_a_lossy_rate() {
    const NS: &str = "rvskcs";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (rows, log) = lab::kernel_compare(&[
        ("KC_NS", NS),
        ("KC_ROWS", "kernel"),
        ("KC_FLOWS", "1000"),
        ("KC_RATE", "search"),
        ("KC_LOSS", "-1"),
        ("KC_SEARCH_STEPS", "2"),
        ("KC_DURATION", "0.5"),
        ("KC_WARMUP", "0.2"),
    ]);
    namespaces_removed(NS);
    assert_eq!(rows.len(), 1, "{log}");
    let trials = rows[0]["search"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{}", rows[0]);
    assert_eq!(trials[0]["rate"], "max");
    let offered = trials[0]["offered_pps"].as_f64().unwrap();
    assert!(
        offered > 10_000.0,
        "the generator offered {offered} pps at max"
    );
    let rate = |i: usize| trials[i]["rate"].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(rate(1), offered.round() as u64 / 2, "{trials:?}");
    assert_eq!(rate(2), rate(1) / 2, "{trials:?}");
    // Paced runs offer what they were asked for.
    let paced = trials[2]["offered_pps"].as_f64().unwrap();
    assert!(
        (paced - rate(2) as f64).abs() < 0.1 * rate(2) as f64,
        "{trials:?}"
    );
    assert_eq!(
        rows[0]["rate"], trials[2]["rate"],
        "the last run is reported"
    );
    assert!(log.contains("no run lost at most -1"), "{log}");
}
