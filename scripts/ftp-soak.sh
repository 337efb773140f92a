#!/usr/bin/env bash
# ftp-soak.sh — hold rvs's FTP cluster under load for a while and check that nothing leaks.
# Needs root. Not a CI test: it takes SOAK_SECONDS plus the TCP timeouts (about 13 minutes by
# default).
#
#   scripts/ftp-soak.sh                      600 s, 200 concurrent sessions, 2 workers, NAT
#   SOAK_SECONDS=120 SOAK_SESSIONS=50 scripts/ftp-soak.sh
#
# It builds rvs, brings up the namespace lab (scripts/lab.sh, prefix rvss: two vsftpd servers),
# runs rvs with 2 workers in front of them (config/lab-ftp.toml, NAT), and then, until
# SOAK_SECONDS have passed, rounds of SOAK_SESSIONS concurrent FTP sessions from eight client
# addresses in every mode (curl passive EPSV/PASV/PASV honouring the 227 and active PORT/EPRT,
# lftp passive and active, Python's ftplib active and mixed), each session downloading
# SOAK_FILES files, a listing and a resumed download and uploading one file, every byte checked
# by SHA-256 and every session's data on its control connection's server. Then it stops the
# clients and waits for rvs's flows, FTP control connections and expectations to return to
# zero (within the TCP timeouts: time_wait is 120 s).
#
# It reports: sessions, transfers, bytes, failures (must be 0), rvs's drops by reason, flows and
# expectations at the end (must be 0), and rvs's RSS after each round and at the end. RSS rises
# while the tables reach their working size (the peak of live flows, which TIME_WAIT keeps for
# 120 s, and of the slow path's control connections, which live as long as their flows); it must
# not grow after that: over the last third of the load it may gain at most 1 MiB (a leak grows
# for as long as the load lasts). Exit status 0 only when all of that holds. The lab is removed
# afterwards, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_WANTED=${SOAK_SECONDS:-600}
SESSIONS=${SOAK_SESSIONS:-200}
FILES=${SOAK_FILES:-10}
WORKERS=${SOAK_WORKERS:-2}
DRAIN_SECONDS=${SOAK_DRAIN_SECONDS:-200}

if [[ $EUID -ne 0 ]]; then
    echo "ftp-soak.sh: run as root (DPDK and network namespaces need it)" >&2
    exit 1
fi
bash scripts/deps.sh >/dev/null
cargo build --release --bin rvs 2>&1 | tail -1

export RVS_LAB=rvss
eval "$(bash scripts/lab.sh env)"
cleanup() {
    pkill -INT -f "rvs run --config $LAB_RUN_DIR/soak.toml" 2>/dev/null || true
    sleep 1
    bash scripts/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash scripts/lab.sh up >/dev/null

cfg=$LAB_RUN_DIR/soak.toml
sed -e "s/count = 1/count = $WORKERS/" \
    -e "s/iface=lb-cli\"/iface=lb-cli,qpairs=$WORKERS\"/" \
    -e "s/iface=lb-srv\"/iface=lb-srv,qpairs=$WORKERS\"/" \
    -e 's/"rvs-lab-ftp"/"rvs-soak"/' \
    -e 's/interval_secs = 2/interval_secs = 1/' config/lab-ftp.toml >"$cfg"
stats=$LAB_RUN_DIR/soak-stats.json
log=$LAB_RUN_DIR/soak-rvs.log
ip netns exec "$LAB_NS_LB" target/release/rvs run --config "$cfg" --stats-file "$stats" \
    >"$log" 2>&1 &
for _ in $(seq 1 100); do
    [[ -s $stats ]] && break
    sleep 0.2
done
pid=$(pgrep -f "rvs run --config $cfg" | head -1)
[[ -n $pid ]] || { cat "$log"; echo "ftp-soak.sh: rvs did not start" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
rss_log=$LAB_RUN_DIR/soak-rss.txt
: >"$rss_log"
ip netns exec "$LAB_NS_CLI" ip neigh flush all
ip netns exec "$LAB_NS_CLI" ping -c 2 -i 0.2 -W 2 "$LAB_VIP" >/dev/null

echo "ftp-soak: $SESSIONS sessions at a time, $FILES files each, $WORKERS workers, for $SECONDS_WANTED s"
results=$LAB_RUN_DIR/soak-rounds.jsonl
: >"$results"
start=$(date +%s)
round=0
rss_start=
while (($(date +%s) - start < SECONDS_WANTED)); do
    round=$((round + 1))
    ip netns exec "$LAB_NS_CLI" "$LAB_PYTHON" scripts/lab/ftp_client.py --vip "$LAB_VIP" \
        --sessions "$SESSIONS" --files "$FILES" --run-dir "$LAB_RUN_DIR" --timeout 300 \
        >>"$results" || true
    [[ -n $rss_start ]] || rss_start=$(rss)
    now_rss=$(rss)
    echo "$now_rss" >>"$rss_log"
    "$LAB_PYTHON" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
t = r["totals"]
print("  round %s: %d/%d sessions whole, %d files, %.1f MB, %.1f s, rvs RSS %.1f MiB%s" % (
      sys.argv[2], t["ok"], t["sessions"], t["files_ok"], t["bytes"] / 1e6, r["elapsed_s"],
      int(sys.argv[3]) / 1024, "" if not r["errors"] else "; first error: " + r["errors"][0]))' \
        "$results" "$round" "$now_rss"
done
rss_end_load=$(rss)
echo "ftp-soak: clients stopped after $(($(date +%s) - start)) s; waiting for flows to expire"

drained=0
t0=$(date +%s)
while (($(date +%s) - t0 < DRAIN_SECONDS)); do
    if "$LAB_PYTHON" -c '
import json, sys
s = json.load(open(sys.argv[1]))
f = s["services"][0]["ftp"]
live = f["ftp_expect_created"] - f["ftp_expect_used"] - f["ftp_expect_expired"] - f["ftp_expect_revoked"]
sys.exit(0 if s["counters"]["flows_active"] == 0 and f["ftp_control_conns"] == 0 and live == 0 else 1)' "$stats" 2>/dev/null; then
        drained=1
        break
    fi
    sleep 2
done
drain_s=$(($(date +%s) - t0))
rss_end=$(rss)

"$LAB_PYTHON" - "$results" "$stats" "$rss_start" "$rss_end_load" "$rss_end" "$drained" "$drain_s" \
    "$rss_log" <<'PY'
import json, sys
rounds = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = json.load(open(sys.argv[2]))
rss_start, rss_load, rss_end = (int(x) for x in sys.argv[3:6])
drained, drain_s = sys.argv[6] == "1", int(sys.argv[7])
per_round = [int(l) for l in open(sys.argv[8]) if l.strip()]
rss_mid = per_round[len(per_round) // 2] if per_round else rss_start
rss_late = per_round[(2 * len(per_round)) // 3] if per_round else rss_start
sessions = sum(r["totals"]["sessions"] for r in rounds)
failed = sum(r["totals"]["failed"] for r in rounds)
files = sum(r["totals"]["files_ok"] for r in rounds)
# Per session: its files, a listing, a resumed download and an upload.
transfers = files + 3 * sum(r["totals"]["ok"] for r in rounds)
nbytes = sum(r["totals"]["bytes"] for r in rounds)
data = sum(r["totals"]["data_conns"] for r in rounds)
f = s["services"][0]["ftp"]
live = f["ftp_expect_created"] - f["ftp_expect_used"] - f["ftp_expect_expired"] - f["ftp_expect_revoked"]
drops = {k: v for k, v in s["drops"].items() if v}
refused = {k: v for k, v in f.items() if k.startswith("ftp_refused") and v}
print("ftp-soak: %d rounds, %d sessions, %d transfers, %.1f MB, %d data connections, %d failed"
      % (len(rounds), sessions, transfers, nbytes / 1e6, data, failed))
print("  rvs: ftp_commands=%d ftp_expect_created=%d used=%d expired=%d revoked=%d, refusals %s"
      % (f["ftp_commands"], f["ftp_expect_created"], f["ftp_expect_used"], f["ftp_expect_expired"],
         f["ftp_expect_revoked"], refused or "none"))
print("  drops by reason: %s" % (drops or "none"))
c = s["counters"]
print("  ordering: order_held=%d order_forced=%d handover_in=%d slowpath_out=%d"
      % (c["order_held"], c["order_forced"], c["handover_in"], c["slowpath_out"]))
print("  at the end: flows_active=%d ftp_control_conns=%d live expectations=%d (%s after %d s)"
      % (s["counters"]["flows_active"], f["ftp_control_conns"], live,
         "all zero" if drained else "NOT zero", drain_s))
print("  rvs RSS: %.1f MiB after the first round, %.1f MiB half way, %.1f MiB two thirds of the way,"
      " %.1f MiB when the clients stopped, %.1f MiB at the end"
      % (rss_start / 1024, rss_mid / 1024, rss_late / 1024, rss_load / 1024, rss_end / 1024))
grew = rss_load > rss_late + 1024
ok = failed == 0 and drained and not refused and not grew and not drops
if grew:
    print("  RSS grew in the last third of the run")
print("ftp-soak: %s" % ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
