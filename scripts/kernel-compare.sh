#!/usr/bin/env bash
# kernel-compare.sh — rvs against the Linux kernel's conntrack NAT, packets per second per core
# (issue #5 part 5; docs/PERFORMANCE.md, "Kernel comparison"). As root:
#
#   scripts/kernel-compare.sh              # every row: kernel and rvs-veth at 1K and 100K flows,
#                                          # then rvs on its ring ports at 100K; table + JSON lines
#   KC_ROWS="kernel" KC_FLOWS=1000 scripts/kernel-compare.sh      # a subset
#   scripts/kernel-compare.sh --down       # remove what an interrupted run left behind
#
# Topology (two namespaces of its own, nothing in the root namespace; RFC 5737 addresses):
#
#   ns $P-gen (CPU KC_GEN_CPU)                     ns $P-dut (CPU KC_DUT_CPU)
#   rvs bench --dut external                       kernel: dut-c 203.0.113.1/24, dut-s 198.51.100.1/24,
#     net_af_packet0 on gen-c  <--veth-->  dut-c   ip_forward=1, nft DNAT 203.0.113.100:80 ->
#     net_af_packet1 on gen-s  <--veth-->  dut-s   198.51.100.11:8080 (conntrack), static neighbours
#                                                  rvs: rvs run, net_af_packet on dut-c / dut-s,
#                                                  worker on KC_DUT_CPU, the same NAT service
#
#   Clients are 192.0.2.1-254 (bench::keys) behind the gateway 203.0.113.254: that network exists
#   only as a route inside $P-dut, never in the root namespace (whose eth0 may use 192.0.2.0/24).
#
# Per-core accounting: the generator and sink run on KC_GEN_CPU (EAL -l), the DUT's work on
# KC_DUT_CPU: RPS (rps_cpus) steers the receive processing of dut-c and dut-s to it, and that of
# gen-c and gen-s to KC_GEN_CPU; rvs's EAL has the DUT CPU as its only lcore (`-l KC_DUT_CPU`),
# so its worker 0 runs there on the main lcore (its control thread, which writes stats once a
# second, goes to another CPU). The generator reports the DUT CPU's busy share from /proc/stat
# over the measured interval and pps_per_core = out_pps / busy.
#
# Rows (KC_ROWS, default "kernel rvs-veth ring"), each for every flow count in KC_FLOWS (default
# "1000 100000"; the ring row runs the largest only), KC_REPEAT times (default 1):
#   kernel    the kernel DUT at KC_RATE
#   rvs-veth  rvs run as the DUT on the same veths, at KC_RATE
# KC_RATE is "search" by default: the highest offered rate with at most KC_LOSS (default 0.001)
# of the packets lost, first at --rate max, then by KC_SEARCH_STEPS (default 5) bisections
# (RFC 2544 throughput; every trial goes to kernel-compare-trials.jsonl). A rate ("max",
# "300k", a number) measures that rate once.
#   ring      rvs bench --scenario nat (in-process ring ports, worker on lcore 1): rvs's best path
# KC_DURATION (default 5) seconds measured after KC_WARMUP (default 1). Before each run the
# script waits until the machine is quiet (as scripts/bench.sh does; KC_NO_QUIET=1 skips that,
# KC_QUIET_WAIT caps it, default 900 s). RVS names the binary (default target/release/rvs, or
# $CARGO_TARGET_DIR/release/rvs).
#
# Output: a markdown table on stdout and one JSON object per run appended to
# target/bench/kernel-compare.jsonl (KC_OUT overrides the directory).
set -euo pipefail
cd "$(dirname "$0")/.."

P=${KC_NS:-rvskc}
if [[ ! $P =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$ ]]; then
    echo "kernel-compare.sh: bad KC_NS prefix '$P' (letters, digits, _ . -; at most 21 chars)" >&2
    exit 2
fi
NS_GEN=$P-gen
NS_DUT=$P-dut
RVS=${RVS:-${CARGO_TARGET_DIR:-target}/release/rvs}
ROWS=${KC_ROWS:-kernel rvs-veth ring}
FLOWS=${KC_FLOWS:-1000 100000}
RATE=${KC_RATE:-search}
MAX_LOSS=${KC_LOSS:-0.001}
SEARCH_STEPS=${KC_SEARCH_STEPS:-5}
DUR=${KC_DURATION:-5}
WARMUP=${KC_WARMUP:-1}
REPEAT=${KC_REPEAT:-1}
GEN_CPU=${KC_GEN_CPU:-0}
DUT_CPU=${KC_DUT_CPU:-1}
OUT=${KC_OUT:-target/bench}
RESULTS=$OUT/kernel-compare.jsonl
TRIALS=$OUT/kernel-compare-trials.jsonl
# The same af_packet ring settings for the generator and for rvs as the DUT.
AFP=${KC_AFP_ARGS:-blocksz=4096,framesz=2048,framecnt=2048,qdisc_bypass=1}
RVS_IDLE_SLEEP_US=${KC_RVS_IDLE_SLEEP_US:-20}
VIP=203.0.113.100
SERVER=198.51.100.11
GW=203.0.113.254
RUN_DIR=""
RVS_PID=""

log() { echo "kernel-compare.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

ns_down() { # stop rvs, kill what runs in our namespaces, delete them
    set +e
    if [[ -n $RVS_PID ]] && kill -0 "$RVS_PID" 2>/dev/null; then
        kill -TERM "$RVS_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$RVS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RVS_PID" 2>/dev/null
    fi
    RVS_PID=""
    local ns pid
    for ns in "$NS_GEN" "$NS_DUT"; do
        if ns_exists "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null || log "warning: could not delete namespace $ns"
        fi
    done
    set -e
}

down() {
    ns_down
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then rm -rf -- "$RUN_DIR"; fi
    return 0
}

if [[ ${1:-} == --down ]]; then
    down
    exit 0
fi
((EUID == 0)) || die "run as root (namespaces, DPDK af_packet vdevs)"
[[ -x $RVS ]] || die "$RVS not found: cargo build --release first (or set RVS=path/to/rvs)"
command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
for ns in "$NS_GEN" "$NS_DUT"; do
    ! ns_exists "$ns" || die "namespace $ns exists: another run? remove it with $0 --down"
done
trap down EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"
RUN_DIR=$(mktemp -d /tmp/rvs-kc.XXXXXX)

cpu_mask() { printf '%x' $((1 << $1)); }

if_prepare() { # ns if rps_cpu
    local ns=$1 ifn=$2 cpu=$3
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifn.disable_ipv6=1" 2>/dev/null || true
    ip netns exec "$ns" ethtool -K "$ifn" rx off tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "$ns" link set "$ifn" up
    # ip netns exec mounts the namespace's own /sys: these are the namespace's devices.
    ip netns exec "$ns" sh -c "echo $(cpu_mask "$cpu") > /sys/class/net/$ifn/queues/rx-0/rps_cpus" ||
        die "cannot set rps_cpus on $ns/$ifn"
}

mac_of() { ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

topology_up() {
    local ns
    for ns in "$NS_GEN" "$NS_DUT"; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_GEN" link add gen-c type veth peer name dut-c netns "$NS_DUT"
    ip -n "$NS_GEN" link add gen-s type veth peer name dut-s netns "$NS_DUT"
    if_prepare "$NS_GEN" gen-c "$GEN_CPU"
    if_prepare "$NS_GEN" gen-s "$GEN_CPU"
    if_prepare "$NS_DUT" dut-c "$DUT_CPU"
    if_prepare "$NS_DUT" dut-s "$DUT_CPU"
    GEN_C_MAC=$(mac_of "$NS_GEN" gen-c)
    GEN_S_MAC=$(mac_of "$NS_GEN" gen-s)
    DUT_C_MAC=$(mac_of "$NS_DUT" dut-c)
    DUT_S_MAC=$(mac_of "$NS_DUT" dut-s)
}

kernel_dut() {
    local d=$NS_DUT
    ip -n "$d" addr add 203.0.113.1/24 dev dut-c
    ip -n "$d" addr add 198.51.100.1/24 dev dut-s
    ip netns exec "$d" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.dut-c.rp_filter=0 net.ipv4.conf.dut-s.rp_filter=0
    ip -n "$d" route add 192.0.2.0/24 via "$GW" dev dut-c
    # Frames conntrack refuses (invalid) are not DNATed: drop them here instead of ARPing for the VIP.
    ip -n "$d" route add blackhole "$VIP/32"
    ip -n "$d" neigh replace "$GW" lladdr "$GEN_C_MAC" dev dut-c nud permanent
    ip -n "$d" neigh replace "$SERVER" lladdr "$GEN_S_MAC" dev dut-s nud permanent
    ip netns exec "$d" nft -f - <<NFT
table ip rvs_kc {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP tcp dport 80 counter dnat to $SERVER:8080
    }
}
NFT
}

rvs_dut() {
    local cfg=$RUN_DIR/rvs-dut.toml
    cat >"$cfg" <<EOF
[eal]
args = ["-l", "$DUT_CPU", "--no-huge", "-m", "512", "--file-prefix", "$P-dut", "--log-level", "*:warning", "--no-telemetry"]

[workers]
count = 1
idle_sleep_us = $RVS_IDLE_SLEEP_US

[flows]
capacity = 1048576

[stats]
interval_secs = 1

[[port]]
name = "client"
vdev = "net_af_packet0,iface=dut-c,$AFP"
address = "203.0.113.1/24"
gateway = "$GW"

[[port]]
name = "server"
vdev = "net_af_packet1,iface=dut-s,$AFP"
address = "198.51.100.1/24"

[[neighbor]]
port = "client"
ip = "$GW"
mac = "$GEN_C_MAC"

[[neighbor]]
port = "server"
ip = "$SERVER"
mac = "$GEN_S_MAC"

[[service]]
name = "web"
protocol = "tcp"
vip = "$VIP"
port = 80
scheduler = "rr"
forward = "nat"

[[service.server]]
address = "$SERVER"
port = 8080
EOF
    rm -f "$RUN_DIR/rvs-stats.json"
    ip netns exec "$NS_DUT" "$RVS" run --config "$cfg" --stats-file "$RUN_DIR/rvs-stats.json" \
        >"$RUN_DIR/rvs.log" 2>&1 &
    RVS_PID=$!
    for _ in $(seq 1 150); do
        [[ -s $RUN_DIR/rvs-stats.json ]] && return 0
        kill -0 "$RVS_PID" 2>/dev/null || { cat "$RUN_DIR/rvs.log" >&2; die "rvs exited early"; }
        sleep 0.2
    done
    cat "$RUN_DIR/rvs.log" >&2
    die "rvs did not start in 30 s"
}

rvs_dut_stop() {
    [[ -n $RVS_PID ]] || return 0
    kill -TERM "$RVS_PID" 2>/dev/null || true
    wait "$RVS_PID" 2>/dev/null || true
    RVS_PID=""
}

# shellcheck source=scripts/quiet.sh
. scripts/quiet.sh
wait_quiet() {
    [[ -z ${KC_NO_QUIET:-} ]] || return 0
    wait_quiet_for kernel-compare.sh "${KC_QUIET_WAIT:-900}" "${KC_QUIET_BELOW:-0.15}"
}

# external LABEL FLOWS RATE: the generator against the DUT that is up; prints its JSON.
external() {
    local label=$1 flows=$2 rate=$3
    ip netns exec "$NS_GEN" "$RVS" bench --dut external --dut-label "$label" \
        --gen-vdev "net_af_packet0,iface=gen-c,$AFP" --sink-vdev "net_af_packet1,iface=gen-s,$AFP" \
        --dut-client-mac "$DUT_C_MAC" --dut-server-mac "$DUT_S_MAC" \
        --vip "$VIP:80" --server "$SERVER:8080" --gen-cpu "$GEN_CPU" --dut-cpu "$DUT_CPU" \
        --flows "$flows" --rate "$rate" --duration "$DUR" --warmup "$WARMUP" \
        --file-prefix "$P-gen" --json
}

JSONS=()

# measure ROW FLOWS RATE: one run of the generator against a freshly built DUT; sets $json.
measure() {
    local row=$1 flows=$2 rate=$3
    wait_quiet
    log "$row, $flows flows, rate $rate"
    topology_up
    if [[ $row == kernel ]]; then kernel_dut; else rvs_dut; fi
    if ! json=$(external "$row" "$flows" "$rate"); then
        [[ $row == rvs-veth ]] && cat "$RUN_DIR/rvs.log" >&2
        die "$row with $flows flows failed"
    fi
    if [[ $row == kernel ]]; then
        log "kernel nft counter: $(ip netns exec "$NS_DUT" nft list chain ip rvs_kc pre | grep -o 'packets [0-9]*' | head -1 || true) (one per connection)"
    else
        rvs_dut_stop
        # Where rvs's own losses are, if any: its drops by reason and the ports' misses
        # (imissed: frames af_packet could not hand over, rx ring full).
        log "rvs counters: $(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = d["counters"]
drops = {k: v for k, v in d["drops"].items() if v}
ports = ", ".join("%s rx %d tx %d imissed %d oerrors %d" % (p["name"], p["ipackets"], p["opackets"], p["imissed"], p["oerrors"]) for p in d["ports"])
print("rx %d, forwarded in %d, drops %s; ports: %s" % (c["rx_packets"], c["nat_in_packets"], drops or "none", ports))
' "$RUN_DIR/rvs-stats.json" 2>&1 || true)"
    fi
    ns_down
    log "$row, $flows flows, rate $rate: $(summary "$json")"
}

# summary JSON: "out N pps, loss X%, offered M pps" of a run.
summary() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("out %.0f pps, loss %.3f%%, offered %.0f pps" % (d["out_pps"], 100 * d["loss_share"], d["offered_pps"]))' "$1"
}

# field JSON NAME: one number of a run's JSON.
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# lossless JSON: true when the run lost at most KC_LOSS (a share; default 0.001, i.e. 0.1 %).
lossless() { awk -v l="$(field "$1" loss_share)" -v m="$MAX_LOSS" 'BEGIN{exit !(l != "" && l + 0 <= m + 0)}'; }

# search ROW FLOWS: the highest offered rate the DUT forwards with at most KC_LOSS lost
# (RFC 2544's throughput, by bisection). A DUT pushed past its capacity can forward far less
# than its capacity (receive livelock: rvs on af_packet veths forwarded 18k pps at --rate max
# and 200k pps with no loss at 200k), so the figure at --rate max alone can mislead. First
# --rate max; if that loses more than KC_LOSS, KC_SEARCH_STEPS (default 5) bisections between
# 0 and the rate max offered. Sets $json to the best lossless run (or the last run if none
# was), with the trials in a "search" field; every trial goes to kernel-compare-trials.jsonl.
search() {
    local row=$1 flows=$2 lo=0 hi r best="" trials=() i
    # trial RATE: one run at RATE, kept in the trials; succeeds (and becomes the best) when
    # it was lossless.
    trial() {
        measure "$row" "$flows" "$1"
        echo "$json" >>"$TRIALS"
        trials+=("$1 $(field "$json" offered_pps) $(field "$json" loss_share)")
        lossless "$json" && best=$json
    }
    if ! trial max; then
        hi=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["offered_pps"]))' "$json")
        for ((i = 0; i < SEARCH_STEPS; i++)); do
            r=$(((lo + hi) / 2))
            ((r >= 1000)) || break
            if trial "$r"; then lo=$r; else hi=$r; fi
        done
    fi
    [[ -n $best ]] || log "$row, $flows flows: no run lost at most $MAX_LOSS of its packets"
    json=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
d["search"] = [{"rate": t[0], "offered_pps": float(t[1]), "loss_share": float(t[2])} for t in (l.split() for l in sys.argv[2:])]
print(json.dumps(d))' "${best:-$json}" "${trials[@]}")
}

run_row() { # row flows
    local row=$1 flows=$2 json
    case $row in
    kernel | rvs-veth)
        if [[ $RATE == search ]]; then
            search "$row" "$flows"
        else
            measure "$row" "$flows" "$RATE"
        fi
        ;;
    ring)
        wait_quiet
        log "$row, $flows flows"
        json=$("$RVS" bench --scenario nat --flows "$flows" --duration "$DUR" --warmup "$WARMUP" \
            --file-prefix "$P-ring" --json) || die "ring row failed"
        ;;
    *) die "unknown row '$row' in KC_ROWS (kernel, rvs-veth, ring)" ;;
    esac
    echo "$json" >>"$RESULTS"
    JSONS+=("$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["row"]=sys.argv[2]; print(json.dumps(d))' "$json" "$row")")
}

max_flows=0
for f in $FLOWS; do ((f > max_flows)) && max_flows=$f; done
for row in $ROWS; do
    if [[ $row == ring ]]; then
        for ((n = 0; n < REPEAT; n++)); do run_row ring "$max_flows"; done
        continue
    fi
    for f in $FLOWS; do
        for ((n = 0; n < REPEAT; n++)); do run_row "$row" "$f"; done
    done
done

# The table: pps, the DUT CPU's busy share, pps per core; the ring row's per-core figure is the
# worker's packets per busy second (its loop's own busy share, as for the other rows the CPU's).
printf '%s\n' "${JSONS[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("| DUT | flows | rate | out pps | loss | DUT CPU busy | pps per core | p50 latency |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
best = {}
for d in rows:
    if d["row"] == "ring":
        w = d["per_worker"][0]
        pps, busy = d["mpps"] * 1e6, w["busy"]
        per_core = pps / busy if busy > 0 else pps
        loss, lat = "-", d["latency"]["p50_ns"]
    else:
        pps, busy, per_core = d["out_pps"], d["dut_busy"], d["pps_per_core"]
        loss, lat = "%.3f%%" % (100 * d["loss_share"]), d["latency"]["p50_ns"]
    best[d["row"]] = max(best.get(d["row"], 0), per_core)
    print("| %s | %d | %s | %.0f | %s | %.0f%% | %.0f | %.1f us |" % (
        d["row"], d["flows"], d["rate"], pps, loss, 100 * busy, per_core, lat / 1e3))
k = best.get("kernel")
if k:
    for r in ("rvs-veth", "ring"):
        if r in best:
            print("\n%s per core / kernel per core: %.1fx" % (r, best[r] / k))
'
log "JSON lines appended to $RESULTS"
