//! The `rvs` command line: `rvs check` on every shipped config, and refusals that name the file,
//! the field and the fix. No DPDK is started, but the binary needs the `dpdk` feature.
#![cfg(all(feature = "dpdk", feature = "bench"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn rvs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shipped_config_checks() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (code, out, err) = rvs(&["check", p.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {out}{err}", p.display());
            assert!(
                out.contains("--no-pci") || out.contains(" -a "),
                "{}: EAL may probe PCI: {out}",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shipped configs");
}

#[test]
fn bad_config_is_refused_with_file_field_and_fix() {
    let dir = std::env::temp_dir().join(format!("rvs-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lab =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/lab.toml"))
            .unwrap();
    let cases = [
        (
            "weight = 3",
            "weight = -1",
            "weight = -1\n   |          ^^\ninvalid value: integer `-1`, expected u32",
        ),
        (
            "weight = 3",
            "weight = 99999",
            "service[web].server[0].weight: must be 0 to 65535",
        ),
        (
            "scheduler = \"rr\"",
            "scheduler = \"lottery\"",
            "unknown variant `lottery`, expected one of `rr`, `wrr`, `lc`, `wlc`, `sed`, `nq`, `sh`, `mh`",
        ),
        (
            "address = \"198.51.100.11\"",
            "address = \"192.0.2.50\"",
            "no port's subnet contains it",
        ),
        (
            "[workers]",
            "[workers]\nthreads = 2",
            "unknown field `threads`",
        ),
    ];
    for (i, (from, to, needle)) in cases.iter().enumerate() {
        assert!(lab.contains(from), "lab.toml no longer has `{from}`");
        let p = dir.join(format!("bad{i}.toml"));
        std::fs::write(&p, lab.replacen(from, to, 1)).unwrap();
        for cmd in ["check", "run"] {
            let args: Vec<&str> = if cmd == "check" {
                vec!["check", p.to_str().unwrap()]
            } else {
                vec!["run", "--config", p.to_str().unwrap()]
            };
            let (code, _, err) = rvs(&args);
            assert_eq!(code, 2, "{cmd} {to}: {err}");
            assert!(err.contains(p.to_str().unwrap()), "no file name: {err}");
            assert!(err.contains(needle), "expected `{needle}` in: {err}");
        }
    }
    let (code, _, err) = rvs(&["check", "/nonexistent/rvs.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/rvs.toml: cannot read"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A DR FTP service with neither per-server passive ports nor persistence runs, but `rvs check`
/// says what to add; the shipped DR FTP config (passive ports on every server) gets no warning.
#[test]
fn check_warns_about_a_dr_ftp_service_without_passive_ports_or_persistence() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("config/lab-ftp-dr.toml");
    let (code, out, _) = rvs(&["check", shipped.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning:"), "{out}");

    let dir = std::env::temp_dir().join(format!("rvs-cli-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&shipped).unwrap();
    let bare: String = text
        .lines()
        .filter(|l| !l.starts_with("passive_ports"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("dr-bare.toml");
    std::fs::write(&path, bare).unwrap();
    let (code, out, _) = rvs(&["check", path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: service[ftp]: a dr FTP service needs persistence_timeout")
            && out.contains("passive_ports"),
        "{out}"
    );
}
