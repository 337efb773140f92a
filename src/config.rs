//! The TOML configuration: what rvs reads, what it refuses, and the summary `rvs check` prints.
//!
//! Parsing is two steps. Serde (with `deny_unknown_fields` everywhere) turns the file into the
//! structs below; a misspelt key or a wrong type is refused with toml's line/column report.
//! [`Config::validate`] then checks what types cannot: unique names, addresses inside their
//! subnets, routable servers, EAL arguments that can never probe a PCI device. Every refusal is a
//! [`ConfigError`] naming the file, the field path and what would be accepted.
//!
//! Devices are declared only in `[[port]]` (`vdev = "..."` or `pci = "..."`). rvs builds the EAL
//! device arguments itself and adds `--no-pci` whenever no port names a PCI address, so a config
//! can never make DPDK probe the machine's own NIC.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::wire::MacAddr;

// The domain types the file's fields turn into (re-exported: the schema names them).
pub use crate::flow::tcp_state::Timeouts;
pub use crate::lb::{PortSet, SchedulerKind};
pub use crate::neigh::route::Ipv4Net;
pub use crate::xmit::ForwardMethod;

/// A refused configuration: which file, which field, what is wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// Dotted path of the offending field, e.g. `service[web].server[1].weight`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A refusal of a field of the file at `path`: `err(field, message)`.
fn refusal(path: &Path) -> impl Fn(String, String) -> ConfigError + '_ {
    move |field, message| ConfigError {
        file: path.to_path_buf(),
        field,
        message,
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn deserialize_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<MacAddr>().map_err(|_| {
        serde::de::Error::custom(format!("`{s}` is not a MAC address like 02:00:00:00:00:01"))
    })
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EAL arguments (lcores, memory, file prefix, log level). Devices go in `[[port]]`.
    #[serde(default)]
    pub eal: EalConfig,
    /// Worker threads.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// Periodic status line.
    #[serde(default)]
    pub stats: StatsConfig,
    /// Flow table sizing.
    #[serde(default)]
    pub flows: FlowsConfig,
    /// Neighbour resolution.
    #[serde(default)]
    pub arp: ArpConfig,
    /// Idle timeouts by protocol state.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Network ports (at least one).
    #[serde(rename = "port", default)]
    pub ports: Vec<PortConfig>,
    /// Static neighbour entries.
    #[serde(rename = "neighbor", default)]
    pub neighbors: Vec<NeighborConfig>,
    /// Virtual services.
    #[serde(rename = "service", default)]
    pub services: Vec<ServiceConfig>,
    /// The FTP helper's global limits (services opt in with `[service.ftp]`).
    #[serde(default)]
    pub ftp: FtpGlobalConfig,
}

/// `[ftp]`: limits shared by every FTP service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpGlobalConfig {
    /// Most live data-connection expectations in total (the shared table's size).
    #[serde(default = "default_max_expectations")]
    pub max_expectations: usize,
    /// Slots in each worker's ring to the slow path; a full ring drops the packet and counts it.
    #[serde(default = "default_slow_ring")]
    pub ring_size: usize,
    /// CPU to pin the slow-path thread to (default: the highest online CPU that runs no worker,
    /// else unpinned; give it a core of its own on an appliance).
    #[serde(default)]
    pub slow_path_cpu: Option<usize>,
}

impl Default for FtpGlobalConfig {
    fn default() -> Self {
        FtpGlobalConfig {
            max_expectations: default_max_expectations(),
            ring_size: default_slow_ring(),
            slow_path_cpu: None,
        }
    }
}

fn default_max_expectations() -> usize {
    4096
}
fn default_slow_ring() -> usize {
    4096
}

/// `[service.ftp]`: turns the FTP helper on for a service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpConfig {
    /// The control ports (usually `[21]`): only connections to these are parsed.
    pub control_ports: Vec<u16>,
    /// Allow active mode (PORT/EPRT).
    #[serde(default = "yes")]
    pub active: bool,
    /// Allow passive mode (PASV/EPSV).
    #[serde(default = "yes")]
    pub passive: bool,
    /// Most live expectations one control connection may hold.
    #[serde(default = "default_per_conn")]
    pub max_expectations_per_connection: u32,
    /// Seconds an unused expectation lives (netfilter's default is 300).
    #[serde(default = "default_expect_timeout")]
    pub expectation_timeout: u64,
}

fn yes() -> bool {
    true
}
fn default_per_conn() -> u32 {
    8
}
fn default_expect_timeout() -> u64 {
    300
}

/// `[eal]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Extra EAL arguments, e.g. `["-l", "0-1", "--no-huge", "-m", "512", "--file-prefix", "rvs"]`.
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[workers]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Number of workers; each polls its own queue of every port (af_packet vdevs need
    /// `qpairs=` equal to it).
    #[serde(default = "one")]
    pub count: usize,
    /// Packets per RX burst.
    #[serde(default = "default_burst")]
    pub burst: usize,
    /// Mbufs in the packet pool.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Microseconds a worker sleeps after 64 empty polling rounds in a row; 0 (the default)
    /// polls without pause. For machines where workers share CPUs with other work (a lab, a
    /// VM): a sleeping worker wakes a little later, so latency grows by up to this much.
    #[serde(default)]
    pub idle_sleep_us: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            count: 1,
            burst: default_burst(),
            mbufs: default_mbufs(),
            idle_sleep_us: 0,
        }
    }
}

fn one() -> usize {
    1
}
fn default_burst() -> usize {
    32
}
fn default_mbufs() -> u32 {
    16383
}

/// `[stats]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between status lines; 0 turns them off.
    #[serde(default = "default_stats_interval")]
    pub interval_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_secs: default_stats_interval(),
        }
    }
}

fn default_stats_interval() -> u64 {
    5
}

/// `[flows]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// Most concurrent flows per worker; new flows beyond it are dropped and counted.
    #[serde(default = "default_flow_capacity")]
    pub capacity: usize,
    /// Most expired-flow checks per poll-loop iteration (bounds the cost of a mass expiry).
    #[serde(default = "default_expire_budget")]
    pub expire_budget: usize,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            capacity: default_flow_capacity(),
            expire_budget: default_expire_budget(),
        }
    }
}

fn default_flow_capacity() -> usize {
    1 << 20
}
fn default_expire_budget() -> usize {
    256
}

/// `[arp]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpConfig {
    /// Requests sent for one resolution before its queued packets are dropped.
    #[serde(default = "default_arp_retries")]
    pub retries: u32,
    /// Milliseconds between requests.
    #[serde(default = "default_arp_retry_ms")]
    pub retry_interval_ms: u64,
    /// Seconds a learned entry is used before it is refreshed.
    #[serde(default = "default_arp_reachable")]
    pub reachable_secs: u64,
    /// Packets held per unresolved neighbour.
    #[serde(default = "default_arp_queue")]
    pub queue_per_neighbor: usize,
    /// Packets held for all unresolved neighbours together.
    #[serde(default = "default_arp_queue_total")]
    pub queue_total: usize,
    /// Most learned neighbours.
    #[serde(default = "default_arp_entries")]
    pub max_entries: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            retries: default_arp_retries(),
            retry_interval_ms: default_arp_retry_ms(),
            reachable_secs: default_arp_reachable(),
            queue_per_neighbor: default_arp_queue(),
            queue_total: default_arp_queue_total(),
            max_entries: default_arp_entries(),
        }
    }
}

fn default_arp_retries() -> u32 {
    3
}
fn default_arp_retry_ms() -> u64 {
    1000
}
fn default_arp_reachable() -> u64 {
    300
}
fn default_arp_queue() -> usize {
    64
}
fn default_arp_queue_total() -> usize {
    4096
}
fn default_arp_entries() -> usize {
    4096
}

/// `[timeouts]`: seconds, with IPVS's defaults (see [`Timeouts`], what the flow table uses).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// TCP established.
    #[serde(default = "t900")]
    pub tcp_established: u64,
    /// TCP SYN_SENT (IPVS's name: after a SYN from the server side).
    #[serde(default = "t120")]
    pub tcp_syn_sent: u64,
    /// TCP SYN_RECV: after the client's SYN, until the handshake completes.
    #[serde(default = "t60")]
    pub tcp_syn_recv: u64,
    /// TCP FIN_WAIT: after the server's FIN.
    #[serde(default = "t120")]
    pub tcp_fin_wait: u64,
    /// TCP after both FINs.
    #[serde(default = "t120")]
    pub tcp_time_wait: u64,
    /// TCP CLOSE_WAIT: after the client's FIN.
    #[serde(default = "t60")]
    pub tcp_close_wait: u64,
    /// TCP LAST_ACK (kept for ipvsadm parity; IPVS's state table never enters it).
    #[serde(default = "t30")]
    pub tcp_last_ack: u64,
    /// TCP after a RST.
    #[serde(default = "t10")]
    pub tcp_close: u64,
    /// UDP idle.
    #[serde(default = "t300")]
    pub udp: u64,
}

impl TimeoutsConfig {
    /// The timeouts as the flow table uses them.
    pub fn model(&self) -> Timeouts {
        let d = std::time::Duration::from_secs;
        Timeouts {
            tcp_established: d(self.tcp_established),
            tcp_syn_sent: d(self.tcp_syn_sent),
            tcp_syn_recv: d(self.tcp_syn_recv),
            tcp_fin_wait: d(self.tcp_fin_wait),
            tcp_time_wait: d(self.tcp_time_wait),
            tcp_close_wait: d(self.tcp_close_wait),
            tcp_last_ack: d(self.tcp_last_ack),
            tcp_close: d(self.tcp_close),
            udp: d(self.udp),
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_close: 10,
            udp: 300,
        }
    }
}

fn t900() -> u64 {
    900
}
fn t300() -> u64 {
    300
}
fn t120() -> u64 {
    120
}
fn t60() -> u64 {
    60
}
fn t30() -> u64 {
    30
}
fn t10() -> u64 {
    10
}

/// `[[port]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used by neighbours and logs.
    pub name: String,
    /// A virtual device, e.g. `net_af_packet0,iface=lb-cli` or `net_pcap0,rx_pcap=in.pcap,...`.
    pub vdev: Option<String>,
    /// A PCI address to allow, e.g. `0000:03:00.0` (the NIC must be bound to vfio-pci).
    pub pci: Option<String>,
    /// Our address on this port, with the connected subnet.
    pub address: Ipv4Net,
    /// Next hop for destinations outside every connected subnet.
    pub gateway: Option<Ipv4Addr>,
    /// MTU to set on the device (when it supports it).
    pub mtu: Option<u16>,
    /// RX descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// TX descriptors per queue.
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

fn default_desc() -> u16 {
    1024
}

impl PortConfig {
    /// The DPDK device name: the vdev's driver instance, or the PCI address.
    pub fn device_name(&self) -> &str {
        match (&self.vdev, &self.pci) {
            (Some(v), _) => v.split(',').next().unwrap_or(v),
            (None, Some(p)) => p,
            (None, None) => "",
        }
    }
}

/// `[[neighbor]]`: a static ARP entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    /// The port's name.
    pub port: String,
    /// The neighbour's address (inside the port's subnet).
    pub ip: Ipv4Addr,
    /// Its MAC address.
    #[serde(deserialize_with = "deserialize_mac")]
    pub mac: MacAddr,
}

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// The config file names each scheduler as ipvsadm does.
impl<'de> Deserialize<'de> for SchedulerKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh"];
        let s = String::deserialize(d)?;
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| serde::de::Error::unknown_variant(&s, NAMES))
    }
}

/// The config file names each forwarding method in lowercase.
impl<'de> Deserialize<'de> for ForwardMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["nat", "dr", "tun", "fnat"];
        let s = String::deserialize(d)?;
        ForwardMethod::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| serde::de::Error::unknown_variant(&s, NAMES))
    }
}

/// `[[service]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Name for logs and counters.
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// The virtual port (give `port` or `ports`).
    pub port: Option<u16>,
    /// Several ports and ranges, e.g. `["21", "10000-10100"]`, or `["*"]` for every port: one
    /// service for all of them, like an LVS firewall-mark service. Servers then keep the
    /// client's destination port.
    pub ports: Option<Vec<String>>,
    /// Scheduler name (ipvsadm's): rr, wrr, lc, wlc, sed, nq, sh, mh.
    #[serde(default)]
    pub scheduler: SchedulerKind,
    /// Persistence (`ipvsadm -p`): seconds a client keeps its server after its last new
    /// connection; 0 turns it off.
    #[serde(default)]
    pub persistence_timeout: u64,
    /// Persistence granularity (`ipvsadm -M`) as a prefix length: clients in the same /N share
    /// their server.
    #[serde(default = "default_netmask")]
    pub persistence_netmask: u8,
    /// When a server is removed (by a reload), end its existing flows at their next packet
    /// (IPVS's expire_nodest_conn) instead of letting them finish.
    #[serde(default)]
    pub expire_removed: bool,
    /// Full NAT: the source addresses rvs uses towards the servers (on a port's subnet, so rvs
    /// answers ARP for them). Each gives every worker its own share of local ports.
    #[serde(default)]
    pub local_addresses: Vec<Ipv4Addr>,
    /// `nat`.
    #[serde(default)]
    pub forward: ForwardMethod,
    /// Real servers.
    #[serde(rename = "server", default)]
    pub servers: Vec<ServerConfig>,
    /// The FTP helper, when this service is an FTP cluster.
    #[serde(default)]
    pub ftp: Option<FtpConfig>,
}

/// `[[service.server]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The real server's address.
    pub address: Ipv4Addr,
    /// Its port (default: the service's port).
    pub port: Option<u16>,
    /// Weight; 0 takes no new connections.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// DR/TUN FTP services: the passive data ports this server hands out (vsftpd's
    /// `pasv_min_port`-`pasv_max_port`), e.g. `"10000-10099"`. A data connection to one of them
    /// goes to this server, so concurrent passive sessions of one client on different servers
    /// work without persistence. Ranges of one service must not overlap.
    #[serde(default)]
    pub passive_ports: Option<String>,
    /// Set at run time when a reload removed the server (its counters stay in the reports).
    #[serde(skip)]
    pub removed: bool,
}

impl ServerConfig {
    /// The server's passive port range (validated: `lo <= hi`), when it names one.
    pub fn passive_range(&self) -> Option<(u16, u16)> {
        self.passive_ports
            .as_deref()
            .and_then(|t| parse_port_range(t).ok())
    }
}

/// `"10000-10099"` or a single port `"10000"`, as an inclusive range.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let port = |t: &str| -> Result<u16, String> {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{:?} is not a port (1 to 65535)", t.trim()))
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "{lo}-{hi} runs backwards; write the low port first"
        ));
    }
    Ok((lo, hi))
}

fn default_weight() -> u32 {
    1
}

fn default_netmask() -> u8 {
    32
}

impl ServiceConfig {
    /// The service's ports (empty when the config is invalid; validation refuses that).
    pub fn port_set(&self) -> PortSet {
        match (&self.port, &self.ports) {
            (Some(p), None) => PortSet::single(*p),
            (None, Some(list)) => PortSet::parse(list).unwrap_or(PortSet::empty()),
            _ => PortSet::empty(),
        }
    }

    /// The port real servers are reached on: the server's own, else the service's single port;
    /// `None` for a multi-port service, whose servers keep the client's destination port.
    pub fn server_port(&self, srv: &ServerConfig) -> Option<u16> {
        srv.port.or(self.port_set().as_single())
    }
}

/// Largest weight accepted (IPVS allows any positive int; this keeps wrr's arithmetic small).
pub const MAX_WEIGHT: u32 = 65535;

/// EAL options rvs owns: devices come from `[[port]]`.
const DEVICE_OPTIONS: &[&str] = &[
    "--vdev",
    "-a",
    "--allow",
    "-b",
    "--block",
    "--pci-whitelist",
    "-w",
    "--pci-blacklist",
];

impl Config {
    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks that types cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.validate_eal(path)?;
        self.validate_ftp(path)?;
        self.validate_workers(path)?;
        self.validate_flows(path)?;
        self.validate_arp(path)?;
        self.validate_timeouts(path)?;
        self.validate_ports(path)?;
        self.validate_neighbors(path)?;
        self.validate_services(path)
    }

    /// `[eal]`: the EAL arguments name no device (ports do).
    fn validate_eal(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        for (i, a) in self.eal.args.iter().enumerate() {
            let opt = a.split('=').next().unwrap_or(a);
            if DEVICE_OPTIONS.contains(&opt) {
                return Err(err(
                    format!("eal.args[{i}]"),
                    format!("`{a}`: devices are declared in [[port]] with vdev = \"...\" or pci = \"...\"; rvs builds the EAL device arguments itself"),
                ));
            }
        }
        Ok(())
    }

    /// `[ftp]`: table and ring sizes.
    fn validate_ftp(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if !(16..=1 << 20).contains(&self.ftp.max_expectations) {
            return Err(err(
                "ftp.max_expectations".into(),
                format!("{}: must be 16 to 1048576", self.ftp.max_expectations),
            ));
        }
        if !(64..=65536).contains(&self.ftp.ring_size) {
            return Err(err(
                "ftp.ring_size".into(),
                format!("{}: must be 64 to 65536 slots", self.ftp.ring_size),
            ));
        }
        Ok(())
    }

    /// `[workers]`: count, idle nap, burst, mbufs.
    fn validate_workers(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if !(1..=64).contains(&self.workers.count) {
            return Err(err(
                "workers.count".into(),
                format!(
                    "{} workers: must be 1 to 64 (one lcore each; worker 0 runs on the main lcore)",
                    self.workers.count
                ),
            ));
        }
        if self.workers.idle_sleep_us > 10_000 {
            return Err(err(
                "workers.idle_sleep_us".into(),
                format!(
                    "{}: at most 10000 (10 ms); 0 polls without pause",
                    self.workers.idle_sleep_us
                ),
            ));
        }
        if !(1..=512).contains(&self.workers.burst) {
            return Err(err(
                "workers.burst".into(),
                "must be 1 to 512 (32 is usual)".into(),
            ));
        }
        if self.workers.mbufs < 1024 {
            return Err(err("workers.mbufs".into(), "must be at least 1024".into()));
        }
        Ok(())
    }

    /// `[flows]`: capacity and expiry budget.
    fn validate_flows(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.flows.capacity == 0 || self.flows.capacity > (1 << 30) {
            return Err(err(
                "flows.capacity".into(),
                "must be 1 to 1073741824".into(),
            ));
        }
        if self.flows.expire_budget == 0 {
            return Err(err(
                "flows.expire_budget".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `[arp]`: retries and queue bounds.
    fn validate_arp(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.arp.retries == 0 || self.arp.retry_interval_ms == 0 {
            return Err(err(
                "arp".into(),
                "retries and retry_interval_ms must be at least 1".into(),
            ));
        }
        if self.arp.queue_per_neighbor == 0 || self.arp.queue_total < self.arp.queue_per_neighbor {
            return Err(err(
                "arp.queue_total".into(),
                "queue_per_neighbor must be at least 1 and queue_total at least queue_per_neighbor"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `[timeouts]`: each within its bounds.
    fn validate_timeouts(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        let t = &self.timeouts;
        for (name, v) in [
            ("tcp_established", t.tcp_established),
            ("tcp_syn_sent", t.tcp_syn_sent),
            ("tcp_syn_recv", t.tcp_syn_recv),
            ("tcp_fin_wait", t.tcp_fin_wait),
            ("tcp_time_wait", t.tcp_time_wait),
            ("tcp_close_wait", t.tcp_close_wait),
            ("tcp_last_ack", t.tcp_last_ack),
            ("tcp_close", t.tcp_close),
            ("udp", t.udp),
        ] {
            if v == 0 || v > 7 * 24 * 3600 {
                return Err(err(
                    format!("timeouts.{name}"),
                    "must be 1 to 604800 seconds".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[[port]]`: at least one; names, devices, addresses, gateways, MTU, rings.
    fn validate_ports(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        if self.ports.is_empty() {
            return Err(err(
                "port".into(),
                "no [[port]]: declare at least one, e.g. name = \"lan\", vdev = \"net_af_packet0,iface=eth1\", address = \"192.0.2.1/24\"".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let f = |k: &str| {
                format!(
                    "port[{}].{k}",
                    if p.name.is_empty() {
                        i.to_string()
                    } else {
                        p.name.clone()
                    }
                )
            };
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(err(
                    f("name"),
                    "port names must be non-empty and unique".into(),
                ));
            }
            match (&p.vdev, &p.pci) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(err(f("vdev"), "give exactly one of vdev = \"net_...\" or pci = \"0000:03:00.0\"".into()))
                }
                (Some(v), None) if !v.starts_with("net_") => {
                    return Err(err(f("vdev"), format!("`{v}`: a network vdev starts with net_ (net_af_packet0,iface=..., net_pcap0,..., net_tap0, net_ring0)")))
                }
                (None, Some(pci)) if self.eal.args.iter().any(|a| a == "--no-pci") => {
                    return Err(err(f("pci"), format!("`{pci}` with --no-pci in eal.args: remove one of them")))
                }
                _ => {}
            }
            if let Some(gw) = p.gateway {
                if !p.address.contains(gw) || gw == p.address.addr {
                    return Err(err(
                        f("gateway"),
                        format!("{gw} is not another host inside {}", p.address),
                    ));
                }
            }
            if let Some(mtu) = p.mtu {
                if !(576..=9000).contains(&mtu) {
                    return Err(err(f("mtu"), "must be 576 to 9000".into()));
                }
            }
            if p.rx_desc < 32 || p.tx_desc < 32 {
                return Err(err(
                    f("rx_desc"),
                    "rx_desc and tx_desc must be at least 32".into(),
                ));
            }
        }
        let devices: HashSet<&str> = self.ports.iter().map(|p| p.device_name()).collect();
        if devices.len() != self.ports.len() {
            return Err(err("port".into(), "two ports name the same device".into()));
        }
        Ok(())
    }

    /// `[[neighbor]]`: on a port's subnet, unicast.
    fn validate_neighbors(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        for (i, n) in self.neighbors.iter().enumerate() {
            let Some(p) = self.ports.iter().find(|p| p.name == n.port) else {
                return Err(err(
                    format!("neighbor[{i}].port"),
                    format!("no port named `{}`", n.port),
                ));
            };
            if !p.address.contains(n.ip) {
                return Err(err(
                    format!("neighbor[{i}].ip"),
                    format!("{} is outside port {}'s subnet {}", n.ip, p.name, p.address),
                ));
            }
            if !n.mac.is_unicast() {
                return Err(err(
                    format!("neighbor[{i}].mac"),
                    "must be a unicast MAC address".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[[service]]` and `[[service.server]]`.
    fn validate_services(&self, path: &Path) -> Result<(), ConfigError> {
        let err = refusal(path);
        let mut svc_names = HashSet::new();
        let mut svc_keys: Vec<(String, (Protocol, Ipv4Addr, PortSet))> = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let label = if s.name.is_empty() {
                i.to_string()
            } else {
                s.name.clone()
            };
            if s.name.is_empty() || !svc_names.insert(s.name.as_str()) {
                return Err(err(
                    format!("service[{label}].name"),
                    "service names must be non-empty and unique".into(),
                ));
            }
            let set = match (&s.port, &s.ports) {
                (Some(0), None) => {
                    return Err(err(format!("service[{label}].port"), "must be 1 to 65535".into()))
                }
                (Some(p), None) => PortSet::single(*p),
                (None, Some(list)) => PortSet::parse(list)
                    .map_err(|m| err(format!("service[{label}].ports"), m))?,
                _ => {
                    return Err(err(
                        format!("service[{label}].port"),
                        "give exactly one of port = 80 or ports = [\"21\", \"10000-10100\"] (or [\"*\"])".into(),
                    ))
                }
            };
            if let Some((other, _)) = svc_keys.iter().find(|(_, (proto, vip, ports))| {
                *proto == s.protocol && *vip == s.vip && set.overlaps(ports)
            }) {
                return Err(err(
                    format!("service[{label}]"),
                    format!(
                        "its {} ports {set} on {} overlap those of service {other}",
                        s.protocol.name(),
                        s.vip
                    ),
                ));
            }
            svc_keys.push((label.clone(), (s.protocol, s.vip, set.clone())));
            if s.persistence_timeout > 7 * 24 * 3600 {
                return Err(err(
                    format!("service[{label}].persistence_timeout"),
                    "must be 0 (off) to 604800 seconds".into(),
                ));
            }
            if !(1..=32).contains(&s.persistence_netmask) {
                return Err(err(
                    format!("service[{label}].persistence_netmask"),
                    "a prefix length, 1 to 32 (24 groups a /24 like -M 255.255.255.0)".into(),
                ));
            }
            if !s.vip.is_unicast_like() {
                return Err(err(
                    format!("service[{label}].vip"),
                    format!("{} is not a unicast address", s.vip),
                ));
            }
            if self.ports.iter().any(|p| p.address.addr == s.vip) {
                return Err(err(
                    format!("service[{label}].vip"),
                    format!(
                        "{} is a port address; use another address for the VIP",
                        s.vip
                    ),
                ));
            }
            if (s.forward == ForwardMethod::Fnat) == s.local_addresses.is_empty() {
                return Err(err(
                    format!("service[{label}].local_addresses"),
                    "full NAT (forward = \"fnat\") needs local_addresses = [\"198.51.100.2\", ...], and only full NAT uses them".into(),
                ));
            }
            for (k, a) in s.local_addresses.iter().enumerate() {
                if self
                    .services
                    .iter()
                    .take(i)
                    .any(|o| o.local_addresses.contains(a))
                {
                    return Err(err(
                        format!("service[{label}].local_addresses[{k}]"),
                        format!("{a} is already a local address of an earlier service: give each full-NAT service its own"),
                    ));
                }
                let own = self.ports.iter().any(|p| p.address.addr == *a)
                    || self
                        .services
                        .iter()
                        .any(|o| o.vip == *a || o.servers.iter().any(|r| r.address == *a));
                if own || !self.ports.iter().any(|p| p.address.contains(*a)) {
                    return Err(err(
                        format!("service[{label}].local_addresses[{k}]"),
                        format!("{a} must be a free address on a port's subnet (not a port address, VIP or server)"),
                    ));
                }
            }
            if let Some(ftp) = &s.ftp {
                let f = |k: &str| format!("service[{label}].ftp.{k}");
                if s.protocol != Protocol::Tcp {
                    return Err(err(
                        format!("service[{label}].ftp"),
                        "FTP runs over TCP: remove [service.ftp] or set protocol = \"tcp\"".into(),
                    ));
                }
                if ftp.control_ports.is_empty() {
                    return Err(err(
                        f("control_ports"),
                        "name the control port(s), e.g. control_ports = [21]".into(),
                    ));
                }
                if let Some(p) = ftp.control_ports.iter().find(|p| !set.contains(**p)) {
                    return Err(err(
                        f("control_ports"),
                        format!("{p} is not one of the service's ports ({set}); the helper parses only connections to this service"),
                    ));
                }
                if !(1..=1024).contains(&ftp.max_expectations_per_connection) {
                    return Err(err(
                        f("max_expectations_per_connection"),
                        "must be 1 to 1024 (8 is plenty: a client opens one data connection at a time)".into(),
                    ));
                }
                if !(1..=86400).contains(&ftp.expectation_timeout) {
                    return Err(err(
                        f("expectation_timeout"),
                        "must be 1 to 86400 seconds (netfilter uses 300)".into(),
                    ));
                }
            }
            for (j, srv) in s.servers.iter().enumerate() {
                let f = |k: &str| format!("service[{label}].server[{j}].{k}");
                if srv.weight > MAX_WEIGHT {
                    return Err(err(f("weight"), format!("must be 0 to {MAX_WEIGHT}")));
                }
                if srv.port == Some(0) {
                    return Err(err(f("port"), "must be 1 to 65535".into()));
                }
                if srv.port.is_some() && set.as_single().is_none() {
                    return Err(err(
                        f("port"),
                        "a multi-port service keeps the client's destination port: remove the server's port".into(),
                    ));
                }
                if s.forward == ForwardMethod::Dr
                    && !self.ports.iter().any(|p| p.address.contains(srv.address))
                {
                    return Err(err(
                        f("address"),
                        format!("{}: direct routing needs the server on a connected subnet (a port's address range); use forward = \"tun\" to reach it through routers", srv.address),
                    ));
                }
                if !self.routable(srv.address) {
                    return Err(err(
                        f("address"),
                        format!(
                            "{}: no port's subnet contains it and no port has a gateway",
                            srv.address
                        ),
                    ));
                }
                if self.ports.iter().any(|p| p.address.addr == srv.address) || srv.address == s.vip
                {
                    return Err(err(
                        f("address"),
                        format!("{} is one of rvs's own addresses", srv.address),
                    ));
                }
            }
            self.validate_passive_ranges(s, &label, &set, path)?;
            let mut seen = HashSet::new();
            for (j, srv) in s.servers.iter().enumerate() {
                if !seen.insert((srv.address, s.server_port(srv))) {
                    return Err(err(
                        format!("service[{label}].server[{j}]"),
                        "the same address and port appear twice".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `[[service.server]] passive_ports`: DR/TUN FTP only, inside the service's ports, above
    /// the control ports and 1023, no two servers' ranges overlapping.
    fn validate_passive_ranges(
        &self,
        s: &ServiceConfig,
        label: &str,
        set: &PortSet,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let err = |j: usize, message: String| ConfigError {
            file: path.to_path_buf(),
            field: format!("service[{label}].server[{j}].passive_ports"),
            message,
        };
        let mut ranges: Vec<(usize, (u16, u16))> = Vec::new();
        for (j, srv) in s.servers.iter().enumerate() {
            let Some(text) = srv.passive_ports.as_deref() else {
                continue;
            };
            let Some(ftp) = &s.ftp else {
                return Err(err(j, "passive ports belong to an FTP service: add [service.ftp] or remove passive_ports".into()));
            };
            if !matches!(s.forward, ForwardMethod::Dr | ForwardMethod::Tun) {
                return Err(err(j, "only dr and tun services need passive ports (in nat and fnat rvs reads the 227/229 reply): remove passive_ports".into()));
            }
            let (lo, hi) = parse_port_range(text).map_err(|m| err(j, m))?;
            if lo < 1024 {
                return Err(err(j, format!("{lo}-{hi}: data ports below 1024 are refused; use a range from 1024 up (vsftpd: pasv_min_port)")));
            }
            if !(lo..=hi).all(|p| set.contains(p)) {
                return Err(err(j, format!("{lo}-{hi} is not inside the service's ports ({set}): add the range to ports, or the data connections never reach the service")));
            }
            if let Some(c) = ftp.control_ports.iter().find(|c| (lo..=hi).contains(c)) {
                return Err(err(j, format!("{lo}-{hi} holds the control port {c}")));
            }
            if let Some((k, (a, b))) = ranges.iter().find(|(_, (a, b))| lo <= *b && *a <= hi) {
                return Err(err(j, format!("{lo}-{hi} overlaps server[{k}]'s {a}-{b}: give each server its own range (a data port must name one server)")));
            }
            ranges.push((j, (lo, hi)));
        }
        Ok(())
    }

    /// Advice that does not stop rvs: configurations that run but will not do what an
    /// operator most likely wants. `rvs check` and `rvs run` print them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            let dr_tun = matches!(s.forward, ForwardMethod::Dr | ForwardMethod::Tun);
            if s.ftp.as_ref().is_some_and(|f| f.passive)
                && dr_tun
                && s.persistence_timeout == 0
                && s.servers.iter().any(|r| r.passive_ports.is_none())
                && s.servers.len() > 1
            {
                out.push(format!(
                    "service[{}]: a {} FTP service needs persistence_timeout (e.g. 300) or passive_ports on every server: rvs never sees the 227 reply, and concurrent passive sessions of one client on different servers would take each other's data connections",
                    s.name,
                    if s.forward == ForwardMethod::Dr { "dr" } else { "tun" },
                ));
            }
        }
        out
    }

    fn routable(&self, ip: Ipv4Addr) -> bool {
        self.ports
            .iter()
            .any(|p| p.address.contains(ip) || p.gateway.is_some())
    }

    /// The EAL options (no program name): the user's args, one device argument per port, and
    /// `--no-pci` unless a port names a PCI address (which is then the allow-list).
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        for p in &self.ports {
            if let Some(v) = &p.vdev {
                args.push("--vdev".into());
                args.push(v.clone());
            } else if let Some(pci) = &p.pci {
                args.push("-a".into());
                args.push(pci.clone());
            }
        }
        if self.ports.iter().all(|p| p.pci.is_none()) && !args.iter().any(|a| a == "--no-pci") {
            args.push("--no-pci".into());
        }
        args
    }

    /// The multi-line summary `rvs check` prints.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("eal: {}\n", self.eal_args().join(" ")));
        s.push_str(&format!(
            "workers: {} (burst {}, {} mbufs); flows: {} per worker; stats every {} s\n",
            self.workers.count,
            self.workers.burst,
            self.workers.mbufs,
            self.flows.capacity,
            self.stats.interval_secs
        ));
        for p in &self.ports {
            s.push_str(&format!(
                "port {}: {} address {}{}\n",
                p.name,
                p.vdev.as_deref().or(p.pci.as_deref()).unwrap_or("?"),
                p.address,
                p.gateway
                    .map(|g| format!(" gateway {g}"))
                    .unwrap_or_default()
            ));
        }
        for n in &self.neighbors {
            s.push_str(&format!("neighbor {} {} on {}\n", n.ip, n.mac, n.port));
        }
        for v in &self.services {
            let persist = if v.persistence_timeout > 0 {
                format!(
                    " persistent {} s /{}",
                    v.persistence_timeout, v.persistence_netmask
                )
            } else {
                String::new()
            };
            s.push_str(&format!(
                "service {}: {} {}:{} {} {}{persist} ({} servers)\n",
                v.name,
                v.protocol.name(),
                v.vip,
                v.port_set(),
                v.scheduler.name(),
                v.forward.name(),
                v.servers.len()
            ));
            for r in &v.servers {
                let port = v
                    .server_port(r)
                    .map_or_else(|| "(client's port)".to_string(), |p| p.to_string());
                s.push_str(&format!("  -> {}:{port} weight {}\n", r.address, r.weight));
            }
        }
        s
    }
}

trait UnicastLike {
    fn is_unicast_like(&self) -> bool;
}

impl UnicastLike for Ipv4Addr {
    fn is_unicast_like(&self) -> bool {
        !(self.is_unspecified() || self.is_broadcast() || self.is_multicast() || self.is_loopback())
    }
}

impl Config {
    /// This running config with a reload's server changes applied: weights updated, removed
    /// servers kept (so counter rows keep their positions) but marked.
    pub fn with_changes(&self, changes: &[ServerChange]) -> Config {
        let mut c = self.clone();
        let mut index: u16 = 0;
        for s in &mut c.services {
            for r in &mut s.servers {
                if let Some(ch) = changes.iter().find(|ch| ch.server == index) {
                    r.weight = ch.weight;
                    r.removed = ch.removed;
                }
                index = index.saturating_add(1);
            }
        }
        c
    }
}

/// One server change a reload may make at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerChange {
    /// Service index (config order).
    pub service: u16,
    /// Global server index (config order across services, as at start).
    pub server: u16,
    /// New weight (0 when removed).
    pub weight: u32,
    /// The server is no longer in the config.
    pub removed: bool,
}

impl Config {
    /// What a reload from `self` (running) to `new` changes, or why it cannot be applied while
    /// running. Only server weights may change, and servers known at start may be removed and
    /// added back; everything else needs a restart. `path` names the file in messages.
    pub fn reload_changes(
        &self,
        new: &Config,
        path: &Path,
    ) -> Result<Vec<ServerChange>, ConfigError> {
        let refuse = |field: String, what: &str| ConfigError {
            file: path.to_path_buf(),
            field,
            message: format!(
                "{what} cannot change while rvs runs: restart to apply it (nothing was changed)"
            ),
        };
        if self.eal.args != new.eal.args || self.workers.count != new.workers.count {
            return Err(refuse(
                "eal/workers".into(),
                "EAL arguments or the worker count",
            ));
        }
        if self.ports.len() != new.ports.len()
            || self.ports.iter().zip(&new.ports).any(|(a, b)| {
                a.name != b.name
                    || a.vdev != b.vdev
                    || a.pci != b.pci
                    || a.address != b.address
                    || a.gateway != b.gateway
            })
        {
            return Err(refuse("port".into(), "ports"));
        }
        if self.services.len() != new.services.len() {
            return Err(refuse("service".into(), "the set of services"));
        }
        let mut changes = Vec::new();
        let mut index: u16 = 0;
        for (i, (a, b)) in self.services.iter().zip(&new.services).enumerate() {
            let label = format!("service[{}]", a.name);
            if a.name != b.name
                || a.protocol != b.protocol
                || a.vip != b.vip
                || a.port_set() != b.port_set()
                || a.scheduler != b.scheduler
                || a.forward != b.forward
                || a.persistence_timeout != b.persistence_timeout
                || a.persistence_netmask != b.persistence_netmask
                || a.expire_removed != b.expire_removed
                || a.local_addresses != b.local_addresses
            {
                return Err(refuse(
                    label,
                    "a service's name, protocol, VIP, ports, scheduler, method or persistence",
                ));
            }
            for (j, nb) in b.servers.iter().enumerate() {
                if a.servers.iter().any(|o| {
                    o.address == nb.address
                        && a.server_port(o) == b.server_port(nb)
                        && o.passive_range() != nb.passive_range()
                }) {
                    return Err(refuse(
                        format!("{label}.server[{j}].passive_ports"),
                        "a server's passive ports",
                    ));
                }
                if !a
                    .servers
                    .iter()
                    .any(|o| o.address == nb.address && a.server_port(o) == b.server_port(nb))
                {
                    return Err(refuse(
                        format!("{label}.server[{j}]"),
                        "adding a server not present at start",
                    ));
                }
            }
            for o in &a.servers {
                let now = b
                    .servers
                    .iter()
                    .find(|nb| nb.address == o.address && b.server_port(nb) == a.server_port(o));
                changes.push(ServerChange {
                    service: i as u16,
                    server: index,
                    weight: now.map_or(0, |n| n.weight),
                    removed: now.is_none(),
                });
                index = index.saturating_add(1);
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "512", "--file-prefix", "t"]

[[port]]
name = "client"
vdev = "net_af_packet0,iface=lb-cli"
address = "192.0.2.1/24"

[[port]]
name = "server"
vdev = "net_af_packet1,iface=lb-srv"
address = "198.51.100.1/24"

[[neighbor]]
port = "server"
ip = "198.51.100.11"
mac = "02:00:00:00:00:11"

[[service]]
name = "web"
protocol = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "wrr"

[[service.server]]
address = "198.51.100.11"
port = 8080
weight = 3

[[service.server]]
address = "198.51.100.12"
port = 8080
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("t.toml"))
    }

    #[test]
    fn timeout_defaults_are_the_flow_tables() {
        assert_eq!(TimeoutsConfig::default().model(), Timeouts::default());
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.services[0].servers[1].weight, 1);
        assert_eq!(c.timeouts.tcp_established, 900);
        assert_eq!(c.ports[0].device_name(), "net_af_packet0");
        let args = c.eal_args();
        assert!(args.contains(&"--no-pci".to_string()));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "--vdev" && w[1] == "net_af_packet1,iface=lb-srv"));
        assert!(c
            .summary()
            .contains("service web: tcp 192.0.2.100:80 wrr nat (2 servers)"));
    }

    fn refused(s: &str) -> ConfigError {
        parse(s).unwrap_err()
    }

    #[test]
    fn unknown_field_is_refused_with_position() {
        let e = refused(&GOOD.replace("scheduler = \"wrr\"", "schedular = \"wrr\""));
        let m = e.to_string();
        assert!(m.starts_with("t.toml: "), "{m}");
        assert!(m.contains("schedular") && m.contains("line"), "{m}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (
                GOOD.replace("weight = 3", "weight = 70000"),
                "service[web].server[0].weight",
            ),
            (
                GOOD.replace("\"192.0.2.1/24\"", "\"192.0.2.1/33\""),
                "prefix",
            ),
            (
                GOOD.replace("ip = \"198.51.100.11\"", "ip = \"203.0.113.9\""),
                "neighbor[0].ip",
            ),
            (
                GOOD.replace("address = \"198.51.100.12\"", "address = \"203.0.113.12\""),
                "service[web].server[1].address",
            ),
            (
                GOOD.replace(
                    "\"-l\", \"0-1\",",
                    "\"-l\", \"0-1\", \"--vdev\", \"net_null0\",",
                ),
                "eal.args[2]",
            ),
            (
                GOOD.replace("scheduler = \"wrr\"", "scheduler = \"fastest\""),
                "unknown variant",
            ),
            (
                GOOD.replace("vip = \"192.0.2.100\"", "vip = \"192.0.2.1\""),
                "service[web].vip",
            ),
            (
                GOOD.replace("name = \"server\"", "name = \"client\""),
                "port[client].name",
            ),
            (
                GOOD.replace("mac = \"02:00:00:00:00:11\"", "mac = \"zz\""),
                "MAC",
            ),
            (
                format!("{GOOD}\n[workers]\ncount = 0\n"),
                "workers.count: 0 workers: must be 1 to 64",
            ),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(m.contains(needle), "expected `{needle}` in: {m}");
        }
    }

    #[test]
    fn port_sets_and_persistence() {
        let ftp = GOOD.replace("port = 80\nscheduler = \"wrr\"", "ports = [\"21\", \"10000-10100\", \"10050-10200\"]\nscheduler = \"wrr\"\npersistence_timeout = 300\npersistence_netmask = 24")
            .replace("port = 8080\nweight = 3", "weight = 3")
            .replace("port = 8080\n", "");
        let c = parse(&ftp).unwrap();
        let set = c.services[0].port_set();
        assert_eq!(set.to_string(), "21,10000-10200");
        assert!(
            set.contains(21) && set.contains(10200) && !set.contains(22) && !set.contains(10201)
        );
        assert_eq!(c.services[0].server_port(&c.services[0].servers[0]), None);
        assert!(c
            .summary()
            .contains("tcp 192.0.2.100:21,10000-10200 wrr nat persistent 300 s /24"));
        assert_eq!(PortSet::parse(&["*".into()]).unwrap().to_string(), "*");

        let cases = [
            (ftp.replace("\"10050-10200\"", "\"10200-10050\""), "service[web].ports: `10200-10050` is not a port"),
            (ftp.replace("weight = 3", "weight = 3\nport = 2121"), "service[web].server[0].port: a multi-port service keeps the client's destination port"),
            (ftp.replace("persistence_netmask = 24", "persistence_netmask = 0"), "service[web].persistence_netmask"),
            (ftp.replace("ports = [", "port = 21\nports = ["), "give exactly one of port"),
            (format!("{ftp}\n[[service]]\nname = \"other\"\nprotocol = \"tcp\"\nvip = \"192.0.2.100\"\nport = 10100\n"), "service[other]: its tcp ports 10100 on 192.0.2.100 overlap those of service web"),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(m.contains(needle), "expected `{needle}` in: {m}");
        }
        // The same ports on another protocol or VIP do not overlap.
        let udp = format!("{ftp}\n[[service]]\nname = \"other\"\nprotocol = \"udp\"\nvip = \"192.0.2.100\"\nport = 21\n");
        parse(&udp).unwrap();
    }

    #[test]
    fn passive_ports_per_server() {
        let dr = include_str!("../config/lab-ftp-dr.toml");
        let c = parse(dr).unwrap();
        assert_eq!(
            c.services[0].servers[1].passive_range(),
            Some((15000, 19999))
        );
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        // Neither passive ports nor persistence: it runs, with a warning that says what to do.
        let bare = dr.replace("passive_ports = \"10000-14999\"\n", "");
        let w = parse(&bare).unwrap().warnings();
        assert!(
            w.len() == 1 && w[0].contains("service[ftp]") && w[0].contains("persistence_timeout"),
            "{w:?}"
        );
        let persistent = bare.replace(
            "forward = \"dr\"",
            "forward = \"dr\"\npersistence_timeout = 300",
        );
        assert!(parse(&persistent).unwrap().warnings().is_empty());
        let field = "service[ftp].server[";
        let cases = [
            (
                dr.replace("15000-19999", "14990-19999"),
                "overlaps server[0]'s 10000-14999",
            ),
            (
                dr.replace("15000-19999", "15000-20100"),
                "is not inside the service's ports",
            ),
            (dr.replace("15000-19999", "19999-15000"), "runs backwards"),
            (dr.replace("15000-19999", "15000-x"), "\"x\" is not a port"),
            (dr.replace("\"15000-19999\"", "\"21\""), "below 1024"),
            (
                dr.replace("forward = \"dr\"", "forward = \"nat\"")
                    .replace("ports = [\"21\", \"10000-10100\"]", "port = 21"),
                "only dr and tun",
            ),
        ];
        for (text, needle) in cases {
            let m = refused(&text).to_string();
            assert!(
                m.contains(field) && m.contains(needle),
                "expected `{field}` and `{needle}` in: {m}"
            );
        }
        let moved = parse(&dr.replace("15000-19999", "15010-19999")).unwrap();
        let m = c
            .reload_changes(&moved, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("server[1].passive_ports") && m.contains("restart"),
            "{m}"
        );
    }

    #[test]
    fn reload_allows_weights_and_removals_only() {
        let old = parse(GOOD).unwrap();
        let p = Path::new("t.toml");
        let same = old.reload_changes(&parse(GOOD).unwrap(), p).unwrap();
        assert_eq!(
            same.iter()
                .map(|c| (c.weight, c.removed))
                .collect::<Vec<_>>(),
            vec![(3, false), (1, false)]
        );
        let drained = parse(&GOOD.replace("weight = 3", "weight = 0")).unwrap();
        assert_eq!(
            old.reload_changes(&drained, p).unwrap()[0],
            ServerChange {
                service: 0,
                server: 0,
                weight: 0,
                removed: false
            }
        );
        let i = GOOD.rfind("[[service.server]]").unwrap();
        let removed = parse(&GOOD[..i]).unwrap();
        assert_eq!(
            old.reload_changes(&removed, p).unwrap()[1],
            ServerChange {
                service: 0,
                server: 1,
                weight: 0,
                removed: true
            }
        );
        let refusals = [
            (
                GOOD.replace("port = 80", "port = 81"),
                "service[web]: a service's name",
            ),
            (
                GOOD.replace("address = \"198.51.100.12\"", "address = \"198.51.100.13\""),
                "service[web].server[1]: adding a server",
            ),
            (GOOD.replace("\"0-1\"", "\"0-2\""), "eal/workers"),
            (
                GOOD.replace("198.51.100.1/24", "198.51.100.2/24"),
                "port: ports cannot change",
            ),
        ];
        for (text, needle) in refusals {
            let m = old
                .reload_changes(&parse(&text).unwrap(), p)
                .unwrap_err()
                .to_string();
            assert!(
                m.contains(needle) && m.contains("restart"),
                "expected `{needle}` in: {m}"
            );
        }
    }

    #[test]
    fn pci_port_uses_allow_list_not_no_pci() {
        let text = GOOD.replace(
            "vdev = \"net_af_packet0,iface=lb-cli\"",
            "pci = \"0000:03:00.0\"",
        );
        let c = parse(&text).unwrap();
        let args = c.eal_args();
        assert!(!args.contains(&"--no-pci".to_string()));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-a" && w[1] == "0000:03:00.0"));
        let both = text.replace("\"-l\", \"0-1\",", "\"-l\", \"0-1\", \"--no-pci\",");
        assert!(refused(&both).to_string().contains("port[client].pci"));
    }

    #[test]
    fn net_contains() {
        let n: Ipv4Net = "192.0.2.1/24".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(!n.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let h: Ipv4Net = "192.0.2.1/32".parse().unwrap();
        assert!(
            h.contains(Ipv4Addr::new(192, 0, 2, 1)) && !h.contains(Ipv4Addr::new(192, 0, 2, 2))
        );
    }
}
