//! What one `rvs bench` run measured, and how it is printed: a text summary for people, one
//! JSON object for `scripts/bench.sh`. Pure: the harness fills a [`Report`], nothing here
//! touches DPDK.
//!
//! Definitions (all over the measured interval only):
//! - `mpps`: packets the workers received per second, all workers together;
//! - `cycles_per_packet`: worker TSC cycles spent in loop iterations that received packets
//!   (rx burst, pipeline, timers, tx burst), divided by the packets received; `avg_burst` is the
//!   packets per such iteration (a full burst amortises the per-burst costs);
//! - `new_conns_per_sec`: flows created per second (`flows_created`), all workers together;
//! - `drops`: the pipeline's drop counters by reason (non-zero ones); `unexpected_drops` is their
//!   sum: every scenario is built so that nothing should be dropped;
//! - latency: TSC at the sink minus the generator's stamp, so it includes the time in both rings
//!   (queueing at `--rate max` fills them: latency is then the rings' depth, not rvs's cost);
//! - memory: resident set size before and after the established flows were created, divided by
//!   the flows the tables then held (so allocator slack and hash-table load are included).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// One worker's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkerFigures {
    /// Packets received per second (millions).
    pub mpps: f64,
    /// Busy cycles per packet.
    pub cycles_per_packet: f64,
    /// Share of the interval the worker's loop was busy (0 to 1).
    pub busy: f64,
    /// Share of the interval the worker's thread was on a CPU (below 1: it was preempted, and
    /// the preempted time is inside its TSC figures).
    pub on_cpu: f64,
    /// New connections per second.
    pub new_conns_per_sec: f64,
    /// Flows in its table at the end.
    pub flows: u64,
}

/// Latency quantiles in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Frames measured.
    pub samples: u64,
    /// Median.
    pub p50_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest.
    pub max_ns: f64,
}

/// Resident memory per flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Flows in the tables after population.
    pub flows: u64,
    /// RSS before population (bytes).
    pub rss_before: u64,
    /// RSS after population (bytes).
    pub rss_after: u64,
    /// (after - before) / flows.
    pub bytes_per_flow: f64,
    /// Seconds population took.
    pub populate_secs: f64,
}

/// FTP figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ftp {
    /// 227 replies rewritten by the slow path per second.
    pub rewrites_per_sec: f64,
    /// Data connections made from expectations per second.
    pub data_conns_per_sec: f64,
    /// Slow-path TSC cycles per message handled (busy iterations only; 0 without a slow path).
    pub slowpath_cycles_per_msg: f64,
    /// The FTP counters of the interval (non-zero ones).
    pub counters: BTreeMap<String, u64>,
}

/// Everything one run reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// Scenario name.
    pub scenario: String,
    /// Workers.
    pub workers: u16,
    /// split or inline.
    pub placement: String,
    /// Flows asked for (all workers).
    pub flows: u64,
    /// Frame size with FCS.
    pub size: u16,
    /// tcp or udp.
    pub proto: String,
    /// Access pattern.
    pub pattern: String,
    /// Share of new connections asked for.
    pub new_share: f64,
    /// Offered rate asked for.
    pub rate: String,
    /// Seconds actually measured.
    pub seconds: f64,
    /// CPU model, CPUs, memory.
    pub machine: String,
    /// `rvs::dpdk::version()`.
    pub dpdk: String,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Packets the workers received per second (millions).
    pub mpps: f64,
    /// Packets the sink received per second (millions).
    pub out_mpps: f64,
    /// Packets the generator put on the rings per second (millions).
    pub offered_mpps: f64,
    /// Packets the sink received from each port (0: client side, 1: server side).
    pub out_by_port: [u64; 2],
    /// CPUs' worth of other processes' work during the measurement (0: the machine was ours).
    pub foreign_cpus: f64,
    /// CPUs' worth of hypervisor steal during the measurement.
    pub steal_cpus: f64,
    /// Paced packets that were due but found the ring full (lost at the "NIC").
    pub gen_lost: u64,
    /// Worker cycles per packet (all workers).
    pub cycles_per_packet: f64,
    /// Packets per busy iteration.
    pub avg_burst: f64,
    /// New connections per second, all workers.
    pub new_conns_per_sec: f64,
    /// Per worker.
    pub per_worker: Vec<WorkerFigures>,
    /// Drops by reason (non-zero).
    pub drops: BTreeMap<String, u64>,
    /// Sum of the drops.
    pub unexpected_drops: u64,
    /// Latency from stamp to sink.
    pub latency: Latency,
    /// Memory per flow (established-flow scenarios).
    pub memory: Option<Memory>,
    /// FTP figures (FTP scenarios).
    pub ftp: Option<Ftp>,
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

impl Report {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A summary for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rvs bench: {} | {} worker(s), {} placement | {} flows, {} B {}, {}, new {:.0}%, rate {}",
            self.scenario,
            self.workers,
            self.placement,
            self.flows,
            self.size,
            self.proto,
            self.pattern,
            self.new_share * 100.0,
            self.rate
        );
        let _ = writeln!(
            s,
            "  machine     {} | {} | other load {:.2} CPUs, steal {:.2} CPUs",
            self.machine, self.dpdk, self.foreign_cpus, self.steal_cpus
        );
        let _ = writeln!(
            s,
            "  throughput  {:.3} Mpps through the workers ({:.3} out [client side {}, server side {}], {:.3} offered, {} lost at the generator) over {:.2} s",
            self.mpps,
            self.out_mpps,
            self.out_by_port[0],
            self.out_by_port[1],
            self.offered_mpps,
            self.gen_lost,
            self.seconds
        );
        let _ = writeln!(
            s,
            "  cost        {:.1} cycles/packet ({:.1} packets per busy iteration)",
            self.cycles_per_packet, self.avg_burst
        );
        for (i, w) in self.per_worker.iter().enumerate() {
            let _ = writeln!(
                s,
                "    worker {i}: {:.3} Mpps, {:.1} cycles/packet, busy {:.0}%, on a CPU {:.0}%, {} new conns/s, {} flows",
                w.mpps,
                w.cycles_per_packet,
                w.busy * 100.0,
                w.on_cpu * 100.0,
                si(w.new_conns_per_sec),
                w.flows
            );
        }
        if self.new_conns_per_sec > 0.0 {
            let _ = writeln!(
                s,
                "  connections {} new/s ({} per worker)",
                si(self.new_conns_per_sec),
                si(self.new_conns_per_sec / f64::from(self.workers.max(1)))
            );
        }
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency     p50 {} p99 {} p99.9 {} max {} ({} frames)",
            ns(l.p50_ns),
            ns(l.p99_ns),
            ns(l.p999_ns),
            ns(l.max_ns),
            l.samples
        );
        if let Some(m) = &self.memory {
            let _ = writeln!(
                s,
                "  memory      {:.1} bytes/flow (RSS {} → {} MiB for {} flows, populated in {:.1} s)",
                m.bytes_per_flow,
                m.rss_before >> 20,
                m.rss_after >> 20,
                m.flows,
                m.populate_secs
            );
        }
        if let Some(f) = &self.ftp {
            let _ = writeln!(
                s,
                "  ftp         {} rewrites/s, {} data conns/s, slow path {:.0} cycles/message",
                si(f.rewrites_per_sec),
                si(f.data_conns_per_sec),
                f.slowpath_cycles_per_msg
            );
            if !f.counters.is_empty() {
                let list: Vec<String> =
                    f.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "              {}", list.join(" "));
            }
        }
        if self.drops.is_empty() {
            let _ = writeln!(s, "  drops       none");
        } else {
            let list: Vec<String> = self.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                s,
                "  drops       {} [{}]",
                self.unexpected_drops,
                list.join(" ")
            );
        }
        s
    }
}

/// `q`-quantile of a histogram in TSC ticks, in nanoseconds.
pub fn quantile_ns(h: &hdrhistogram::Histogram<u64>, q: f64, hz: u64) -> f64 {
    ticks_to_ns(h.value_at_quantile(q), hz)
}

/// TSC ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64, hz: u64) -> f64 {
    ticks as f64 * 1e9 / hz.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            command: "rvs bench --scenario nat".into(),
            scenario: "nat".into(),
            workers: 1,
            placement: "split".into(),
            flows: 100_000,
            size: 64,
            proto: "tcp".into(),
            pattern: "uniform".into(),
            new_share: 0.0,
            rate: "max".into(),
            seconds: 5.0,
            machine: "AMD EPYC, 2 vCPU".into(),
            dpdk: "DPDK 22.11.11".into(),
            tsc_hz: 2_000_000_000,
            mpps: 4.25,
            out_mpps: 4.25,
            offered_mpps: 4.3,
            out_by_port: [0, 21_250_000],
            foreign_cpus: 0.02,
            steal_cpus: 0.0,
            gen_lost: 0,
            cycles_per_packet: 312.5,
            avg_burst: 31.9,
            new_conns_per_sec: 0.0,
            per_worker: vec![WorkerFigures {
                mpps: 4.25,
                cycles_per_packet: 312.5,
                busy: 0.66,
                on_cpu: 1.0,
                new_conns_per_sec: 0.0,
                flows: 100_000,
            }],
            drops: BTreeMap::new(),
            unexpected_drops: 0,
            latency: Latency {
                samples: 21_000_000,
                p50_ns: 8_100.0,
                p99_ns: 12_000.0,
                p999_ns: 2_500_000.0,
                max_ns: 40.0,
            },
            memory: Some(Memory {
                flows: 100_000,
                rss_before: 300 << 20,
                rss_after: 312 << 20,
                bytes_per_flow: 125.8,
                populate_secs: 0.2,
            }),
            ftp: None,
        }
    }

    #[test]
    fn text_names_every_figure() {
        let t = sample().to_text();
        assert!(t.contains("nat | 1 worker(s), split placement"), "{t}");
        assert!(t.contains("4.250 Mpps through the workers"), "{t}");
        assert!(t.contains("312.5 cycles/packet"), "{t}");
        assert!(
            t.contains("p50 8.1 µs p99 12.0 µs p99.9 2.50 ms max 40 ns"),
            "{t}"
        );
        assert!(t.contains("125.8 bytes/flow (RSS 300 → 312 MiB"), "{t}");
        assert!(t.contains("drops       none"), "{t}");
        assert!(!t.contains("connections"), "{t}");
        let mut r = sample();
        r.drops.insert("tx_full".into(), 12);
        r.unexpected_drops = 12;
        r.new_conns_per_sec = 1_250_000.0;
        r.ftp = Some(Ftp {
            rewrites_per_sec: 250_000.0,
            ..Ftp::default()
        });
        let t = r.to_text();
        assert!(t.contains("drops       12 [tx_full=12]"), "{t}");
        assert!(
            t.contains("connections 1.25M new/s (1.25M per worker)"),
            "{t}"
        );
        assert!(t.contains("250.0k rewrites/s"), "{t}");
    }

    #[test]
    fn json_round_trips_the_figures() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["scenario"], "nat");
        assert_eq!(v["mpps"], 4.25);
        assert_eq!(v["unexpected_drops"], 0);
        assert_eq!(v["latency"]["p99_ns"], 12_000.0);
        assert_eq!(v["memory"]["bytes_per_flow"], 125.8);
        assert_eq!(v["per_worker"][0]["busy"], 0.66);
        assert!(v["ftp"].is_null());
    }

    #[test]
    fn quantiles_convert_ticks_to_ns() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 2).unwrap();
        }
        // 2 GHz: 1000 ticks is 500 ns.
        let p50 = quantile_ns(&h, 0.5, 2_000_000_000);
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        assert_eq!(ticks_to_ns(3, 3_000_000_000), 1.0);
        assert_eq!(si(999.0), "999");
    }
}
