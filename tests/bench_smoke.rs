#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `rvs bench` end to end (the real binary, its own EAL on ring ports): a short NAT run must
//! move packets through the worker, out of the server-side port, and drop nothing. Needs root,
//! like every `dpdk-tests` tier: `cargo test --features dpdk-tests --test bench_smoke`.

use std::process::Command;

#[test]
fn nat_bench_forwards_and_reports_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args([
            "bench",
            "--scenario",
            "nat",
            "--flows",
            "1000",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
            "--file-prefix",
            "rvs-bench-smoke",
        ])
        .output()
        .expect("run rvs bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rvs bench failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_eq!(v["scenario"], "nat");
    let mpps = v["mpps"].as_f64().unwrap();
    assert!(mpps > 0.0, "{v}");
    assert!(v["cycles_per_packet"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["unexpected_drops"], 0, "drops: {}", v["drops"]);
    // NAT sends client packets out of the server-side port, and all of them.
    assert_eq!(v["out_by_port"][0], 0, "{v}");
    assert!(v["out_by_port"][1].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        v["per_worker"][0]["flows"], 1000,
        "every flow was created: {v}"
    );
    assert!(v["latency"]["samples"].as_u64().unwrap() > 0, "{v}");
    assert!(v["memory"]["flows"].as_u64().unwrap() >= 1000, "{v}");
}

#[test]
fn bench_refuses_bad_options_before_dpdk() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["bench", "--scenario", "nat", "--size", "20"])
        .output()
        .expect("run rvs bench");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size 20"));
}
