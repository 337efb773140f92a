//! The real binary on DPDK vdevs, for what the pcap and lab tiers cannot show: queue layout.
//! Every port has one RX and one TX queue per worker, whatever else the device offers: the FTP
//! slow path sends through the workers (so a host pair's frames stay in order), and a device
//! with exactly one TX queue (net_pcap with one file) runs as well as one with many.
//! Run: `cargo test --release --features dpdk-tests --test runtime_vdev` (root, `--no-pci`).
#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts rvs with `ports` (TOML), waits for its startup lines, stops it with SIGTERM, and
/// returns everything it printed.
fn run_briefly(tag: &str, ports: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rvs-runtime-vdev-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("rvs.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nargs = [\"-l\", \"0-1\", \"--no-huge\", \"-m\", \"256\", \"--file-prefix\", \"rvs-rt-{tag}\", \"--log-level\", \"*:error\", \"--no-telemetry\"]\n\
             [stats]\ninterval_secs = 1\n{ports}"
        ),
    )
    .unwrap();
    let log = dir.join("out.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let read = || {
        let mut s = String::new();
        let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut s));
        s
    };
    while !read().contains("rvs: running") {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("rvs did not start: {}", read());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
            panic!("rvs did not stop: {}", read());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = read();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "exit {status}: {out}");
    out
}

#[test]
fn one_queue_per_worker_whatever_the_device_offers() {
    // net_null offers many queues: 1 worker takes one.
    let out = run_briefly(
        "null",
        "[[port]]\nname = \"a\"\nvdev = \"net_null0\"\naddress = \"198.51.100.1/24\"\n",
    );
    assert!(
        out.contains("port a = net_null0") && out.contains("1 queue(s)"),
        "{out}"
    );

    // net_pcap with one tx file has exactly one TX queue, which is all rvs needs.
    let dir = std::env::temp_dir().join(format!("rvs-runtime-vdev-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rx, tx) = (dir.join("in.pcap"), dir.join("out.pcap"));
    // An empty capture: the 24-byte global header only (little-endian, Ethernet).
    let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&rx, hdr).unwrap();
    let out = run_briefly(
        "pcap",
        &format!(
            "[[port]]\nname = \"b\"\nvdev = \"net_pcap0,rx_pcap={},tx_pcap={}\"\naddress = \"198.51.100.1/24\"\n",
            rx.display(),
            tx.display()
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("port b = net_pcap0") && out.contains("1 queue(s)"),
        "{out}"
    );
}
