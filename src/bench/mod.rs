//! `rvs bench`: the end-to-end performance harness. A generator, rvs's own workers and a sink run
//! in one process, connected by DPDK rings that the workers see as ordinary ethdev ports.
//!
//! ```text
//!  generator ──SP/SC ring──▶ [ring port 0 "client", RX queue w] ─┐
//!  (templates patched           worker w: `rvs run`'s WorkerLoop::step (rx_burst ─▶
//!   per packet, TSC stamp)      Pipeline<Mbuf>::process_burst ─▶ inboxes ─▶ tx_burst)
//!            ──SP/SC ring──▶ [ring port 1 "server", RX queue w] ─┘      │
//!  sink ◀──SP/SC ring── [port 0 / port 1, TX queue w] ◀──────────────────┘
//!  (reads the stamp into an hdrhistogram, frees in bulk)
//! ```
//!
//! What it measures, per run (see [`report::Report`]): packets per second through the workers,
//! worker TSC cycles per packet (busy loop iterations only: an iteration that received nothing
//! is idle and not counted), new connections per second, drops by reason, latency quantiles from
//! the stamps, and bytes of resident memory per flow (RSS before and after the flows are
//! created, divided by their number). `--scenario null` runs the same loop with the pipeline
//! replaced by a MAC swap: the ceiling of this harness on this machine.
//!
//! Thread placement (a 2-vCPU machine cannot give generator, sink and two workers a core each):
//! - `split` (default with one worker): the worker alone on lcore 1; generator, sink and the
//!   phase controller share the main lcore 0 in one cooperative loop. Frames cross cores as they
//!   would from a NIC, so the worker pays for the cache misses.
//! - `inline` (default with two workers): each lcore runs its own lane in one loop: generate a
//!   burst, run the worker on it, drain the sink. The worker's cycles are still counted alone,
//!   but its frames were just written on the same core (cache-hot), and the lane's packet rate
//!   is shared with its generator and sink. This is the fair way to compare 1 and 2 workers on
//!   two cores: both runs do the same work per core.
//!
//! Phases: setup → populate (established flows are created through the pipeline itself: a SYN
//! then an ACK per flow, or one datagram per UDP flow; not measured) → warm-up → measure →
//! done. Every role snapshots its counters when it sees the measure and done phases; figures are
//! the differences.
//!
//! Limitations: one direction of traffic (clients to the VIP; the FTP scenarios also send the
//! server's replies); no ARP (static neighbours); the runtime's inboxes (reload, neighbours,
//! handover) are not polled, because independent shards never use them. The numbers are for
//! the ring plumbing of this process: NIC costs (descriptor rings, DMA, PCIe) are not in them.

pub mod external;
pub mod frame;
pub mod ftp;
pub mod harness;
pub mod keys;
pub mod pace;
pub mod report;
pub mod sample;
pub mod scenario;

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;

use std::net::Ipv4Addr;

use clap::ValueEnum;

use crate::wire::MacAddr;

pub use report::Report;
pub use sample::PatternKind;

/// What traffic runs and what rvs does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Workers only swap MACs and send frames back: the harness's ceiling.
    Null,
    /// NAT (`forward = "nat"`) on established flows.
    Nat,
    /// Direct routing on established flows.
    Dr,
    /// IP-in-IP tunnelling on established flows.
    Tun,
    /// Full NAT on established flows.
    Fnat,
    /// Every packet is the SYN of a new NAT connection.
    SynStorm,
    /// FTP (NAT, passive): the servers' 227 replies through the slow path, each followed by the
    /// client's data connection (SYN, RST).
    FtpCtl,
    /// FTP data connections matched against expectations, published straight into the shared
    /// table as the slow path would (the worker's side of the FTP helper alone).
    FtpData,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: &'static [Scenario] = &[
        Scenario::Null,
        Scenario::Nat,
        Scenario::Dr,
        Scenario::Tun,
        Scenario::Fnat,
        Scenario::SynStorm,
        Scenario::FtpCtl,
        Scenario::FtpData,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Null => "null",
            Scenario::Nat => "nat",
            Scenario::Dr => "dr",
            Scenario::Tun => "tun",
            Scenario::Fnat => "fnat",
            Scenario::SynStorm => "syn-storm",
            Scenario::FtpCtl => "ftp-ctl",
            Scenario::FtpData => "ftp-data",
        }
    }

    /// Whether flows are created before the measurement.
    pub fn established(self) -> bool {
        matches!(
            self,
            Scenario::Nat | Scenario::Dr | Scenario::Tun | Scenario::Fnat
        )
    }

    /// Whether this is one of the FTP scenarios.
    pub fn ftp(self) -> bool {
        matches!(self, Scenario::FtpCtl | Scenario::FtpData)
    }
}

/// What the generator drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dut {
    /// rvs's workers in this process, on DPDK ring ports.
    Ring,
    /// A device under test outside this process, reached through two real ethdevs
    /// (`--gen-vdev`, `--sink-vdev`; see `bench::external`).
    External,
}

/// Transport protocol of the generated flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// TCP (established flows see ACKs).
    Tcp,
    /// UDP.
    Udp,
}

/// Where generator, worker and sink run (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// Workers on their own lcores, generator and sink together on the main lcore.
    Split,
    /// Generator, worker and sink of each lane in one loop on that lane's lcore.
    Inline,
}

impl Placement {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Split => "split",
            Placement::Inline => "inline",
        }
    }
}

/// Offered load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// As fast as the rings take packets (closed loop through ring back-pressure).
    Max,
    /// Open loop: this many packets per second in total, paced on the TSC; what the ring cannot
    /// take when due is lost and counted.
    Pps(u64),
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        let (num, mult) = match s.char_indices().last() {
            Some((i, 'k' | 'K')) => (&s[..i], 1e3),
            Some((i, 'm' | 'M')) => (&s[..i], 1e6),
            _ => (s, 1.0),
        };
        match num.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 && v * mult <= 1e9 => {
                Ok(Rate::Pps((v * mult) as u64))
            }
            _ => Err(format!(
                "`{s}`: give max or packets per second (e.g. 500000, 500k, 2.5M)"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Pps(p) => write!(f, "{p}"),
        }
    }
}

/// Everything a run is parameterised by.
#[derive(Clone, Debug)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Flows in total (split evenly over workers): established flows, the key space of a storm,
    /// or FTP control connections.
    pub flows: u64,
    /// Frame size with FCS (64 to 1518).
    pub size: u16,
    /// TCP or UDP.
    pub proto: Proto,
    /// Which established flow each packet belongs to.
    pub pattern: PatternKind,
    /// Share of packets that open a new connection (0 to 1).
    pub new_share: f64,
    /// Offered load.
    pub rate: Rate,
    /// Workers (1 or 2 on this machine: each needs an lcore).
    pub workers: u16,
    /// Seconds measured.
    pub duration: f64,
    /// Seconds of traffic before the measurement.
    pub warmup: f64,
    /// Thread placement (`None`: split when the lcores allow it, else inline).
    pub placement: Option<Placement>,
    /// Packets per burst (generator, worker, sink).
    pub burst: usize,
    /// Slots per ring (a power of two).
    pub ring_size: u32,
    /// Seed of the generator's random numbers.
    pub seed: u64,
    /// The EAL's `--file-prefix` (default: unique per process).
    pub file_prefix: Option<String>,
    /// Lcores the EAL may use (default: 2, this machine's CPUs).
    pub lcores: u16,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scenario: Scenario::Nat,
            flows: 100_000,
            size: 64,
            proto: Proto::Tcp,
            pattern: PatternKind::Uniform,
            new_share: 0.0,
            rate: Rate::Max,
            workers: 1,
            duration: 5.0,
            warmup: 1.0,
            placement: None,
            burst: 32,
            ring_size: 1024,
            seed: 1,
            file_prefix: None,
            lcores: 2,
        }
    }
}

impl Options {
    /// Check the options against each other; a message a person can act on.
    pub fn validate(&self) -> Result<(), String> {
        if !(frame::MIN_SIZE..=frame::MAX_SIZE).contains(&self.size) {
            return Err(format!(
                "--size {}: frame sizes (with FCS) are {} to {}",
                self.size,
                frame::MIN_SIZE,
                frame::MAX_SIZE
            ));
        }
        if !(0.0..=1.0).contains(&self.new_share) {
            return Err(format!(
                "--new-share {}: give a share from 0 to 1",
                self.new_share
            ));
        }
        if !(1..=16).contains(&self.workers) {
            return Err(format!("--workers {}: 1 to 16", self.workers));
        }
        let duration_ok = self.duration > 0.0 && self.duration <= 3600.0;
        if !duration_ok || !(0.0..=600.0).contains(&self.warmup) {
            return Err("--duration must be 0 to 3600 seconds, --warmup 0 to 600".into());
        }
        if !(1..=512).contains(&self.burst) {
            return Err(format!("--burst {}: 1 to 512", self.burst));
        }
        if self.ring_size < 64 || !self.ring_size.is_power_of_two() {
            return Err(format!(
                "--ring-size {}: a power of two, at least 64",
                self.ring_size
            ));
        }
        let need = match self.placement() {
            Placement::Split => self.workers + 1,
            Placement::Inline => self.workers,
        };
        if need > self.lcores {
            return Err(format!(
                "{} placement with {} worker(s) needs {need} lcores, --lcores is {}",
                self.placement().name(),
                self.workers,
                self.lcores
            ));
        }
        if self.scenario.ftp() && (self.workers != 1 || self.placement() != Placement::Split) {
            return Err(
                "the FTP scenarios run one worker with split placement (the slow path shares the \
                 generator's lcore)"
                    .into(),
            );
        }
        if self.scenario.ftp() && self.rate != Rate::Max {
            return Err("the FTP scenarios are closed loops: --rate max only".into());
        }
        if self.scenario.ftp() && !(1..=4096).contains(&self.flows) {
            return Err(
                "--flows for the FTP scenarios is the number of control connections, 1 to 4096"
                    .into(),
            );
        }
        if self.scenario.established() && self.flows == 0 {
            return Err("--flows must be at least 1 for established-flow scenarios".into());
        }
        if self.proto == Proto::Udp && self.scenario == Scenario::SynStorm {
            return Err(
                "syn-storm is TCP (use --scenario nat --proto udp --new-share 1 for new UDP flows)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The placement used: as given, else split when there is an lcore for it.
    pub fn placement(&self) -> Placement {
        self.placement.unwrap_or(if self.workers < self.lcores {
            Placement::Split
        } else {
            Placement::Inline
        })
    }

    /// The share of new connections actually generated (a storm is all new connections).
    pub fn effective_new_share(&self) -> f64 {
        match self.scenario {
            Scenario::SynStorm => 1.0,
            Scenario::Null | Scenario::FtpCtl | Scenario::FtpData => 0.0,
            _ => self.new_share,
        }
    }
}

/// `rvs bench` on the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// null, nat, dr, tun, fnat, syn-storm, ftp-ctl or ftp-data.
    #[arg(long, value_enum, default_value = "nat")]
    pub scenario: Scenario,
    /// Flows in total: established flows, a storm's key space, or FTP control connections.
    #[arg(long, default_value_t = 100_000)]
    pub flows: u64,
    /// Frame size in bytes, FCS included (64 to 1518).
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// tcp or udp.
    #[arg(long, value_enum, default_value = "tcp")]
    pub proto: Proto,
    /// uniform, zipf or zipf:EXPONENT.
    #[arg(long, default_value = "uniform")]
    pub pattern: PatternKind,
    /// Share of packets that are the first packet of a new connection (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub new_share: f64,
    /// max, or packets per second in total (e.g. 2M), paced open loop.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// Workers (each needs an lcore).
    #[arg(long, default_value_t = 1)]
    pub workers: u16,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// split or inline (default: split when an lcore is free for the generator).
    #[arg(long, value_enum)]
    pub placement: Option<Placement>,
    /// Packets per burst.
    #[arg(long, default_value_t = 32)]
    pub burst: usize,
    /// Slots per ring (a power of two).
    #[arg(long, default_value_t = 1024)]
    pub ring_size: u32,
    /// Lcores the EAL may use.
    #[arg(long, default_value_t = 2)]
    pub lcores: u16,
    /// Random seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The EAL's --file-prefix (default: rvs-bench-PID).
    #[arg(long)]
    pub file_prefix: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// ring (rvs's workers in this process) or external (a DUT beyond two ethdevs).
    #[arg(long, value_enum, default_value = "ring")]
    pub dut: Dut,
    /// External DUT: the generator's client-side vdev, e.g. net_af_packet0,iface=gen-c.
    #[arg(long)]
    pub gen_vdev: Option<String>,
    /// External DUT: the sink's server-side vdev, e.g. net_af_packet1,iface=gen-s.
    #[arg(long)]
    pub sink_vdev: Option<String>,
    /// External DUT: its MAC on the client side (where the generator sends).
    #[arg(long)]
    pub dut_client_mac: Option<MacAddr>,
    /// External DUT: its MAC on the server side (where the sink sends SYN-ACKs).
    #[arg(long)]
    pub dut_server_mac: Option<MacAddr>,
    /// External DUT: the VIP and port the clients talk to.
    #[arg(long, default_value = "203.0.113.100:80")]
    pub vip: std::net::SocketAddrV4,
    /// External DUT: the server address and port it translates the VIP to.
    #[arg(long, default_value = "198.51.100.11:8080")]
    pub server: std::net::SocketAddrV4,
    /// External DUT: the CPU of the generator and the sink.
    #[arg(long, default_value_t = 0)]
    pub gen_cpu: u16,
    /// External DUT: the CPU doing the DUT's work, whose busy share is measured.
    #[arg(long)]
    pub dut_cpu: Option<u16>,
    /// External DUT: its name in the report.
    #[arg(long, default_value = "external")]
    pub dut_label: String,
}

impl BenchArgs {
    /// The run's options.
    pub fn options(&self) -> Options {
        Options {
            scenario: self.scenario,
            flows: self.flows,
            size: self.size,
            proto: self.proto,
            pattern: self.pattern,
            new_share: self.new_share,
            rate: self.rate,
            workers: self.workers,
            duration: self.duration,
            warmup: self.warmup,
            placement: self.placement,
            burst: self.burst,
            ring_size: self.ring_size,
            seed: self.seed,
            file_prefix: self.file_prefix.clone(),
            lcores: self.lcores,
        }
    }

    /// The external DUT's description, checked against the other options (`None`: ring).
    pub fn external(&self) -> Result<Option<external::External>, String> {
        if self.dut == Dut::Ring {
            let stray = self.gen_vdev.is_some()
                || self.sink_vdev.is_some()
                || self.dut_client_mac.is_some()
                || self.dut_server_mac.is_some()
                || self.dut_cpu.is_some();
            if stray {
                return Err(
                    "--gen-vdev, --sink-vdev, --dut-client-mac, --dut-server-mac and --dut-cpu \
                     go with --dut external"
                        .into(),
                );
            }
            return Ok(None);
        }
        let need = |v: &Option<String>, opt: &str, eg: &str| {
            v.clone()
                .ok_or_else(|| format!("--dut external needs {opt} (e.g. {opt} {eg})"))
        };
        let gen_vdev = need(&self.gen_vdev, "--gen-vdev", "net_af_packet0,iface=gen-c")?;
        let sink_vdev = need(&self.sink_vdev, "--sink-vdev", "net_af_packet1,iface=gen-s")?;
        let mac = |m: Option<MacAddr>, opt: &str| {
            m.ok_or_else(|| {
                format!("--dut external needs {opt}: the DUT's MAC on that side (ip link show)")
            })
        };
        if self.scenario != Scenario::Nat || self.proto != Proto::Tcp || self.workers != 1 {
            return Err(
                "--dut external runs the NAT scenario over TCP with one generator: use \
                 --scenario nat --proto tcp --workers 1"
                    .into(),
            );
        }
        if self.new_share != 0.0 {
            return Err("--dut external sends established flows only: --new-share 0".into());
        }
        if self.dut_cpu == Some(self.gen_cpu) {
            return Err(format!(
                "--dut-cpu {} is also --gen-cpu: give the DUT a CPU of its own",
                self.gen_cpu
            ));
        }
        let addr = |a: std::net::SocketAddrV4| -> (Ipv4Addr, u16) { (*a.ip(), a.port()) };
        Ok(Some(external::External {
            gen_vdev,
            sink_vdev,
            dut_client_mac: mac(self.dut_client_mac, "--dut-client-mac")?,
            dut_server_mac: mac(self.dut_server_mac, "--dut-server-mac")?,
            vip: addr(self.vip),
            server: addr(self.server),
            gen_cpu: self.gen_cpu,
            dut_cpu: self.dut_cpu,
            label: self.dut_label.clone(),
        }))
    }
}

/// `rvs bench`: run, print the report (text or JSON), exit 0; 2 for bad options, 1 for a
/// failed run.
pub fn main(args: &BenchArgs) -> ExitCode {
    let o = args.options();
    let external = match args.external() {
        Err(e) => {
            eprintln!("rvs bench: {e}");
            return ExitCode::from(2);
        }
        Ok(x) => x,
    };
    if let Err(e) = o.validate() {
        eprintln!("rvs bench: {e}");
        return ExitCode::from(2);
    }
    let printed = match external {
        // `rvs bench --dut external`: a device beyond two ethdevs.
        Some(x) => external::run(&o, &x).map(|r| if args.json { r.to_json() } else { r.to_text() }),
        None => harness::run(&o).map(|r| if args.json { r.to_json() } else { r.to_text() }),
    };
    match printed {
        Ok(text) => {
            if args.json {
                println!("{text}");
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvs bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("500000".parse::<Rate>(), Ok(Rate::Pps(500_000)));
        assert_eq!("500k".parse::<Rate>(), Ok(Rate::Pps(500_000)));
        assert_eq!("2.5M".parse::<Rate>(), Ok(Rate::Pps(2_500_000)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert_eq!(Rate::Pps(7).to_string(), "7");
    }

    #[test]
    fn options_are_checked_against_each_other() {
        assert!(Options::default().validate().is_ok());
        let two = Options {
            workers: 2,
            ..Options::default()
        };
        assert_eq!(two.placement(), Placement::Inline);
        assert!(two.validate().is_ok());
        let split2 = Options {
            placement: Some(Placement::Split),
            ..two.clone()
        };
        assert!(split2.validate().unwrap_err().contains("needs 3 lcores"));
        assert!(Options {
            size: 40,
            ..Options::default()
        }
        .validate()
        .is_err());
        assert!(Options {
            new_share: 1.5,
            ..Options::default()
        }
        .validate()
        .is_err());
        assert!(Options {
            scenario: Scenario::FtpCtl,
            flows: 100_000,
            ..Options::default()
        }
        .validate()
        .is_err());
        assert_eq!(
            Options {
                scenario: Scenario::SynStorm,
                ..Options::default()
            }
            .effective_new_share(),
            1.0
        );
    }
}
