//! What a run reports: the status line and per-service rate lines (`ipvsadm -Ln --rate`
//! style) every interval, the final report at exit, and the JSON stats file that operators'
//! tooling and the tests read. Everything here reads published counter blocks only.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::dpdk::Port;
use crate::stats::{
    self, Counter, DropReason, FtpCounter, Layout, LbCounter, LocalBlock, SharedBlock,
};

pub(crate) fn snapshot(shared: &[Arc<SharedBlock>], layout: Layout) -> LocalBlock {
    let mut b = LocalBlock::new(layout.len());
    for s in shared {
        s.accumulate(&mut b);
    }
    b
}

fn rate(now: u64, prev: u64, dt: Duration) -> u64 {
    let s = dt.as_secs_f64();
    if s <= 0.0 {
        0
    } else {
        (now.saturating_sub(prev) as f64 / s) as u64
    }
}

/// One line per service with traffic since the last interval, like `ipvsadm -Ln --rate`:
/// active and inactive connections, new connections per second, packets and bytes per second.
pub fn service_rate_lines(
    cfg: &Config,
    now: &LocalBlock,
    prev: &LocalBlock,
    dt: Duration,
) -> Vec<String> {
    let layout = Layout::of(cfg);
    cfg.services
        .iter()
        .enumerate()
        .filter_map(|(i, svc)| {
            let g = |c: LbCounter| now.get(layout.service(i, c));
            let r = |c: LbCounter| rate(now.get(layout.service(i, c)), prev.get(layout.service(i, c)), dt);
            let busy = g(LbCounter::ActiveConns) + g(LbCounter::InactiveConns) + r(LbCounter::PacketsIn) > 0;
            busy.then(|| {
                format!(
                    "rvs:   service {}: active={} inactive={} cps={} in={} pps/{} Bps out={} pps/{} Bps",
                    svc.name,
                    g(LbCounter::ActiveConns),
                    g(LbCounter::InactiveConns),
                    r(LbCounter::Connections),
                    r(LbCounter::PacketsIn),
                    r(LbCounter::BytesIn),
                    r(LbCounter::PacketsOut),
                    r(LbCounter::BytesOut)
                )
            })
        })
        .collect()
}

/// The periodic one-line status.
pub fn status_line(now: &LocalBlock, prev: &LocalBlock, dt: Duration, up: Duration) -> String {
    let g = |c: Counter| now.get(Layout::counter(c));
    let p = |c: Counter| prev.get(Layout::counter(c));
    format!(
        "rvs: up {}s rx={} ({} pps) tx={} ({} pps) flows={} created={} expired={} drops={} [{}]",
        up.as_secs(),
        g(Counter::RxPackets),
        rate(g(Counter::RxPackets), p(Counter::RxPackets), dt),
        g(Counter::TxPackets),
        rate(g(Counter::TxPackets), p(Counter::TxPackets), dt),
        g(Counter::FlowsActive),
        g(Counter::FlowsCreated),
        g(Counter::FlowsExpired),
        stats::total_drops(now),
        stats::drops_summary(now)
    )
}

/// `conns=.. active=.. inactive=.. pkts_in=.. pkts_out=.. bytes_in=.. bytes_out=..` of one
/// service or server row, as the final report prints it.
fn lb_fields(get: impl Fn(LbCounter) -> u64) -> String {
    [
        ("conns", LbCounter::Connections),
        ("active", LbCounter::ActiveConns),
        ("inactive", LbCounter::InactiveConns),
        ("pkts_in", LbCounter::PacketsIn),
        ("pkts_out", LbCounter::PacketsOut),
        ("bytes_in", LbCounter::BytesIn),
        ("bytes_out", LbCounter::BytesOut),
    ]
    .iter()
    .map(|(label, c)| format!("{label}={}", get(*c)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// The FTP counters of service `i` that are not zero, as `name=value` pairs.
fn ftp_fields(b: &LocalBlock, layout: Layout, i: usize) -> String {
    let parts: Vec<String> = FtpCounter::ALL
        .iter()
        .filter_map(|c| {
            let v = b.get(layout.ftp(i, *c));
            (v > 0).then(|| format!("{}={v}", c.name().trim_start_matches("ftp_")))
        })
        .collect();
    if parts.is_empty() {
        "nothing yet".into()
    } else {
        parts.join(" ")
    }
}

/// The multi-line report printed at exit.
pub fn final_report(cfg: &Config, b: &LocalBlock, ports: &[Port]) -> String {
    let layout = Layout::of(cfg);
    let mut s = String::from("rvs: final counters\n");
    for c in Counter::ALL {
        s.push_str(&format!(
            "  {:<20} {}\n",
            c.name(),
            b.get(Layout::counter(*c))
        ));
    }
    s.push_str(&format!(
        "  drops                {} [{}]\n",
        stats::total_drops(b),
        stats::drops_summary(b)
    ));
    let mut server = 0;
    for (i, svc) in cfg.services.iter().enumerate() {
        s.push_str(&format!(
            "  service {} {} {}:{} {}: {}\n",
            svc.name,
            svc.protocol.name(),
            svc.vip,
            svc.port_set(),
            svc.scheduler.name(),
            lb_fields(|c| b.get(layout.service(i, c)))
        ));
        if svc.ftp.is_some() {
            s.push_str(&format!("    ftp: {}\n", ftp_fields(b, layout, i)));
        }
        for r in &svc.servers {
            s.push_str(&format!(
                "    -> {}:{} weight {}{}: {}\n",
                r.address,
                svc.server_port(r).unwrap_or(0),
                r.weight,
                if r.removed { " (removed)" } else { "" },
                lb_fields(|c| b.get(layout.server(server, c)))
            ));
            server += 1;
        }
    }
    for (p, port) in cfg.ports.iter().zip(ports) {
        let st = port.stats();
        s.push_str(&format!(
            "  port {}: ipackets={} opackets={} imissed={} ierrors={} oerrors={} rx_nombuf={}\n",
            p.name, st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
        ));
    }
    s
}

/// The counters as JSON: `{"counters": {...}, "drops": {...}, "services": [...], "ports": [...]}`.
pub fn stats_json(
    cfg: &Config,
    b: &LocalBlock,
    ports: &[Port],
    uptime: Duration,
    last: bool,
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let layout = Layout::of(cfg);
    let counters: Map<String, Value> = Counter::ALL
        .iter()
        .map(|c| (c.name().to_string(), json!(b.get(Layout::counter(*c)))))
        .collect();
    let drops: Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(b.get(Layout::drop(*r)))))
        .collect();
    let lbmap = |idx: &dyn Fn(LbCounter) -> usize| -> Map<String, Value> {
        LbCounter::ALL
            .iter()
            .map(|c| (c.name().to_string(), json!(b.get(idx(*c)))))
            .collect()
    };
    let mut server = 0;
    let services: Vec<Value> = cfg
        .services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let servers: Vec<Value> = svc
                .servers
                .iter()
                .map(|r| {
                    let k = server;
                    server += 1;
                    json!({
                        "address": r.address.to_string(),
                        "port": svc.server_port(r).unwrap_or(0),
                        "weight": r.weight,
                        "counters": lbmap(&|c| layout.server(k, c)),
                    })
                })
                .collect();
            let mut v = json!({
                "name": svc.name,
                "protocol": svc.protocol.name(),
                "vip": svc.vip.to_string(),
                "ports": svc.port_set().to_string(),
                "counters": lbmap(&|c| layout.service(i, c)),
                "servers": servers,
            });
            if svc.ftp.is_some() {
                let ftp: Map<String, Value> = FtpCounter::ALL
                    .iter()
                    .map(|c| (c.name().to_string(), json!(b.get(layout.ftp(i, *c)))))
                    .collect();
                v["ftp"] = Value::Object(ftp);
            }
            v
        })
        .collect();
    let ports: Vec<Value> = cfg
        .ports
        .iter()
        .zip(ports)
        .map(|(p, port)| {
            let st = port.stats();
            json!({"name": p.name, "ipackets": st.ipackets, "opackets": st.opackets, "imissed": st.imissed,
                   "ierrors": st.ierrors, "oerrors": st.oerrors, "rx_nombuf": st.rx_nombuf})
        })
        .collect();
    json!({"uptime_secs": uptime.as_secs_f64(), "final": last, "counters": counters, "drops": drops,
           "services": services, "ports": ports})
}

pub(crate) fn write_stats_file(
    path: &Path,
    cfg: &Config,
    b: &LocalBlock,
    ports: &[Port],
    uptime: Duration,
    last: bool,
) {
    let v = stats_json(cfg, b, ports, uptime, last);
    let tmp = path.with_extension("tmp");
    let res = std::fs::write(&tmp, v.to_string()).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        eprintln!("rvs: cannot write the stats file {}: {e}", path.display());
    }
}
