//! Build script: find the system DPDK with pkg-config, generate bindings with bindgen, and compile
//! bindgen's C wrappers for DPDK's `static inline` functions.
//!
//! DPDK's fast path (rx/tx burst, mbuf alloc/free, the TSC, the current lcore id) is `static
//! inline` in its headers, so there is no symbol to link against. bindgen's `wrap_static_fns`
//! (feature `experimental`) writes a C file with one exported `<name>__extern` wrapper for each
//! allowlisted inline function and points the Rust declaration at it; we compile that file with
//! the `cc` crate using DPDK's own cflags (`-include rte_config.h -march=...`). Nothing
//! generated is committed: everything lands in OUT_DIR.

use std::env;
use std::path::PathBuf;

/// Oldest DPDK whose API (ethdev names such as `RTE_ETH_MQ_RX_RSS`, `rte_mbuf` layout) we use.
const MIN_DPDK: &str = "22.11";

/// Functions rvs calls. Static inline ones among them get a C wrapper.
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, launch, errors, version.
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_eal_get_lcore_state",
    "rte_lcore_id",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_lcore_count",
    "rte_lcore_is_enabled",
    "rte_lcore_to_socket_id",
    "rte_socket_id",
    "rte_strerror",
    "rte_version",
    "rvs_rte_errno",
    // Time.
    "rte_get_tsc_cycles",
    "rte_rdtsc",
    "rte_get_tsc_hz",
    "rte_delay_us_block",
    // Mempool and mbufs.
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_lookup",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_alloc_bulk",
    "rte_pktmbuf_free",
    "rte_pktmbuf_free_bulk",
    "rte_pktmbuf_clone",
    "rte_pktmbuf_linearize",
    // Rings (for cross-core queues and net_ring ports).
    "rte_ring_create",
    "rte_ring_free",
    "rte_ring_count",
    "rte_ring_enqueue_burst",
    "rte_ring_dequeue_burst",
    "rte_ring_sp_enqueue_burst",
    "rte_ring_sc_dequeue_burst",
    "rte_eth_from_rings",
    "rte_eth_from_ring",
    // Ethdev.
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_set_mtu",
    "rte_eth_dev_get_mtu",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_get",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_xstats_get_names",
    "rte_eth_xstats_get",
    "rte_eth_dev_rss_reta_update",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    // Virtual devices created at run time.
    "rte_vdev_init",
    "rte_vdev_uninit",
];

/// Object-like macros bindgen can evaluate; `RVS_*` are the constants spelled out in wrapper.h.
const VARS: &[&str] = &[
    "RVS_.*",
    "RTE_VER_.*",
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETH_XSTATS_NAME_SIZE",
    "RTE_ETHER_ADDR_LEN",
    "RTE_MEMPOOL_NAMESIZE",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_ETH_LINK_.*",
    "RTE_ETH_RETA_GROUP_SIZE",
    "RTE_RING_F_.*",
    // rte_ring creation flags (single producer / single consumer), for bench rings.
    "RING_F_(SP_ENQ|SC_DEQ)",
    // errno values the safe layer reports or tolerates (DPDK returns them negated).
    "E(2BIG|INVAL|NOTSUP|OPNOTSUPP|ALREADY|NODEV|NOMEM|BUSY|NOSPC|EXIST|NOENT|NAMETOOLONG|RANGE|IO|AGAIN)",
];

/// Types referenced directly (their dependencies are pulled in automatically).
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_eth_xstat",
    "rte_eth_xstat_name",
    "rte_ether_addr",
    "rte_eth_rss_conf",
    "rte_eth_rss_reta_entry64",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_lcore_state_t",
    "rte_proc_type_t",
    "lcore_function_t",
];

fn main() {
    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .cargo_metadata(true)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            // A build script reports failure by exiting non-zero; print a message a person can act on.
            eprintln!(
                "\ndpdk-sys: could not find DPDK >= {MIN_DPDK} through pkg-config (libdpdk): {e}\n\
                 On Debian/Ubuntu install it with:\n\
                 \tapt-get install dpdk-dev libdpdk-dev pkg-config libclang-dev\n\
                 (libclang-dev is needed by bindgen). If DPDK lives elsewhere, point \
                 PKG_CONFIG_PATH at the directory holding libdpdk.pc.\n"
            );
            std::process::exit(1);
        }
    };
    // net_ring is a PMD plugin, not in `pkg-config --libs libdpdk`, but rvs calls
    // `rte_eth_from_rings` from it. (EAL also loads it as a plugin: the libdir entry is a symlink
    // to the file in the plugin directory, so the dynamic loader maps it once.)
    println!("cargo:rustc-link-lib=rte_net_ring");
    // Likewise the vdev bus driver, home of `rte_vdev_init` (creating vdevs at run time).
    println!("cargo:rustc-link-lib=rte_bus_vdev");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:version={}", dpdk.version);

    // DPDK's cflags as pkg-config gives them, including `-include rte_config.h` and `-march`.
    // (The pkg-config crate keeps only -I and -D; `-include` and `-march` matter here.)
    let cflags = cflags_of_libdpdk();

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let header = manifest.join("wrapper.h");
    let wrappers = out.join("static_fns");

    let mut builder = bindgen::Builder::default();
    // Generate code for the workspace's declared MSRV (e.g. no `unsafe extern` blocks before 1.82),
    // not for whatever newest Rust this bindgen knows about.
    if let Some(target) = msrv_target() {
        builder = builder.rust_target(target);
    }
    builder = builder
        .header(header.to_string_lossy())
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_recursively(true)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        // Fast-path descriptor structs with inline asm or vector types we never touch.
        .opaque_type("rte_eth_fp_ops")
        .opaque_type("rte_eth_dev")
        .opaque_type("rte_mempool_cache")
        .opaque_type("rte_mempool_ops_table")
        .opaque_type("rte_ring_headtail")
        .opaque_type("rte_ring_hts_headtail")
        .opaque_type("rte_ring_rts_headtail");
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "\ndpdk-sys: bindgen failed over wrapper.h: {e}\n\
                 bindgen needs libclang: apt-get install libclang-dev\n"
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = bindings.write_to_file(out.join("bindings.rs")) {
        eprintln!("dpdk-sys: cannot write bindings.rs: {e}");
        std::process::exit(1);
    }

    // The generated C wrappers `#include` wrapper.h by absolute path; compile them with the same
    // flags DPDK's own applications use.
    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c"))
        .include(&manifest)
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(2)
        .warnings(false);
    for flag in &cflags {
        cc.flag(flag);
    }
    cc.compile("rvs_dpdk_static_fns");
}

/// The package's `rust-version` (inherited from the workspace) as a bindgen target.
fn msrv_target() -> Option<bindgen::RustTarget> {
    let v = env::var("CARGO_PKG_RUST_VERSION").ok()?;
    let mut parts = v.split('.').skip(1).map(|p| p.parse::<u64>().ok());
    let minor = parts.next().flatten()?;
    let patch = parts.next().flatten().unwrap_or(0);
    bindgen::RustTarget::stable(minor, patch).ok()
}

/// `pkg-config --cflags libdpdk`, split into arguments (`-include rte_config.h` stays a pair).
fn cflags_of_libdpdk() -> Vec<String> {
    let output = std::process::Command::new(env::var("PKG_CONFIG").unwrap_or("pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => {
            eprintln!("dpdk-sys: `pkg-config --cflags libdpdk` failed");
            std::process::exit(1);
        }
    }
}
