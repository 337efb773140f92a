#!/usr/bin/env bash
# test.sh — run every rvs test tier, as CI does (.ci/run calls this). Needs root.
#
#   scripts/test.sh
#
# 1. installs the Debian packages it needs (scripts/deps.sh),
# 2. checks formatting and lints (cargo fmt --check, clippy -D warnings),
# 3. tier "core":  the crate without its default features (no DPDK, no libclang: pkg-config is
#                  pointed at nothing), its unit tests and the pure tiers, in a debug build
#                  (overflow checks on),
#    tier "pure":  unit tests, the pipeline tier and the wire fuzz tier (no DPDK at run time),
# 4. tier "dpdk":  the safe DPDK layer on net_ring and the real binary on net_pcap
#                  (--no-huge, --no-pci: no hugepages and no PCI device is ever touched),
# 5. tier "lab":   the real binary on af_packet in network namespaces with kernel peers
#                  and vsftpd servers driven by curl, lftp and ftplib (lab_ftp)
#                  (RFC 5737 addresses only; the lab is removed afterwards, even on failure).
# The tiers after "core" build with the same features, so the crate compiles once more.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
    echo "test.sh: run as root (DPDK vdevs and network namespaces need it)" >&2
    exit 1
fi

bash scripts/deps.sh

# shellcheck disable=SC2054 # the comma belongs to cargo's feature list
FEATURES=(--release --features dpdk-tests,lab-tests)
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets "${FEATURES[@]:1}" -- -D warnings
PKG_CONFIG_LIBDIR=/nonexistent cargo clippy --all-targets --no-default-features -- -D warnings

step "tier core: no DPDK (pkg-config finds no libdpdk), unit, pipeline, ftp pipeline, wire fuzz"
if cargo tree --no-default-features -e normal,build | grep -q dpdk-sys; then
    echo "test.sh: the core build depends on dpdk-sys" >&2
    exit 1
fi
PKG_CONFIG_LIBDIR=/nonexistent cargo test --no-default-features --lib \
    --test pipeline --test ftp_pipeline --test wire_fuzz

step "build"
cargo build "${FEATURES[@]}" --all-targets

step "tier pure: unit, pipeline, ftp pipeline, wire fuzz, cli"
cargo test "${FEATURES[@]}" --workspace --lib --bins --test pipeline --test ftp_pipeline --test wire_fuzz --test cli

step "tier dpdk: net_ring and net_pcap vdevs"
cargo test "${FEATURES[@]}" --test dpdk_vdev --test pcap_nat --test pcap_workers --test pcap_dr_tun --test pcap_ftp --test runtime_vdev --test bench_smoke -- --test-threads=1

step "tier lab: network namespaces with kernel peers"
cargo test "${FEATURES[@]}" --test lab_tier --test lab_dr --test lab_ftp --test lab_kernel_compare -- --test-threads=1

step "all tiers passed"
