//! Namespace lab, FTP: the real rvs binary on net_af_packet legs with the FTP helper on, in
//! front of two real vsftpd servers (scripts/lab.sh starts them), driven by real FTP clients
//! (curl, lftp, Python's ftplib through scripts/lab/ftp_client.py) in every mode: passive EPSV,
//! PASV (with and without honouring the 227's address), active PORT and EPRT, and a session
//! that mixes all four over one control connection. For NAT, full NAT and DR, with one and
//! two workers: 50 sessions of 40 files at once, all from ONE client address (and, with two
//! workers, from eight), every byte checked, each session's data connections on its control
//! connection's server; then rvs's FTP counters must tell the same story (no refusals, no ring
//! drops, one expectation per data connection, 227/PORT rewrites where the method needs them).
//!
//! Frames of one client and server leave rvs in the order they reached its queues, even
//! around the slow path and across workers (`worker::order`). curl 7.88 in active mode fails a
//! transfer ("weird server reply") when the server's 226 reaches it before the ACK that
//! completes the data connection, so its active modes, with two workers and fifty sessions of
//! one client on two servers, are the sharpest check of that.
//!
//! In DR the servers answer directly, so rvs sees only the client's side. Passive mode works
//! through each server's own passive ports (passive_ports); in active mode the server connects to the client from the
//! VIP, and the client's half of that data connection comes back through rvs, which sends it
//! to the control connection's server on the expectation the PORT/EPRT made.
//!
//! Needs root, vsftpd, curl and lftp (scripts/deps.sh). Run:
//! `cargo test --release --features lab-tests --test lab_ftp -- --test-threads=1`
//! (`RVS_LAB_BIN=/path/to/rvs` runs another build of rvs).
//!
//! The lab uses only RFC 5737 addresses inside namespaces this test creates (prefixes `rvsf`,
//! `rvsg`, `rvsh`: never those of lab_tier or lab_dr); a guard tears the lab down and kills
//! rvs even when an assertion fails. The tests also take a lock, so that they never run two
//! labs' busy-polling workers at once on a small machine.
#![cfg(feature = "lab-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/lab.rs"]
mod lab;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use lab::Lab;

const VIP: &str = "203.0.113.100";
const SESSIONS: u64 = 50;
const FILES: u64 = 40;
/// Every client mode, passive and active: curl in EPSV, PASV (with and without honouring the
/// 227's address), PORT and EPRT; lftp passive and active (PORT); ftplib active (PORT and
/// EPRT) and ftplib mixing PASV, EPSV, PORT and EPRT on one control connection.
const MODES: &str = "curl-epsv,curl-pasv,curl-pasv-ip,curl-port,curl-eprt,lftp-pasv,lftp-port,ftplib-active,ftplib-mix";

/// One client address for every session (a corporate NAT, a batch job running curl in
/// parallel), and eight of them.
const ONE_SOURCE: &str = "203.0.113.10";
const MANY_SOURCES: &str =
    "203.0.113.10,203.0.113.11,203.0.113.12,203.0.113.13,203.0.113.14,203.0.113.15,203.0.113.16,203.0.113.17";

static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Nat,
    Fnat,
    Dr,
    /// DR with client affinity (persistence 300 s) instead of per-server passive ports.
    DrPersistent,
}

#[test]
fn ftp_nat_two_workers_one_client() {
    ftp_lab(Method::Nat, 2, ONE_SOURCE);
}

#[test]
fn ftp_nat_two_workers_many_clients() {
    ftp_lab(Method::Nat, 2, MANY_SOURCES);
}

#[test]
fn ftp_nat_one_worker_one_client() {
    ftp_lab(Method::Nat, 1, ONE_SOURCE);
}

#[test]
fn ftp_fnat_two_workers_one_client() {
    ftp_lab(Method::Fnat, 2, ONE_SOURCE);
}

#[test]
fn ftp_fnat_two_workers_many_clients() {
    ftp_lab(Method::Fnat, 2, MANY_SOURCES);
}

#[test]
fn ftp_fnat_one_worker_one_client() {
    ftp_lab(Method::Fnat, 1, ONE_SOURCE);
}

#[test]
fn ftp_dr_two_workers_one_client() {
    ftp_lab(Method::Dr, 2, ONE_SOURCE);
}

#[test]
fn ftp_dr_two_workers_many_clients() {
    ftp_lab(Method::Dr, 2, MANY_SOURCES);
}

#[test]
fn ftp_dr_one_worker_one_client() {
    ftp_lab(Method::Dr, 1, ONE_SOURCE);
}

#[test]
fn ftp_dr_persistence_two_workers_one_client() {
    ftp_lab(Method::DrPersistent, 2, ONE_SOURCE);
}

/// Where rvs publishes a counter: `ftp_*` per service (under the service's `ftp` object, or
/// else among its counters), the rest globally (`counters`, else `drops`). The one place to
/// change if the stats JSON moves them.
fn stat(s: &Value, name: &str) -> u64 {
    let svc = &s["services"][0];
    let v = if name.starts_with("ftp_") && svc["ftp"].get(name).is_some() {
        &svc["ftp"][name]
    } else if svc["counters"].get(name).is_some() {
        &svc["counters"][name]
    } else if s["counters"].get(name).is_some() {
        &s["counters"][name]
    } else {
        &s["drops"][name]
    };
    v.as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in the stats: {s}"))
}

/// Per-service FTP counters that must stay 0 in a clean run.
const MUST_BE_ZERO: [&str; 14] = [
    "ftp_refused_address",
    "ftp_refused_low_port",
    "ftp_refused_server",
    "ftp_refused_family",
    "ftp_refused_active_off",
    "ftp_refused_passive_off",
    "ftp_refused_conn_cap",
    "ftp_refused_table_full",
    "ftp_refused_malformed",
    "ftp_lines_too_long",
    "ftp_tls_fallbacks",
    "ftp_ring_drops",
    "ftp_expect_expired",
    "ftp_expect_revoked",
];

/// Drop reasons of the FTP paths that must stay 0 (out-of-order and held-back control
/// segments may happen when frames are handed between workers; they are reported, not
/// asserted).
const DROPS_MUST_BE_ZERO: [&str; 3] = [
    "slowpath_full",
    "ftp_neigh_unresolved",
    "ftp_seq_unmappable",
];

/// What the driver saw, summed over its sessions.
#[derive(Debug)]
struct FtpRun {
    data_conns: u64,
    passive: u64,
    active: u64,
    pasv: u64,
    epsv: u64,
    port: u64,
    eprt: u64,
}

/// The commands a driver mode opens its data connections with.
fn mode_commands(mode: &str) -> &'static [&'static str] {
    match mode {
        "curl-epsv" => &["EPSV"],
        "curl-pasv" | "curl-pasv-ip" | "lftp-pasv" => &["PASV"],
        "curl-port" | "lftp-port" => &["PORT"],
        "curl-eprt" => &["EPRT"],
        "ftplib-passive" => &["PASV", "EPSV"],
        "ftplib-active" => &["PORT", "EPRT"],
        "ftplib-mix" => &["PASV", "EPSV", "PORT", "EPRT"],
        _ => panic!("unknown driver mode {mode}"),
    }
}

/// Checks the driver's report: every session passed, every mode ran, both servers served (only
/// one when `both_servers` is false: persistence keeps one client address on one server), every
/// command the modes use was used. `diag` (rvs's side) goes into the failure messages.
fn check_run(res: &Value, modes: &str, diag: &str, both_servers: bool) -> FtpRun {
    let t = &res["totals"];
    let n = |k: &str| t[k].as_u64().unwrap();
    assert_eq!(
        n("failed"),
        0,
        "sessions failed: {:#}\nrvs: {diag}\ntotals: {t}",
        res["errors"]
    );
    assert_eq!(n("ok"), SESSIONS, "{t}");
    assert_eq!(n("files_ok"), SESSIONS * FILES, "{t}");
    for mode in modes.split(',') {
        let m = &t["by_mode"][mode];
        assert!(
            m["sessions"].as_u64().unwrap_or(0) >= 2 && m["ok"] == m["sessions"],
            "mode {mode}: {m}"
        );
    }
    let served = ["srv1", "srv2"]
        .iter()
        .filter(|srv| t["by_server"][**srv].as_u64().unwrap_or(0) > 0)
        .count();
    assert_eq!(served, if both_servers { 2 } else { 1 }, "servers: {t}");
    // id, listing, the files, a resumed download and an upload: one data connection each.
    assert_eq!(n("data_conns"), SESSIONS * (FILES + 4), "{t}");
    let c = |k: &str| t["commands"][k].as_u64().unwrap();
    let run = FtpRun {
        data_conns: n("data_conns"),
        passive: n("passive_data_conns"),
        active: n("active_data_conns"),
        pasv: c("PASV"),
        epsv: c("EPSV"),
        port: c("PORT"),
        eprt: c("EPRT"),
    };
    assert_eq!(
        run.pasv + run.epsv + run.port + run.eprt,
        run.data_conns,
        "{t}"
    );
    assert_eq!(run.passive, run.pasv + run.epsv, "{t}");
    assert_eq!(run.active, run.port + run.eprt, "{t}");
    for cmd in ["PASV", "EPSV", "PORT", "EPRT"] {
        let wanted = modes.split(',').any(|m| mode_commands(m).contains(&cmd));
        assert_eq!(c(cmd) > 0, wanted, "{cmd} with modes {modes}: {t}");
    }
    run
}

/// rvs's FTP counters and drop reasons that are not 0, for failure messages.
fn diagnostics(s: &Value) -> String {
    let nonzero = |v: &Value| -> String {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.as_u64().unwrap_or(0) != 0)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let global: Vec<String> = [
        "ftp_data_flows",
        "slowpath_out",
        "slowpath_tx",
        "flows_created",
    ]
    .iter()
    .map(|k| format!("{k}={}", s["counters"][k]))
    .collect();
    format!(
        "ftp [{}] {} drops [{}]",
        nonzero(&s["services"][0]["ftp"]),
        global.join(" "),
        nonzero(&s["drops"])
    )
}

/// rvs's final counters agree with what the driver saw.
fn check_stats(m: Method, s: &Value, run: &FtpRun) {
    let g = |k: &str| stat(s, k);
    let shown: Vec<String> = [
        "ftp_commands",
        "ftp_replies",
        "ftp_rewrites",
        "ftp_expect_created",
        "ftp_expect_used",
        "ftp_control_conns",
        "ftp_data_flows",
        "slowpath_out",
        "slowpath_tx",
        "ftp_out_of_order",
        "ftp_held_back",
    ]
    .iter()
    .map(|k| format!("{k}={}", g(k)))
    .collect();
    let ctx = format!("{m:?}: {} / driver {run:?}", shown.join(" "));
    for k in MUST_BE_ZERO.iter().chain(DROPS_MUST_BE_ZERO.iter()) {
        assert_eq!(g(k), 0, "{k}: {ctx}");
    }
    // The slow path read the control streams.
    assert!(g("slowpath_out") > 0, "{ctx}");
    // Every PORT, EPRT, PASV and EPSV was parsed (each opened one data connection).
    assert_eq!(g("ftp_commands"), run.data_conns, "{ctx}");
    // A gauge of live control connections: at most one per session.
    assert!(g("ftp_control_conns") <= SESSIONS, "{ctx}");
    // Nothing the helper let in was refused by the flow table.
    assert_eq!(s["drops"]["flow_conflict"], 0, "{ctx}");
    match m {
        Method::Nat | Method::Fnat => {
            assert!(g("slowpath_tx") > 0, "{ctx}");
            // Every 227 and 229 came through rvs.
            assert_eq!(g("ftp_replies"), run.passive, "{ctx}");
            // Every data connection, passive or active, came in on an expectation of its own.
            assert_eq!(g("ftp_expect_created"), run.data_conns, "{ctx}");
            assert_eq!(g("ftp_expect_used"), run.data_conns, "{ctx}");
            assert_eq!(g("ftp_data_flows"), run.data_conns, "{ctx}");
            // NAT rewrites each 227 (the server's address becomes the VIP); full NAT also each
            // PORT and EPRT (the client's address becomes the local address). A 229 names no
            // address, and NAT keeps the client's address.
            let rewrites = match m {
                Method::Nat => run.pasv,
                _ => run.pasv + run.port + run.eprt,
            };
            // A 229 is rewritten too when its port is translated (another session of the same
            // client already expected it), and a 227 is rewritten once either way.
            let translated = g("ftp_ports_translated");
            assert!(
                (rewrites..=rewrites + translated).contains(&g("ftp_rewrites")),
                "{ctx} ftp_ports_translated={translated}"
            );
        }
        Method::Dr | Method::DrPersistent => {
            // rvs never sees a reply and rewrites nothing. Each PORT/EPRT lets in the client's
            // half of the server's data connection; a passive data connection finds its
            // server by the server's own passive ports (config/lab-ftp-dr.toml), so no
            // PASV/EPSV needs a pin.
            assert_eq!(g("ftp_replies"), 0, "{ctx}");
            assert_eq!(g("ftp_rewrites"), 0, "{ctx}");
            assert_eq!(g("ftp_expect_created"), run.active, "{ctx}");
            assert_eq!(g("ftp_expect_used"), run.active, "{ctx}");
            assert_eq!(g("ftp_data_flows"), run.active, "{ctx}");
            assert_eq!(s["counters"]["nat_out_packets"], 0, "{ctx}");
        }
    }
}

/// Brings up the lab for `m`, runs rvs with `workers` workers and the driver (every mode, the
/// sessions spread over `sources`) through it,
/// checks the driver's report and rvs's counters.
fn ftp_lab(m: Method, workers: usize, sources: &str) {
    let modes = MODES;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (prefix, mode, file, from) = match m {
        Method::Nat => ("rvsf", None, "lab-ftp.toml", "rvs-lab-ftp"),
        Method::Fnat => ("rvsg", None, "lab-ftp-fnat.toml", "rvs-lab-ftp-fnat"),
        Method::Dr | Method::DrPersistent => {
            ("rvsh", Some("dr"), "lab-ftp-dr.toml", "rvs-lab-ftp-dr")
        }
    };
    let tag = format!("ftp-{m:?}-{workers}-{}", sources.len()).to_lowercase();
    let mut lab = Lab::up(prefix, mode, &tag);
    let status = lab.script("status");
    let status_text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.status.success() && status_text.contains("vsftpd srv2: listening"),
        "{status_text}"
    );
    let mut cfg = lab::config(file, from, &format!("{from}-test"), workers);
    if m == Method::DrPersistent {
        // The other DR recipe: no passive ports, every connection of a client on one server.
        assert!(cfg.contains("passive_ports") && cfg.contains("forward = \"dr\""));
        cfg = cfg
            .lines()
            .filter(|l| !l.starts_with("passive_ports"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(
                "forward = \"dr\"",
                "forward = \"dr\"\npersistence_timeout = 300",
            );
    }
    lab.start_rvs_bin(&lab::rvs_bin(), &cfg);

    // The client learns the VIP's MAC from rvs before the sessions start.
    lab.in_ns("cli", &["ip", "neigh", "flush", "all"]);
    let ping = lab.in_ns("cli", &["ping", "-c", "2", "-i", "0.2", "-W", "2", VIP]);
    assert!(ping.contains("2 received"), "{ping}");

    let run_dir = lab.env_var("LAB_RUN_DIR").expect("LAB_RUN_DIR");
    let (sessions, files) = (SESSIONS.to_string(), FILES.to_string());
    let args = vec![
        "--vip",
        VIP,
        "--sessions",
        &sessions,
        "--files",
        &files,
        "--modes",
        modes,
        "--sources",
        sources,
        "--run-dir",
        &run_dir,
        // A session takes seconds; a stuck one fails instead of holding the tier for long.
        "--timeout",
        "120",
    ];
    let (res, ok) = lab.ftp_client(&args);

    // Let the slow path reap the last used expectations, then a clean stop; the driver's
    // report is checked after, so that a failure shows rvs's side too.
    std::thread::sleep(Duration::from_millis(2500));
    let status = lab.stop_rvs();
    let fin = lab.stats();
    let diag = diagnostics(&fin);
    // With persistence, all sessions of one client address share a server.
    let both_servers = !(m == Method::DrPersistent && sources == ONE_SOURCE);
    let run = check_run(&res, modes, &diag, both_servers);
    assert!(ok, "ftp_client.py failed: {}\nrvs: {diag}", res["errors"]);
    assert!(status.success(), "rvs exit status {status}: {}", lab.log());
    assert_eq!(fin["final"], true);
    eprintln!(
        "lab_ftp {m:?}, {workers} worker(s), sources {sources}: {} sessions, {} data connections ({} passive), {:.1} s; services[0] = {}",
        SESSIONS,
        run.data_conns,
        run.passive,
        res["elapsed_s"].as_f64().unwrap_or(0.0),
        fin["services"][0]
    );
    check_stats(m, &fin, &run);
}
