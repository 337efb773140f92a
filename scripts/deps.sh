#!/usr/bin/env bash
# deps.sh — install every Debian package the rvs project needs (idempotent).
#
#   scripts/deps.sh            install what is missing, then check for cargo
#
# Build: pkg-config, DPDK 22.11 (dpdk, dpdk-dev, libdpdk-dev), libclang-dev + clang
#        (bindgen), gcc, libpcap-dev (net_pcap).
# Lab/tests: iproute2, ethtool, ping, python3, tcpdump, tshark, socat, curl, lftp,
#        vsftpd, procps, kmod, nftables (the kernel comparison's DUT).
#
# Only missing packages are installed; `apt-get update` runs only when something is
# missing. Rust is not installed from Debian (its rustc is too old): use rustup.
# Must run as root when something needs installing.
set -euo pipefail

BUILD_PKGS=(pkg-config libdpdk-dev dpdk-dev dpdk libclang-dev clang gcc libpcap-dev)
LAB_PKGS=(iproute2 ethtool iputils-ping python3 tcpdump tshark socat curl lftp vsftpd procps kmod nftables)

is_installed() {
    local st
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ $st == "install ok installed" ]]
}

missing=()
for p in "${BUILD_PKGS[@]}" "${LAB_PKGS[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "deps.sh: missing packages: ${missing[*]} — run as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    for p in "${missing[@]}"; do
        if [[ $p == tshark ]]; then
            # tshark's postinst asks whether non-root users may capture: answer no.
            echo "wireshark-common wireshark-common/install-setuid boolean false" |
                debconf-set-selections
        fi
    done
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do
        if [[ $p == vsftpd ]]; then
            # The package starts a system-wide FTP server; the lab runs its own, in namespaces.
            if [[ -d /run/systemd/system ]]; then
                systemctl disable --now vsftpd 2>/dev/null || true
            else
                if [[ -x /etc/init.d/vsftpd ]]; then
                    /etc/init.d/vsftpd stop >/dev/null 2>&1 || true
                fi
                update-rc.d vsftpd disable >/dev/null 2>&1 || true
            fi
        fi
    done
    echo "deps.sh: installed ${missing[*]}"
else
    echo "deps.sh: all ${#BUILD_PKGS[@]} build and ${#LAB_PKGS[@]} lab packages already installed"
fi

# Rust toolchain: from rustup, not Debian (bookworm's rustc is too old for this project).
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        echo "deps.sh: cargo is at ${CARGO_HOME:-$HOME/.cargo}/bin/cargo but not on PATH;" \
            "run: . \"${CARGO_HOME:-$HOME/.cargo}/env\"" >&2
    else
        cat >&2 <<'MSG'
deps.sh: cargo not found. Install Rust with rustup (Debian's rustc is too old):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"
MSG
    fi
    exit 1
fi
echo "deps.sh: $(cargo --version)"
