#!/usr/bin/env bash
# hugepages.sh — reserve, show and release 2 MB hugepages for DPDK (run as root).
#
#   scripts/hugepages.sh reserve [N]   make sure at least N 2 MB pages (default 512 = 1 GiB)
#                                      are reserved, and hugetlbfs is mounted at /dev/hugepages
#   scripts/hugepages.sh status        pages reserved/free, hugetlbfs mounts, stale DPDK files
#   scripts/hugepages.sh release       give all 2 MB pages back (pages still in use stay
#                                      until their owner exits) and unmount /dev/hugepages
#
# Idempotent. `reserve` never lowers a larger reservation (other DPDK processes may use it).
# The kernel may give fewer pages than asked (fragmented memory): the script compacts memory,
# retries once, and reports what it got (exit 0 if it got at least one page, else 1).
# Tests that do not need hugepages should use EAL `--no-huge -m N` instead.
set -euo pipefail

SYS=/sys/kernel/mm/hugepages/hugepages-2048kB
NR=$SYS/nr_hugepages
MNT=${HUGE_MNT:-/dev/hugepages}

log() { echo "hugepages.sh: $*"; }
die() {
    echo "hugepages.sh: error: $*" >&2
    exit 1
}

[[ -d $SYS ]] || die "this kernel has no 2 MB hugepages ($SYS missing)"

readv() { cat "$SYS/$1"; }
is_mounted() { awk -v m="$MNT" '$2 == m && $3 == "hugetlbfs" { f = 1 } END { exit !f }' /proc/mounts; }

cmd_status() {
    echo "2 MB pages: total $(readv nr_hugepages), free $(readv free_hugepages)," \
        "reserved-by-mappings $(readv resv_hugepages), surplus $(readv surplus_hugepages)"
    local g=/sys/kernel/mm/hugepages/hugepages-1048576kB
    [[ -d $g ]] && echo "1 GB pages: total $(cat "$g/nr_hugepages"), free $(cat "$g/free_hugepages")"
    local mounts
    mounts=$(awk '$3 == "hugetlbfs" { print "  " $2 " (" $4 ")" }' /proc/mounts)
    if [[ -n $mounts ]]; then
        echo "hugetlbfs mounts:"
        echo "$mounts"
    else
        echo "hugetlbfs mounts: none"
    fi
    if is_mounted; then
        local n
        n=$(find "$MNT" -maxdepth 1 -type f 2>/dev/null | wc -l)
        echo "files in $MNT: $n (rtemap_* files left by a dead DPDK process can be removed)"
    fi
}

cmd_reserve() {
    local want=${1:-512}
    if [[ ! $want =~ ^[0-9]+$ ]] || ((want == 0)); then
        die "page count must be a positive integer, not '$want'"
    fi
    ((EUID == 0)) || die "must run as root"
    local have
    have=$(readv nr_hugepages)
    if ((have >= want)); then
        log "already $have pages reserved (asked for $want)"
    else
        echo "$want" >"$NR" 2>/dev/null || true
        have=$(readv nr_hugepages)
        if ((have < want)); then
            # Fragmented memory: compact and try once more.
            sync
            echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
            echo "$want" >"$NR" 2>/dev/null || true
            have=$(readv nr_hugepages)
        fi
        if ((have < want)); then
            log "warning: asked for $want pages, the kernel gave $have ($((have * 2)) MB)"
        else
            log "reserved $have pages ($((have * 2)) MB)"
        fi
    fi
    if ! is_mounted; then
        mkdir -p "$MNT"
        mount -t hugetlbfs -o pagesize=2M nodev "$MNT"
        log "mounted hugetlbfs at $MNT"
    fi
    log "free $(readv free_hugepages) of $(readv nr_hugepages) pages"
    (($(readv nr_hugepages) > 0)) || die "no hugepages could be reserved"
}

cmd_release() {
    ((EUID == 0)) || die "must run as root"
    echo 0 >"$NR"
    if is_mounted; then
        if umount "$MNT" 2>/dev/null; then
            log "unmounted $MNT"
        else
            log "warning: $MNT is busy (a DPDK process still maps it): left mounted"
        fi
    fi
    local left
    left=$(readv nr_hugepages)
    if ((left > 0)); then
        log "released; $left pages are still in use and return when their owner exits"
    else
        log "released all 2 MB pages"
    fi
}

case ${1:-} in
reserve) cmd_reserve "${2:-512}" ;;
status) cmd_status ;;
release) cmd_release ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
