#!/usr/bin/env bash
# bind-nic.sh — hand a real NIC to DPDK and back, around Debian's dpdk-devbind.py (root).
#
#   scripts/bind-nic.sh status                         NICs and the drivers they use
#   scripts/bind-nic.sh bind PCI_ADDR [DRIVER] [--force]
#        bind the device to DRIVER (default vfio-pci; or uio_pci_generic), loading its module.
#        Refuses, unless --force, when one of the device's interfaces carries a default route
#        or is up with addresses: that would cut the machine off its network.
#   scripts/bind-nic.sh unbind PCI_ADDR KERNEL_DRIVER  give the device back to its kernel driver
#        (e.g. ixgbe, i40e, ice, mlx5_core, virtio-pci), then bring its interfaces back with ip.
#
# PCI_ADDR is like 0000:03:00.0 (the 0000: domain may be left out). Find it with `status`.
# vfio-pci needs an IOMMU (intel_iommu=on / amd_iommu=on); without one this script says how to
# enable vfio's no-IOMMU mode (unsafe: no DMA isolation) or to use uio_pci_generic.
# Mellanox (mlx5) NICs stay on their kernel driver: DPDK uses them through it, no binding.
# Never bind the NIC you are logged in through. Tests never need this: they use virtual devices
# (net_af_packet on the namespace lab, net_ring, net_pcap, net_null) with --no-pci.
set -euo pipefail

log() { echo "bind-nic.sh: $*"; }
die() {
    echo "bind-nic.sh: error: $*" >&2
    exit 1
}
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

DEVBIND=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
[[ -n $DEVBIND ]] || die "dpdk-devbind.py not found: install Debian's dpdk package (scripts/deps.sh)"

norm_pci() { # 03:00.0 -> 0000:03:00.0; validates
    local a=$1
    [[ $a =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] && a=0000:$a
    [[ $a =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] || die "bad PCI address '$1'"
    a=${a,,}
    [[ -e /sys/bus/pci/devices/$a ]] || die "no PCI device $a (see: bind-nic.sh status)"
    echo "$a"
}

ifaces_of() { # kernel interfaces of a PCI device (directly, or below a virtio device)
    local d=/sys/bus/pci/devices/$1 n
    for n in "$d"/net/* "$d"/virtio*/net/*; do
        [[ -e $n ]] && basename "$n"
    done
    return 0
}

current_driver() {
    local l=/sys/bus/pci/devices/$1/driver
    if [[ -L $l ]]; then basename "$(readlink -f "$l")"; else echo none; fi
}

check_safe() { # pci: refuse when an interface of it is in use
    local pci=$1 ifn bad=0
    local route_devs
    route_devs=$({
        ip -4 route show default
        ip -6 route show default 2>/dev/null
    } | sed -n 's/.* dev \([^ ]*\).*/\1/p' | sort -u)
    for ifn in $(ifaces_of "$pci"); do
        if grep -qx -- "$ifn" <<<"$route_devs"; then
            echo "bind-nic.sh: $pci is $ifn, which carries a default route" >&2
            bad=1
        fi
        local up addrs
        up=$(cat "/sys/class/net/$ifn/operstate" 2>/dev/null || echo unknown)
        addrs=$(ip -o addr show dev "$ifn" scope global 2>/dev/null | awk '{ print $4 }' | tr '\n' ' ')
        if [[ -n $addrs ]] && ip link show dev "$ifn" 2>/dev/null | grep -q '[<,]UP[,>]'; then
            echo "bind-nic.sh: $pci is $ifn, up ($up) with addresses $addrs" >&2
            bad=1
        fi
    done
    return $bad
}

load_module() { # driver
    local drv=$1 mod=${1//-/_}
    if [[ -d /sys/bus/pci/drivers/$drv ]]; then
        return 0
    fi
    command -v modprobe >/dev/null || die "modprobe not found (kmod; scripts/deps.sh)"
    modprobe "$mod" || die "could not load module $mod"
    [[ -d /sys/bus/pci/drivers/$drv ]] || die "module $mod loaded but driver $drv did not register"
    log "loaded module $mod"
}

cmd_status() {
    "$DEVBIND" --status-dev net 2>&1 | grep -v 'Unable to load libkmod' || true
    local groups
    groups=$(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo
    echo "IOMMU groups: $groups$( ((groups == 0)) && echo ' (no IOMMU: vfio-pci needs no-IOMMU mode, or use uio_pci_generic)')"
}

cmd_bind() {
    local force=0 args=() a
    for a in "$@"; do
        if [[ $a == --force ]]; then force=1; else args+=("$a"); fi
    done
    ((${#args[@]} >= 1 && ${#args[@]} <= 2)) || usage
    ((EUID == 0)) || die "must run as root"
    local pci drv
    pci=$(norm_pci "${args[0]}")
    drv=${args[1]:-vfio-pci}
    local cur
    cur=$(current_driver "$pci")
    if [[ $cur == "$drv" || $cur == "${drv//_/-}" || $cur == "${drv//-/_}" ]]; then
        log "$pci is already bound to $cur"
        return 0
    fi
    if ! check_safe "$pci"; then
        if ((force)); then
            log "warning: --force given: binding an interface that is in use"
        else
            die "refusing to bind $pci (bound to $cur): it is in use; --force overrides"
        fi
    fi
    if [[ $drv == vfio-pci ]]; then
        load_module vfio-pci
        if [[ -z $(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 2>/dev/null) ]]; then
            local nio=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
            if [[ $(cat "$nio" 2>/dev/null) != Y ]]; then
                die "no IOMMU: boot with intel_iommu=on (or amd_iommu=on), or allow vfio's unsafe" \
                    "no-IOMMU mode: echo 1 > $nio, or use: bind-nic.sh bind $pci uio_pci_generic"
            fi
            log "warning: vfio no-IOMMU mode: no DMA isolation for this device"
        fi
    else
        load_module "$drv"
    fi
    local ifn
    for ifn in $(ifaces_of "$pci"); do
        ip link set dev "$ifn" down 2>/dev/null || true
    done
    local fl=()
    ((force)) && fl=(--force)
    "$DEVBIND" "${fl[@]}" -b "$drv" "$pci"
    log "$pci: $cur -> $(current_driver "$pci")"
}

cmd_unbind() {
    (($# == 2)) || usage
    ((EUID == 0)) || die "must run as root"
    local pci drv
    pci=$(norm_pci "$1")
    drv=$2
    local cur
    cur=$(current_driver "$pci")
    if [[ $cur == "$drv" ]]; then
        log "$pci is already bound to $drv"
        return 0
    fi
    load_module "$drv"
    "$DEVBIND" -b "$drv" "$pci"
    log "$pci: $cur -> $(current_driver "$pci"); interfaces: $(ifaces_of "$pci" | tr '\n' ' ')"
    log "bring them up with: ip link set dev IF up"
}

case ${1:-} in
status) cmd_status ;;
bind)
    shift
    cmd_bind "$@"
    ;;
unbind)
    shift
    cmd_unbind "$@"
    ;;
*) usage ;;
esac
