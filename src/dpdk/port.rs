//! Ethernet ports: configure and start an ethdev from what the device says it can do, and split
//! it into per-queue handles that workers own.
//!
//! [`Port::start`] reads `rte_eth_dev_info` first and never assumes: queue counts are checked
//! against the device maxima (a clear error, not a silent clamp, because the worker layout
//! depends on them), descriptor counts are adjusted to the device limits, RSS is enabled only
//! when asked, useful (more than one rx queue) and supported, with the hash types masked by what
//! the device offers. MTU and promiscuous mode are best effort on devices that do not implement
//! them (vdevs such as net_ring): `-ENOTSUP` becomes a warning in [`PortInfo::warnings`], any
//! other error fails the start.
//!
//! Ownership: [`Port`] stops and closes the device on drop. Each [`RxQueue`] / [`TxQueue`] has
//! one owner (a worker) and is not `Clone`; DPDK requires that a queue is polled by one thread
//! at a time. The mempool given to `start` must outlive the port. A queue used after its port was
//! dropped receives and sends nothing (ethdev points closed ports at dummy burst functions).

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_mbuf};

use super::mbuf::free_bulk;
use super::{c_chars_to_string, neg, DpdkError, Mbuf, Mempool, Result};

/// How to bring a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive queues (one per worker, usually).
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per rx queue (adjusted to the device's limits; 0 = device default).
    pub rx_desc: u16,
    /// Descriptors per tx queue (adjusted to the device's limits; 0 = device default).
    pub tx_desc: u16,
    /// MTU to set, if any (best effort on devices without MTU support).
    pub mtu: Option<u16>,
    /// Accept frames for any destination MAC (best effort).
    pub promiscuous: bool,
    /// Spread flows over the rx queues with the NIC's RSS, when it has more than one.
    pub rss: bool,
    /// The Toeplitz key to program when RSS is on and the device takes a key of this length
    /// (`None`: the device's default key).
    pub rss_key: Option<[u8; 40]>,
}

impl Default for PortConfig {
    fn default() -> PortConfig {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
            rss: true,
            rss_key: None,
        }
    }
}

/// What the device reported, and what `start` ended up configuring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortInfo {
    /// The port's ethdev name (e.g. `net_ring0`).
    pub name: String,
    /// The PMD's name (e.g. `net_ring`).
    pub driver: String,
    /// NUMA socket of the device, or [`super::SOCKET_ID_ANY`].
    pub socket: i32,
    /// Device maxima.
    pub max_rx_queues: u16,
    /// Device maxima.
    pub max_tx_queues: u16,
    /// `RTE_ETH_RX_OFFLOAD_*` the device supports.
    pub rx_offload_capa: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` the device supports.
    pub tx_offload_capa: u64,
    /// `RTE_ETH_RSS_*` hash types the device supports (0: no RSS).
    pub flow_type_rss_offloads: u64,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// RSS hash key size in bytes.
    pub hash_key_size: u8,
    /// rvs's RSS key was programmed (else the device's default is in use).
    pub rss_key_set: bool,
    /// Smallest and largest MTU the device accepts.
    pub min_mtu: u16,
    /// Smallest and largest MTU the device accepts.
    pub max_mtu: u16,
    /// Queues configured.
    pub rx_queues: u16,
    /// Queues configured.
    pub tx_queues: u16,
    /// Descriptors per queue after adjustment to the device limits.
    pub rx_desc: u16,
    /// Descriptors per queue after adjustment to the device limits.
    pub tx_desc: u16,
    /// RSS is on (multi-queue RSS mode with a non-empty hash type set).
    pub rss_enabled: bool,
    /// The `RTE_ETH_RSS_*` hash types enabled.
    pub rss_hf: u64,
    /// The requested MTU was applied.
    pub mtu_set: bool,
    /// The MTU the device reports now.
    pub mtu: u16,
    /// Promiscuous mode is on.
    pub promiscuous: bool,
    /// Things asked for that the device could not do (not errors).
    pub warnings: Vec<String>,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown or down).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the NIC dropped because the rx queues were full.
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured and started ethdev port; stopped and closed on drop.
pub struct Port {
    id: u16,
    mac: [u8; 6],
    info: PortInfo,
}

/// An ethdev port id that is valid.
fn check_port(port_id: u16, what: &str) -> Result<()> {
    // SAFETY: a pure lookup in ethdev's port table; any id is accepted.
    if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
        return Err(DpdkError::new(
            format!("{what}: no such port"),
            neg(dpdk_sys::ENODEV),
        ));
    }
    Ok(())
}

/// `rc` as a Result (ethdev returns 0 or a negative errno).
fn check(rc: i32, what: impl FnOnce() -> String) -> Result<()> {
    if rc < 0 {
        Err(DpdkError::new(what(), rc))
    } else {
        Ok(())
    }
}

/// `rc` is "not supported by this device": a warning, not a failure.
fn is_unsupported(rc: i32) -> bool {
    rc == neg(dpdk_sys::ENOTSUP) || rc == neg(dpdk_sys::EOPNOTSUPP)
}

/// The RSS hash types to ask for: IPv4/IPv6 addresses and TCP/UDP ports, limited to what the
/// device supports.
fn rss_hash_types(device_supports: u64) -> u64 {
    (dpdk_sys::RVS_ETH_RSS_IP | dpdk_sys::RVS_ETH_RSS_TCP | dpdk_sys::RVS_ETH_RSS_UDP)
        & device_supports
}

/// Check the requested queue count against the device maximum.
fn check_queues(kind: &str, want: u16, max: u16, port: &str) -> Result<()> {
    if want == 0 {
        return Err(DpdkError::new(
            format!("{port}: at least one {kind} queue is needed"),
            neg(dpdk_sys::EINVAL),
        ));
    }
    if want > max {
        return Err(DpdkError::new(
            format!("{port}: {want} {kind} queues requested, the device supports at most {max}"),
            neg(dpdk_sys::EINVAL),
        ));
    }
    Ok(())
}

fn dev_info(port_id: u16) -> Result<rte_eth_dev_info> {
    let mut info = rte_eth_dev_info::default();
    // SAFETY: `info` is a valid, writable rte_eth_dev_info; the port id is checked by ethdev.
    let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(port_id, &mut info) };
    check(rc, || format!("rte_eth_dev_info_get(port {port_id})"))?;
    Ok(info)
}

fn port_name(port_id: u16) -> String {
    let mut buf = [0 as c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the size ethdev writes at most (NUL included).
    let rc = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(port_id, buf.as_mut_ptr()) };
    if rc < 0 {
        return format!("port {port_id}");
    }
    c_chars_to_string(&buf)
}

impl Port {
    /// The port id of the ethdev called `name` (e.g. `"net_ring0"`, `"net_af_packet0"`).
    pub fn find(name: &str) -> Result<u16> {
        let what = format!("rte_eth_dev_get_port_by_name({name:?})");
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(format!("{what}: NUL in name"), neg(dpdk_sys::EINVAL)))?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string and id a valid u16 to write to.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        check(rc, || what)?;
        Ok(id)
    }

    /// Create a virtual device at run time (like `--vdev name,args`), e.g.
    /// `attach_vdev("net_ring1", "")` or `attach_vdev("net_af_packet0", "iface=veth0")`,
    /// and return its port id.
    pub fn attach_vdev(name: &str, args: &str) -> Result<u16> {
        let what = format!("rte_vdev_init({name:?}, {args:?})");
        let (Ok(cname), Ok(cargs)) = (CString::new(name), CString::new(args)) else {
            return Err(DpdkError::new(
                format!("{what}: NUL in argument"),
                neg(dpdk_sys::EINVAL),
            ));
        };
        // SAFETY: both are valid C strings for the duration of the call; DPDK copies them.
        let rc = unsafe { dpdk_sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
        check(rc, || what)?;
        Port::find(name)
    }

    /// The most RX and TX queues device `port_id` supports (read before starting it, to decide
    /// how many to ask for).
    pub fn max_queues(port_id: u16) -> Result<(u16, u16)> {
        check_port(port_id, "max_queues")?;
        let d = dev_info(port_id)?;
        Ok((d.max_rx_queues, d.max_tx_queues))
    }

    /// Number of usable ports.
    pub fn count() -> u16 {
        // SAFETY: reads ethdev's port table.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// Configure and start `port_id` with `cfg`, receiving into `pool` (which must outlive the
    /// port). Returns the port and one handle per rx and tx queue, in queue order.
    ///
    /// Validation errors leave the device untouched. A failure while configuring leaves it
    /// configured but not started (it can be started again); a failure after it started stops
    /// and closes it.
    pub fn start(
        port_id: u16,
        cfg: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Port, Vec<RxQueue>, Vec<TxQueue>)> {
        check_port(port_id, &format!("Port::start(port {port_id})"))?;
        let name = port_name(port_id);
        let label = format!("port {port_id} ({name})");
        let dev = dev_info(port_id)?;
        let driver = if dev.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the PMD.
            unsafe { CStr::from_ptr(dev.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        check_queues("rx", cfg.rx_queues, dev.max_rx_queues, &label)?;
        check_queues("tx", cfg.tx_queues, dev.max_tx_queues, &label)?;

        // SAFETY: a lookup in ethdev's port table (port checked above).
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
        let mut info = PortInfo {
            name,
            driver,
            socket,
            max_rx_queues: dev.max_rx_queues,
            max_tx_queues: dev.max_tx_queues,
            rx_offload_capa: dev.rx_offload_capa,
            tx_offload_capa: dev.tx_offload_capa,
            flow_type_rss_offloads: dev.flow_type_rss_offloads,
            reta_size: dev.reta_size,
            hash_key_size: dev.hash_key_size,
            min_mtu: dev.min_mtu,
            max_mtu: dev.max_mtu,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            ..PortInfo::default()
        };

        let mut conf = rte_eth_conf::default();
        let mut key = cfg.rss_key;
        if cfg.rss && cfg.rx_queues > 1 {
            let hf = rss_hash_types(dev.flow_type_rss_offloads);
            if hf == 0 {
                info.warnings.push(format!(
                    "{label}: RSS requested but the device supports none of the IP/TCP/UDP \
                     hash types; flows are not spread by the NIC"
                ));
            } else {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
                match &mut key {
                    Some(k) if usize::from(dev.hash_key_size) == k.len() => {
                        // ethdev reads the key during rte_eth_dev_configure, while `key` lives.
                        conf.rx_adv_conf.rss_conf.rss_key = k.as_mut_ptr();
                        conf.rx_adv_conf.rss_conf.rss_key_len = k.len() as u8;
                        info.rss_key_set = true;
                    }
                    Some(_) => info.warnings.push(format!(
                        "{label}: the device takes a {}-byte RSS key, not 40: its default key is \
                         used, so software and NIC hashes may differ (correct, with more handover)",
                        dev.hash_key_size
                    )),
                    None => {}
                }
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                // Deliver the hash in the mbuf where the device can.
                conf.rxmode.offloads |= dev.rx_offload_capa & dpdk_sys::RVS_ETH_RX_OFFLOAD_RSS_HASH;
                info.rss_enabled = true;
                info.rss_hf = hf;
            }
        }

        // SAFETY: conf is a valid rte_eth_conf that ethdev copies; the port is valid.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_configure(port_id, cfg.rx_queues, cfg.tx_queues, &conf)
        };
        check(rc, || format!("rte_eth_dev_configure({label})"))?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: both pointers are valid u16s that ethdev adjusts in place.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc)
        };
        check(rc, || format!("rte_eth_dev_adjust_nb_rx_tx_desc({label})"))?;
        info.rx_desc = rx_desc;
        info.tx_desc = tx_desc;

        // Queue memory on the device's socket; vdevs report SOCKET_ID_ANY, which DPDK accepts.
        let qsocket = u32::try_from(socket).unwrap_or(dpdk_sys::RVS_SOCKET_ID_ANY as u32);
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with rx_queues queues, q is in range, a NULL rxconf
            // selects the device defaults, and the pool is a live pktmbuf pool.
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_desc,
                    qsocket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(rc, || format!("rte_eth_rx_queue_setup({label}, queue {q})"))?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above, for tx; a NULL txconf selects the device defaults.
            let rc = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, qsocket, std::ptr::null())
            };
            check(rc, || format!("rte_eth_tx_queue_setup({label}, queue {q})"))?;
        }

        if let Some(mtu) = cfg.mtu {
            // SAFETY: plain ethdev control call on a configured port.
            let rc = unsafe { dpdk_sys::rte_eth_dev_set_mtu(port_id, mtu) };
            if is_unsupported(rc) {
                let mut now = 0u16;
                // SAFETY: `now` is a valid u16 to write to.
                let got = unsafe { dpdk_sys::rte_eth_dev_get_mtu(port_id, &mut now) };
                if got == 0 && now == mtu {
                    // Already what we want: nothing to warn about.
                    info.mtu_set = true;
                } else {
                    info.warnings.push(format!(
                        "{label}: the device cannot set its MTU (wanted {mtu}, has {now}); \
                         left as is"
                    ));
                }
            } else {
                check(rc, || format!("rte_eth_dev_set_mtu({label}, {mtu})"))?;
                info.mtu_set = true;
            }
        }

        // SAFETY: plain ethdev control call on a configured port with all queues set up.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(port_id) };
        check(rc, || format!("rte_eth_dev_start({label})"))?;
        // From here on, `port` stops and closes the device if anything fails.
        let mut port = Port {
            id: port_id,
            mac: [0; 6],
            info,
        };

        if cfg.promiscuous {
            // SAFETY: plain ethdev control call on a started port.
            let rc = unsafe { dpdk_sys::rte_eth_promiscuous_enable(port_id) };
            if is_unsupported(rc) {
                port.info
                    .warnings
                    .push(format!("{label}: the device has no promiscuous mode"));
            } else {
                check(rc, || format!("rte_eth_promiscuous_enable({label})"))?;
            }
        }
        // SAFETY: plain ethdev query.
        port.info.promiscuous = unsafe { dpdk_sys::rte_eth_promiscuous_get(port_id) } == 1;

        let mut mtu = 0u16;
        // SAFETY: mtu is a valid u16 to write to.
        if unsafe { dpdk_sys::rte_eth_dev_get_mtu(port_id, &mut mtu) } == 0 {
            port.info.mtu = mtu;
        }

        let mut mac = dpdk_sys::rte_ether_addr::default();
        // SAFETY: mac is a valid rte_ether_addr to write to.
        let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(port_id, &mut mac) };
        check(rc, || format!("rte_eth_macaddr_get({label})"))?;
        port.mac = mac.addr_bytes;

        let rx = (0..cfg.rx_queues)
            .map(|queue| RxQueue {
                port: port_id,
                queue,
            })
            .collect();
        let tx = (0..cfg.tx_queues)
            .map(|queue| TxQueue {
                port: port_id,
                queue,
            })
            .collect();
        Ok((port, rx, tx))
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the device supports and what was configured.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Current link state, without waiting for autonegotiation.
    pub fn link(&self) -> LinkStatus {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: link is a valid rte_eth_link to write to; the port is started.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        if rc < 0 {
            return LinkStatus::default();
        }
        LinkStatus {
            up: u32::from(link.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        }
    }

    /// Port counters (zeros if the device cannot report them).
    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: s is a valid rte_eth_stats to write to.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if rc < 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Extended counters by name (empty if the device cannot report them). Allocates; meant for
    /// the control plane, not the packet path.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a NULL array with size 0 asks for the number of xstats.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        let Ok(size) = u32::try_from(n) else {
            return Vec::new();
        };
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); size as usize];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); size as usize];
        // SAFETY: `names` has `size` writable entries.
        let got = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), size) };
        // SAFETY: `values` has `size` writable entries.
        let vals = unsafe { dpdk_sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), size) };
        // Both calls return the full count; more than we asked for means the set changed.
        let (Ok(got), Ok(vals)) = (usize::try_from(got), usize::try_from(vals)) else {
            return Vec::new();
        };
        if got > names.len() || vals > values.len() {
            return Vec::new();
        }
        values[..vals]
            .iter()
            .filter_map(|v| {
                let name = names[..got].get(usize::try_from(v.id).ok()?)?;
                Some((c_chars_to_string(&name.name), v.value))
            })
            .collect()
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id)
            .field("name", &self.info.name)
            .field("driver", &self.info.driver)
            .finish()
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: we started this port and own it; stop then close is the ethdev teardown order.
        // Errors are ignored: there is nothing left to do with a port we are giving up.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

/// One receive queue of a started port. Exactly one owner polls it.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// Receive up to `max` frames, appended to `out` — but never more than `out`'s spare
    /// capacity, so the burst allocates nothing (reserve capacity once, up front). One FFI call.
    /// Returns how many were received.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let spare = out.spare_capacity_mut();
        let want = max.min(spare.len()).min(usize::from(u16::MAX));
        if want == 0 {
            return 0;
        }
        // SAFETY: `spare` has room for `want` pointers; Mbuf is repr(transparent) over a non-null
        // `*mut rte_mbuf`, and the PMD writes exactly the returned number of valid mbuf pointers,
        // whose ownership passes to us. One thread polls this queue (&mut self, no Clone).
        let got = unsafe {
            dpdk_sys::rte_eth_rx_burst(
                self.port,
                self.queue,
                spare.as_mut_ptr().cast::<*mut rte_mbuf>(),
                want as u16,
            )
        };
        let got = usize::from(got).min(want);
        // SAFETY: the first `got` spare slots were initialised with owned mbufs just above.
        unsafe { out.set_len(out.len() + got) };
        got
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// One transmit queue of a started port. Exactly one owner sends on it.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue {
    /// Send frames from the front of `pkts` in one FFI call and return how many were taken.
    ///
    /// The sent mbufs are gone from `pkts`: the NIC owns them and frees them after sending.
    /// Whatever the NIC did not take (its ring was full) is moved to the front of `pkts` and
    /// still belongs to the caller, who must retry, or free and count them
    /// ([`TxQueue::tx_burst_or_free`] does the latter).
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let n = len.min(usize::from(u16::MAX));
        let base = pkts.as_mut_ptr().cast::<*mut rte_mbuf>();
        // SAFETY: base[..n] are owned, valid mbufs (Mbuf is repr(transparent) over the pointer).
        // The PMD takes ownership of exactly the first `sent` of them. One thread uses this
        // queue (&mut self, no Clone).
        let sent = unsafe { dpdk_sys::rte_eth_tx_burst(self.port, self.queue, base, n as u16) };
        let sent = usize::from(sent).min(n);
        if sent == 0 {
            return 0;
        }
        // SAFETY: the first `sent` elements now belong to the NIC, so they must leave the Vec
        // without being dropped: shrink to 0 first (nothing is dropped twice on any path), move
        // the unsent tail to the front (ptr::copy handles overlap), then expose just the tail.
        unsafe {
            pkts.set_len(0);
            std::ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
        }
        sent
    }

    /// [`TxQueue::tx_burst`], then free what the NIC did not take. Returns (sent, dropped);
    /// `pkts` is left empty.
    pub fn tx_burst_or_free(&mut self, pkts: &mut Vec<Mbuf>) -> (usize, usize) {
        let sent = self.tx_burst(pkts);
        let dropped = pkts.len();
        free_bulk(pkts);
        (sent, dropped)
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_masked_by_the_device() {
        assert_eq!(rss_hash_types(0), 0);
        let all = rss_hash_types(u64::MAX);
        assert_ne!(all & dpdk_sys::RVS_ETH_RSS_TCP, 0);
        assert_eq!(
            rss_hash_types(dpdk_sys::RVS_ETH_RSS_UDP),
            dpdk_sys::RVS_ETH_RSS_UDP
        );
    }

    #[test]
    fn queue_counts_are_checked_not_clamped() {
        assert!(check_queues("rx", 1, 1, "p").is_ok());
        let e = check_queues("rx", 4, 2, "port 0 (net_ring0)").unwrap_err();
        assert_eq!(e.code(), -22);
        assert!(e.what().contains("4 rx queues requested"), "{e}");
        assert!(check_queues("tx", 0, 8, "p").is_err());
    }

    #[test]
    fn unsupported_is_recognised() {
        assert!(is_unsupported(-95));
        assert!(!is_unsupported(-22));
        assert!(!is_unsupported(0));
    }
}
