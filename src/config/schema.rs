//! The file as serde reads it: one struct per section, `deny_unknown_fields` everywhere, IPVS's
//! defaults where a key is left out. A misspelt key or a wrong type is refused with toml's
//! line/column report; the domain types the fields turn into (`ForwardMethod`, `SchedulerKind`,
//! `PortSet`, `Ipv4Net`, `Timeouts`) live with their domains and are read here by name.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::*;

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

impl ArpConfig {
    /// The limits as the neighbour table uses them.
    pub fn model(&self) -> ArpParams {
        ArpParams {
            retries: self.retries,
            retry_interval: std::time::Duration::from_millis(self.retry_interval_ms),
            reachable: std::time::Duration::from_secs(self.reachable_secs),
            queue_per_neighbor: self.queue_per_neighbor,
            queue_total: self.queue_total,
            max_entries: self.max_entries,
        }
    }
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
pub(super) fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
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
pub(super) const DEVICE_OPTIONS: &[&str] = &[
    "--vdev",
    "-a",
    "--allow",
    "-b",
    "--block",
    "--pci-whitelist",
    "-w",
    "--pci-blacklist",
];
