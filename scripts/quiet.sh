# shellcheck shell=bash
# quiet.sh — sourced by scripts/bench.sh and scripts/kernel-compare.sh: measure only on a quiet
# machine (this VM is shared with builds).

# CPUs' worth of busy time over 2 s, all processes (the caller's own sleep is idle).
busy_cpus() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 2
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN{split(a,x," ");split(b,y," ");
        t=y[2]-x[2]; if (t<=0) {print 0; exit} printf "%.2f\n", (y[1]-x[1])/t*n}'
}

# wait_quiet_for NAME SECONDS LIMIT: wait until other processes use less than LIMIT CPUs, for at
# most SECONDS, then go on anyway (saying so on stderr, prefixed with NAME).
wait_quiet_for() {
    local name=$1 deadline=$(($(date +%s) + $2)) limit=$3 busy
    while :; do
        busy=$(busy_cpus)
        if awk -v b="$busy" -v lim="$limit" 'BEGIN{exit !(b < lim)}'; then
            return 0
        fi
        if (($(date +%s) > deadline)); then
            echo "$name: the machine is still busy ($busy CPUs); measuring anyway" >&2
            return 0
        fi
        echo "$name: waiting for a quiet machine (others use $busy CPUs)" >&2
        sleep 10
    done
}
