#!/usr/bin/env bash
# run.sh — print (or run) the Pktgen-DPDK 23.x command line for an rvs benchmark.
#
#   scripts/pktgen/run.sh --pci PORT0 --pci PORT1 --dut-mac MAC [options]
#
#   --pci ADDR        generator port, twice: port 0 faces rvs's client port, port 1 its server
#                     port. Required: DPDK gets exactly these two as its allow-list (-a), so it
#                     never probes the other NICs (including the one you are logged in by).
#   --dut-mac MAC     rvs's client-side port MAC (rvs prints it at start: "port client = ... mac")
#   --scenario S      nat | udp | storm | imix (default nat); see scripts/pktgen/rvs.lua
#   --flows N         flows (default 100000); --size B frame size with FCS (default 64)
#   --rate PCT        percent of line rate (default 100)
#   --vip ADDR        198.18.0.100 nat/dr (default), .101 tun, .102 fnat (config/bench-pci*.toml)
#   --pcap FILE       imix only: the pcap made by mkimix.py, replayed on port 0
#   --main N          Pktgen's main lcore: display and CLI (default 1)
#   --port0 RX:TX     lcores polling port 0 (default 2:3); --port1 RX:TX (default 4:5)
#   --socket-mem M    EAL --socket-mem, e.g. 1024,0 (default: not given)
#   --file-prefix P   EAL --file-prefix (default pktgen-rvs)
#   --pktgen PATH     the pktgen binary (default: pktgen from PATH)
#   --exec            run it instead of printing it (as root)
#
# Put the lcores on the generator NICs' NUMA node (cat /sys/bus/pci/devices/ADDR/numa_node).
# The guide: docs/BENCHMARKING-HARDWARE.md.
set -euo pipefail

die() {
    echo "run.sh: error: $*" >&2
    exit 2
}
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

pcis=()
mac=""
scenario=nat
flows=100000
size=64
rate=100
vip=""
pcap=""
main=1
port0=2:3
port1=4:5
socket_mem=""
prefix="pktgen-rvs"
pktgen=pktgen
run=0

while (($#)); do
    case $1 in
    -h | --help) usage 0 ;;
    --exec) run=1 ;;
    --pci | --dut-mac | --scenario | --flows | --size | --rate | --vip | --pcap | --main | --port0 | --port1 | --socket-mem | --file-prefix | --pktgen)
        (($# >= 2)) || die "$1 needs a value"
        case $1 in
        --pci) pcis+=("$2") ;;
        --dut-mac) mac=$2 ;;
        --scenario) scenario=$2 ;;
        --flows) flows=$2 ;;
        --size) size=$2 ;;
        --rate) rate=$2 ;;
        --vip) vip=$2 ;;
        --pcap) pcap=$2 ;;
        --main) main=$2 ;;
        --port0) port0=$2 ;;
        --port1) port1=$2 ;;
        --socket-mem) socket_mem=$2 ;;
        --file-prefix) prefix=$2 ;;
        --pktgen) pktgen=$2 ;;
        esac
        shift
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

((${#pcis[@]} == 2)) || die "give exactly two --pci addresses (port 0, then port 1): without an allow-list DPDK would probe every NIC"
for i in 0 1; do
    a=${pcis[$i]}
    [[ $a =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] && a=0000:$a
    [[ $a =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] || die "bad PCI address '${pcis[$i]}'"
    pcis[i]=${a,,}
done
[[ ${pcis[0]} != "${pcis[1]}" ]] || die "the two --pci addresses are the same"
[[ $mac =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "--dut-mac MAC is required (like 3c:fd:fe:00:00:01)"
case $scenario in
nat | udp | storm) script=rvs.lua ;;
imix)
    [[ -n $pcap ]] || die "--scenario imix needs --pcap FILE (scripts/pktgen/mkimix.py)"
    script=rvs.lua
    ;;
*) die "--scenario must be nat, udp, storm or imix" ;;
esac
[[ -z $pcap || $scenario == imix ]] || die "--pcap is for --scenario imix only"
for n in "$flows" "$size" "$rate" "$main"; do
    [[ $n =~ ^[0-9]+$ ]] || die "'$n' is not a number"
done
((size >= 64 && size <= 1518)) || die "--size must be 64 to 1518"
((rate >= 1 && rate <= 100)) || die "--rate must be 1 to 100 (percent of line rate)"
for p in "$port0" "$port1"; do
    [[ $p =~ ^[0-9]+:[0-9]+$ ]] || die "'$p' is not RX:TX lcores, like 2:3"
done

here=$(cd "$(dirname "$0")" && pwd)
lcores=$(printf '%s\n' "$main" "${port0%%:*}" "${port0##*:}" "${port1%%:*}" "${port1##*:}" | sort -n -u | paste -sd, -)
[[ $(tr ',' '\n' <<<"$lcores" | grep -cx "$main") == 1 ]] || die "internal: main lcore lost"
for p in "$port0" "$port1"; do
    [[ ${p%%:*} != "$main" && ${p##*:} != "$main" ]] || die "the main lcore $main must not poll a port"
done

# The profile reads its parameters from the environment (scripts/pktgen/rvs.lua).
envs=("RVS_DUT_MAC0=$mac" "RVS_SCENARIO=$([[ $scenario == imix ]] && echo nat || echo "$scenario")"
    "RVS_FLOWS=$flows" "RVS_SIZE=$size" "RVS_RATE=$rate")
[[ -n $vip ]] && envs+=("RVS_VIP=$vip")

cmd=("$pktgen" -l "$lcores" -n 4 --proc-type auto --file-prefix "$prefix")
[[ -n $socket_mem ]] && cmd+=(--socket-mem "$socket_mem")
cmd+=(-a "${pcis[0]}" -a "${pcis[1]}" --)
# -P promiscuous (port 1 counts whatever rvs sends it), -T colour CLI, -m lcore:port map.
cmd+=(-P -T -m "[$port0].0,[$port1].1" -f "$here/$script")
[[ -n $pcap ]] && cmd+=(-s "0:$pcap")

if ((run)); then
    ((EUID == 0)) || die "--exec must run as root (hugepages, vfio)"
    exec env "${envs[@]}" "${cmd[@]}"
fi
# Print it so that it can be pasted: quote only the words that need it.
quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
        printf ' %s' "$1"
    else
        printf " '%s'" "${1//\'/\'\\\'\'}"
    fi
}
printf 'env'
for w in "${envs[@]}" "${cmd[@]}"; do
    quote "$w"
done
printf '\n'
case $scenario in
nat) echo "# then at the Pktgen prompt: load $here/syn.pkt; when rvs has the flows: load $here/ack.pkt" ;;
udp) echo "# then at the Pktgen prompt: load $here/go.pkt" ;;
storm) echo "# then at the Pktgen prompt: load $here/storm.pkt (rvs: config/bench-pci-syn.toml)" ;;
imix) echo "# then at the Pktgen prompt: load $here/syn.pkt (TCP pcaps); then load $here/imix.pkt" ;;
esac
echo "# after 'stp': load $here/report.lua"
