#!/usr/bin/env bash
# demo.sh — set up everything and show rvs balancing real connections, on a machine with no NIC
# to spare: a lab of network namespaces (scripts/lab.sh), rvs on two af_packet legs with two
# workers, two real servers running vsftpd, one client. It shows the FTP cluster (passive and
# active transfers through the VIP with their checksums, which server took each session,
# concurrent sessions from one client address, the FTP counters), then TCP and UDP balancing.
# Needs root (no sudo needed: run it as root).
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
echo "== starting rvs in $LAB_NS_LB: target/release/rvs run --config config/demo.toml (log: $log)"
ip netns exec "$LAB_NS_LB" target/release/rvs run --config config/demo.toml \
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
echo "== FTP through the VIP: single transfers with curl, each file's SHA-256 beside the server's copy"
# curl ignores the address in a 227 unless told not to: --no-ftp-skip-pasv-ip makes it use the
# address rvs wrote there (the VIP), so the rewrite is on show.
ftp_one() { # label, curl options...
    local label=$1 out
    shift
    out=$(ip netns exec "$LAB_NS_CLI" curl -sS -v --max-time 20 "$@" \
        "ftp://$LAB_VIP/f20-65537.bin" -o "$LAB_RUN_DIR/demo-ftp.bin" 2>&1) || {
        echo "   $label: FAILED: $(grep '^curl:' <<<"$out")"
        return 1
    }
    local srv sum want
    srv=$(sed -n 's/^< 220 \(rvs-srv[12]\).*/\1/p' <<<"$out" | head -1)
    sum=$(sha256sum "$LAB_RUN_DIR/demo-ftp.bin" | cut -c1-16)
    want=$(sha256sum "$LAB_FTP_DIR/${srv#rvs-}/root/f20-65537.bin" | cut -c1-16)
    printf '   %-34s server %s  sha256 %s…  on the server %s…  %s\n' "$label" "${srv#rvs-}" \
        "$sum" "$want" "$([[ $sum == "$want" ]] && echo match || echo MISMATCH)"
    grep -E '^< 227|^> PORT|^> EPRT|^< 229' <<<"$out" | sed 's/^/        /' | head -2
}
ftp_one "passive PASV (227 honoured)" --ftp-pasv --disable-epsv --no-ftp-skip-pasv-ip
ftp_one "passive EPSV" --ftp-pasv
ftp_one "active PORT" --ftp-port - --disable-eprt
ftp_one "active EPRT" --ftp-port -

echo
echo "== 20 FTP sessions at once from ONE client address (203.0.113.10), 8 files each, in every"
echo "   mode (curl, lftp, Python's ftplib; passive and active), every byte checked by SHA-256"
ip netns exec "$LAB_NS_CLI" "$LAB_PYTHON" scripts/lab/ftp_client.py --vip "$LAB_VIP" \
    --sessions 20 --files 8 --sources 203.0.113.10 --run-dir "$LAB_RUN_DIR" --timeout 60 |
    "$LAB_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
for s in r["sessions"]:
    print("   s%02d %-14s server %-5s files %2d/%-2d data connections %2d  %s" % (
        s["id"], s["mode"], s["server"] or "?", s["files_ok"], s["files"], s["data_conns"],
        "ok" if s["ok"] else "FAILED"))
t = r["totals"]
print("   %d/%d sessions whole, %d files, %.1f MB, %d data connections (%d passive, %d active), %.1f s"
      % (t["ok"], t["sessions"], t["files_ok"], t["bytes"] / 1e6, t["data_conns"],
         t["passive_data_conns"], t["active_data_conns"], r["elapsed_s"]))
for e in r["errors"]:
    print("   error:", e)'
sleep 2.5
echo
echo "== rvs's FTP counters (service ftp)"
"$LAB_PYTHON" -c '
import json, sys
s = json.load(open(sys.argv[1]))
svc = next(x for x in s["services"] if x.get("name") == "ftp")
f = svc.get("ftp", {})
keys = ["ftp_commands", "ftp_replies", "ftp_rewrites", "ftp_ports_translated",
        "ftp_expect_created", "ftp_expect_used", "ftp_expect_expired"]
print("   " + "  ".join("%s=%s" % (k, f.get(k, 0)) for k in keys))
refused = {k: v for k, v in f.items() if k.startswith("ftp_refused") and v}
print("   refusals: %s" % (refused or "none"))
c = s["counters"]
print("   slowpath_out=%s slowpath_tx=%s order_held=%s ftp_data_flows=%s" % (
    c.get("slowpath_out"), c.get("slowpath_tx"), c.get("order_held"), c.get("ftp_data_flows")))' \
    "$LAB_RUN_DIR/stats.json"

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
pkill -INT -f "target/release/rvs run --config config/demo.toml" || true
for _ in $(seq 1 50); do
    grep -q '^  port server' "$log" && break
    sleep 0.2
done
sed -n '/final counters/,$p' "$log"
