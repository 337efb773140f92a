#!/usr/bin/env bash
# demo.sh — set up everything and show rvs balancing real connections, on a machine with no NIC
# to spare: a lab of network namespaces (scripts/lab.sh), rvs on two af_packet legs, two real
# servers, one client. Needs root.
#
#   scripts/demo.sh            build, start the lab and rvs, send traffic, show counters, clean up
#   scripts/demo.sh --keep     same, but leave the lab and rvs running to explore; stop with
#                              scripts/lab.sh down
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
[[ ${1:-} == --keep ]] && keep=1
if [[ $EUID -ne 0 ]]; then
    echo "demo.sh: run as root (DPDK and network namespaces need it)" >&2
    exit 1
fi

bash scripts/deps.sh
echo "== building rvs (release)"
cargo build --release

export RVS_LAB=rvs
eval "$(bash scripts/lab.sh env)"
cleanup() {
    if ((keep == 0)); then
        bash scripts/lab.sh down >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
echo "== creating the lab (namespaces $LAB_NS_CLI, $LAB_NS_LB, $LAB_NS_SW, $LAB_NS_SRV1, $LAB_NS_SRV2)"
bash scripts/lab.sh up

log="$LAB_RUN_DIR/rvs.log"
echo "== starting rvs in $LAB_NS_LB: target/release/rvs run --config config/lab.toml (log: $log)"
ip netns exec "$LAB_NS_LB" target/release/rvs run --config config/lab.toml \
    --stats-file "$LAB_RUN_DIR/stats.json" >"$log" 2>&1 &
for _ in $(seq 1 100); do
    [[ -s $LAB_RUN_DIR/stats.json ]] && break
    if ! ip netns pids "$LAB_NS_LB" | grep -q .; then
        cat "$log"
        echo "demo.sh: rvs did not start" >&2
        exit 1
    fi
    sleep 0.2
done
sed -n '1,5p' "$log"

echo
echo "== ping the VIP $LAB_VIP from the client (rvs answers ARP and ICMP itself)"
ip netns exec "$LAB_NS_CLI" ping -c 3 -i 0.2 "$LAB_VIP" | tail -2

echo
echo "== 200 TCP connections to $LAB_VIP:80 (wrr 3:1) and 200 UDP exchanges to :9000 (rr),"
echo "   from client addresses $LAB_CLI_SOURCES"
ip netns exec "$LAB_NS_CLI" "$LAB_PYTHON" scripts/lab/client.py --vip "$LAB_VIP" --tcp-port 80 \
    --udp-port 9000 --count 200 | "$LAB_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
for p in ("tcp", "udp"):
    x = r[p]
    print("   %s: %d/%d ok, by server %s" % (p, x["ok"], x["sent"], x["by_server"]))
for e in r["errors"]:
    print("   error:", e)'

echo
echo "== one reply, showing the server saw the client's own address (NAT keeps it):"
ip netns exec "$LAB_NS_CLI" "$LAB_PYTHON" -c "
import socket
s = socket.create_connection(('$LAB_VIP', 80), timeout=3)
s.sendall(b'hello from the demo\n')
print('   ' + s.recv(200).decode().strip())"

sleep 2.5
echo
echo "== rvs status lines"
grep '^rvs: up' "$log" | tail -3
if ((keep)); then
    echo
    echo "Left running. Try: ip netns exec $LAB_NS_CLI curl ... or scripts/lab.sh status;"
    echo "stop with: scripts/lab.sh down"
    trap - EXIT
    exit 0
fi
echo
echo "== stopping rvs (SIGINT) — its final counters:"
pkill -INT -f "target/release/rvs run --config config/lab.toml" || true
for _ in $(seq 1 50); do
    grep -q '^  port server' "$log" && break
    sleep 0.2
done
sed -n '/final counters/,$p' "$log"
