#!/usr/bin/env bash
# lab.sh — the rvs network-namespace lab: a client, rvs's namespace, a switch, two servers.
#
#   scripts/lab.sh up        (re)build the lab and start the real servers (tears down leftovers first)
#   scripts/lab.sh down      kill the lab's processes, delete its namespaces and run dir (always safe)
#   scripts/lab.sh status    namespaces, links, addresses, offloads, listening peers
#                            (exit 1 unless every namespace exists and both peers listen)
#   scripts/lab.sh env       print KEY=value lines: eval "$(scripts/lab.sh env)"
#                            (LAB_NS_*, LAB_IF_*, LAB_VIP, LAB_*_IP, LAB_*_PORT, LAB_VDEV_*, LAB_*_MAC...)
#   scripts/lab.sh selftest  stand in for rvs with the kernel (router + nft DNAT if nft exists;
#                            in DR mode a router with proxy ARP for the VIP and a VIP route to
#                            each server in turn), run client.py through it, undo the stand-in;
#                            exit 1 on failures.
#                            Refuses while anything runs in <P>-lb (rvs, tcpdump...).
#   scripts/lab.sh ftpselftest  the same kernel stand-in for the FTP servers: NAT is nft DNAT of
#                            the VIP's port 21 to both servers with netfilter's FTP helper
#                            (it rewrites the 227 and opens the data connections); DR is the
#                            proxy-ARP router above. Runs ftp_client.py through it (every mode;
#                            FTP_SELFTEST_SESSIONS, FTP_SELFTEST_FILES, FTP_SELFTEST_MODES
#                            override its defaults; FTP_SELFTEST_OUT=FILE appends its JSON
#                            reports there), undoes the stand-in; exit 1 on failures.
#
# The lab avoids 192.0.2.0/24, which a dev machine may use for its own eth0; still, run lab traffic
# only inside the lab's namespaces (ip netns exec <P>-cli ...), never from the root namespace.
# `down` kills every process inside the lab's namespaces, rvs included.
#
# RVS_LAB (default "rvs") prefixes every namespace and the run dir (/tmp/rvs-lab-$RVS_LAB, or
# RVS_LAB_RUN_DIR), so two labs can coexist. PYTHON overrides the interpreter for the peers.
# Interface names are fixed and live only inside the lab's namespaces (never in the root one).
#
#   ns <P>-cli                 ns <P>-lb (rvs runs here)             ns <P>-sw           ns <P>-srv1/2
#   cli0 203.0.113.2/24  <-veth->  lb-cli   [DPDK net_af_packet]
#        +203.0.113.10-17/24       lb-srv   [DPDK net_af_packet]  <-veth-> sw-lb  br0  sw-s1 <-veth-> eth0 198.51.100.11/24
#                                                                          br0  sw-s2 <-veth-> eth0 198.51.100.12/24
#   rvs answers ARP for 203.0.113.1 (client side), VIP 203.0.113.100, and 198.51.100.1 (server side,
#   the servers' default gateway, so NAT replies come back through rvs). lb-cli/lb-srv carry no
#   addresses. Every veth end has checksum offloads, SG, TSO, GSO and GRO off; IPv6 is disabled.
#   Servers run scripts/lab/peer.py: TCP 8080, UDP 9000 (the VIP's ports are TCP 80, UDP 9000).
#   Servers also run vsftpd (scripts/lab/vsftpd.conf.in, rendered into <run dir>/ftp/): IPv4
#   TCP 21, anonymous, banner "rvs-srv1"/"rvs-srv2", passive ports 10000-14999 and 15000-19999, active from
#   port 20; root <run dir>/ftp/srvN/root holds the same 48 test files (scripts/lab/ftp_files.py,
#   manifest <run dir>/ftp/manifest.json) plus id.txt ("srvN"), and incoming/ takes uploads.
#   Logs: <run dir>/ftp/srvN-xferlog, srvN-vsftpd.log. RVS_LAB_FTP=0 leaves vsftpd out.
#   Drive it with scripts/lab/ftp_client.py (see `ftpselftest`).
#   Start rvs with:  ip netns exec rvs-lb target/release/rvs run --config config/lab.toml
#   (its [[port]] entries name the vdevs net_af_packet0,iface=lb-cli and ...1,iface=lb-srv).
#
# RVS_LAB_MODE=dr scripts/lab.sh up  builds the direct-routing lab (config/lab-dr.toml) instead:
# the same, plus a router so that the servers answer clients without rvs:
#
#   ns <P>-cli                      ns <P>-rtr (ip_forward=1)               ns <P>-sw
#   cli0 (as above) ---> rvs        rtr-srv 198.51.100.254/24 <-veth-> sw-rtr  br0 (static fdb entry)
#   cli1 (no address) <-veth-> rtr-cli 203.0.113.254/32, route 203.0.113.0/24 dev rtr-cli
#
#   servers: VIP 203.0.113.100/32 on lo, arp_ignore=1 arp_announce=2 (all, eth0), default route
#   via 198.51.100.254 (the router; a permanent neighbour entry, so their ARP broadcasts for it
#   never reach rvs), peers on TCP 8080 and 80, UDP 9000 (UDP replies leave from the VIP).
#   client: requests go to the VIP through cli0 and rvs; replies arrive on cli1 (weak host:
#   rp_filter=0, arp_ignore=0, so it answers the router's ARP for its cli0 addresses on cli1).
#   rvs only ever sees client -> VIP traffic. The mode is remembered in the run dir, so status
#   and env need no RVS_LAB_MODE; `down` removes either lab.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${RVS_LAB:-rvs}
if [[ ! $P =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$ ]]; then
    echo "lab.sh: bad RVS_LAB prefix '$P' (letters, digits, _ . -; at most 31 chars)" >&2
    exit 2
fi

NS_LB=$P-lb
NS_CLI=$P-cli
NS_SW=$P-sw
NS_SRV1=$P-srv1
NS_SRV2=$P-srv2
NS_RTR=$P-rtr
RUN_DIR=${RVS_LAB_RUN_DIR:-/tmp/rvs-lab-$P}
# nat (default) or dr: RVS_LAB_MODE, else what `up` recorded in the run dir, else nat.
MODE=${RVS_LAB_MODE:-$(cat "$RUN_DIR/mode" 2>/dev/null || true)}
MODE=${MODE:-nat}
if [[ $MODE != nat && $MODE != dr ]]; then
    echo "lab.sh: bad RVS_LAB_MODE '$MODE' (nat or dr)" >&2
    exit 2
fi
# The mode's namespaces; `down` removes those of every mode.
ALL_NS=("$NS_LB" "$NS_CLI" "$NS_SW" "$NS_SRV1" "$NS_SRV2")
if [[ $MODE == dr ]]; then ALL_NS+=("$NS_RTR"); fi
DOWN_NS=("$NS_LB" "$NS_CLI" "$NS_SW" "$NS_SRV1" "$NS_SRV2" "$NS_RTR")

IF_LB_CLI=lb-cli
IF_LB_SRV=lb-srv
IF_CLI=cli0
IF_SW_LB=sw-lb
IF_SW_S1=sw-s1
IF_SW_S2=sw-s2
IF_SRV=eth0
BR=br0
# DR mode only: the router's legs and the client's reply leg.
IF_RTR_SRV=rtr-srv
IF_RTR_CLI=rtr-cli
IF_SW_RTR=sw-rtr
IF_CLI_DR=cli1

CLI_NET=203.0.113.0/24
SRV_NET=198.51.100.0/24
LB_CLI_IP=203.0.113.1
LB_SRV_IP=198.51.100.1
VIP=203.0.113.100
CLI_IP=203.0.113.2
CLI_SOURCES=(203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13 203.0.113.14 203.0.113.15 203.0.113.16 203.0.113.17)
SRV1_IP=198.51.100.11
SRV2_IP=198.51.100.12
VIP_TCP_PORT=80
VIP_UDP_PORT=9000
SRV_TCP_PORT=8080
SRV_UDP_PORT=9000
RTR_SRV_IP=198.51.100.254
RTR_CLI_IP=203.0.113.254
# FTP: vsftpd on each server (RVS_LAB_FTP=0: none), its files and logs under the run dir.
FTP=${RVS_LAB_FTP:-1}
FTP_DIR=$RUN_DIR/ftp
FTP_PORT=21
FTP_PASV_PORTS=10000-19999 # srv1 10000-14999, srv2 15000-19999
VSFTPD=${VSFTPD:-$(command -v vsftpd || echo /usr/sbin/vsftpd)}
if [[ $MODE == dr ]]; then
    SRV_GW=$RTR_SRV_IP
    # DR cannot change ports: the servers also listen on the VIP's own TCP port.
    PEER_TCP_PORTS=$SRV_TCP_PORT,$VIP_TCP_PORT
else
    SRV_GW=$LB_SRV_IP
    PEER_TCP_PORTS=$SRV_TCP_PORT
fi

if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif [[ -x /usr/bin/python3 ]]; then
    PY=/usr/bin/python3
else
    PY=python3
fi

log() { echo "lab.sh[$P]: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
ns_exists() { [[ -e /run/netns/$1 ]]; }
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}
join_by() {
    local IFS=$1
    shift
    echo "$*"
}
mac_of() { # ns if -> MAC or empty
    ns_exists "$1" || return 0
    ip -n "$1" -o link show dev "$2" 2>/dev/null | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# ---------------------------------------------------------------- down
kill_pids() { # signal pid...
    local sig=$1
    shift
    (($#)) || return 0
    kill "-$sig" "$@" 2>/dev/null || true
}

lab_pids() { # every pid inside the lab's namespaces (any mode), plus the pid files
    local ns f
    for ns in "${DOWN_NS[@]}"; do
        if ns_exists "$ns"; then ip netns pids "$ns" 2>/dev/null || true; fi
    done
    if [[ -d $RUN_DIR ]]; then
        for f in "$RUN_DIR"/*.pid; do
            [[ -f $f ]] || continue
            local pid
            pid=$(cat "$f" 2>/dev/null || true)
            [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
        done
    fi
    return 0
}

cmd_down() {
    set +e
    local pids i
    mapfile -t pids < <(lab_pids | sort -un)
    if ((${#pids[@]})); then
        kill_pids TERM "${pids[@]}"
        for i in $(seq 1 30); do
            mapfile -t pids < <(lab_pids | sort -un)
            ((${#pids[@]})) || break
            sleep 0.1
        done
        if ((${#pids[@]})); then
            log "killing stubborn processes: ${pids[*]}"
            kill_pids KILL "${pids[@]}"
            sleep 0.2
        fi
    fi
    local ns
    for ns in "${DOWN_NS[@]}"; do
        if ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || log "warning: could not delete namespace $ns"
        fi
    done
    rm -rf -- "$RUN_DIR"
    set -e
    local left=()
    for ns in "${DOWN_NS[@]}"; do ns_exists "$ns" && left+=("$ns"); done
    ((${#left[@]} == 0)) || die "namespaces still present: ${left[*]}"
    log "down"
}

# ---------------------------------------------------------------- up
ns_sysctls() { # ns: IPv6 off (all, default), lo up
    local ns=$1
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        2>/dev/null || true
    ip -n "$ns" link set lo up
}

if_prepare() { # ns if: IPv6 off, offloads off (verified), up
    local ns=$1 ifn=$2
    in_ns "$ns" sysctl -qw "net.ipv6.conf.$ifn.disable_ipv6=1" 2>/dev/null || true
    # Features a kernel lacks make ethtool complain; what matters is verified below.
    in_ns "$ns" ethtool -K "$ifn" rx off tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    local feats
    feats=$(in_ns "$ns" ethtool -k "$ifn") || die "ethtool -k $ifn in $ns failed"
    local f
    for f in rx-checksumming tx-checksumming scatter-gather tcp-segmentation-offload \
        generic-segmentation-offload generic-receive-offload; do
        if grep -q "^$f: on" <<<"$feats"; then
            die "$ns/$ifn: $f is still on after ethtool -K"
        fi
    done
    ip -n "$ns" link set "$ifn" up
}

veth() { # nsA ifA nsB ifB
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
}

start_peer() { # ns name
    local ns=$1 name=$2
    # setsid: own session, so the peer survives this shell and ignores its terminal.
    # A simple command (not a function) in the background: $! is then the python process itself.
    ip netns exec "$ns" setsid "$PY" "$HERE/lab/peer.py" --name "$name" \
        --tcp-port "$PEER_TCP_PORTS" --udp-port "$SRV_UDP_PORT" \
        </dev/null >>"$RUN_DIR/peer-$name.log" 2>&1 &
    echo $! >"$RUN_DIR/peer-$name.pid"
}

peer_listens() { # ns
    local p ports
    IFS=, read -ra ports <<<"$PEER_TCP_PORTS"
    for p in "${ports[@]}"; do
        in_ns "$1" ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || return 1
    done
    in_ns "$1" ss -Hlun "sport = :$SRV_UDP_PORT" 2>/dev/null | grep -q .
}

ftp_user() { # the unprivileged user vsftpd serves anonymous sessions as
    if id -u ftp >/dev/null 2>&1; then echo ftp; else echo nobody; fi
}

ftp_prepare() { # the FTP roots of both servers, the manifest, the shared empty chroot dir
    local user name
    user=$(ftp_user)
    mkdir -p "$FTP_DIR/empty"
    chmod 755 "$FTP_DIR" "$FTP_DIR/empty"
    for name in srv1 srv2; do
        local root=$FTP_DIR/$name/root
        "$PY" "$HERE/lab/ftp_files.py" write --root "$root" --name "$name" \
            --manifest "$FTP_DIR/manifest.json" || die "cannot write the FTP files of $name"
        # vsftpd refuses a chroot root its user can write to: uploads go one level down.
        mkdir -p "$root/incoming"
        chown "$user:" "$root/incoming"
        chmod 755 "$FTP_DIR/$name" "$root" "$root/incoming"
    done
}

start_ftp() { # ns name: render the config, run vsftpd in the foreground of its own session
    local ns=$1 name=$2 conf=$FTP_DIR/vsftpd-$2.conf pasv
    if [[ $MODE == dr ]]; then
        # DR servers hold the VIP on lo, and the client must connect to it: say so in the 227.
        pasv="pasv_address=$VIP"
    else
        pasv="# pasv_address: unset (NAT and full NAT: rvs rewrites the server's own address)"
    fi
    # Each server its own half of the passive range, so that in DR a data port names its
    # server (config/lab-ftp-dr.toml's passive_ports say the same).
    local pmin=10000 pmax=14999
    if [[ $name == srv2 ]]; then pmin=15000 pmax=19999; fi
    sed -e "s|@NAME@|$name|g" -e "s|@ROOT@|$FTP_DIR/$name/root|g" -e "s|@EMPTY@|$FTP_DIR/empty|g" \
        -e "s|@LOG_DIR@|$FTP_DIR|g" -e "s|@FTP_USER@|$(ftp_user)|g" -e "s|@PASV_ADDRESS@|$pasv|g" \
        -e "s|@PASV_MIN@|$pmin|g" -e "s|@PASV_MAX@|$pmax|g" \
        "$HERE/lab/vsftpd.conf.in" >"$conf"
    # vsftpd insists that its config belongs to root and that nobody else may write to it.
    chmod 600 "$conf"
    ip netns exec "$ns" setsid "$VSFTPD" "$conf" </dev/null >>"$FTP_DIR/$name-stderr.log" 2>&1 &
    echo $! >"$RUN_DIR/vsftpd-$name.pid"
}

ftp_listens() { # ns
    in_ns "$1" ss -Hltn "sport = :$FTP_PORT" 2>/dev/null | grep -q .
}

servers_ready() { # peers (and vsftpd, if the lab has it) listen in both server namespaces
    local ns
    for ns in "$NS_SRV1" "$NS_SRV2"; do
        peer_listens "$ns" || return 1
        if [[ -d $FTP_DIR ]]; then ftp_listens "$ns" || return 1; fi
    done
}

sysctls() { # ns key=value...: every key must exist (a typo is an error, not a no-op)
    local ns=$1
    shift
    in_ns "$ns" sysctl -qw "$@" >/dev/null || die "sysctl $* in $ns failed"
}

up_dr() { # the router (its namespace exists), the client's reply leg, the servers' DR side
    veth "$NS_RTR" "$IF_RTR_SRV" "$NS_SW" "$IF_SW_RTR"
    veth "$NS_RTR" "$IF_RTR_CLI" "$NS_CLI" "$IF_CLI_DR"
    ip -n "$NS_SW" link set "$IF_SW_RTR" master "$BR"
    if_prepare "$NS_SW" "$IF_SW_RTR"
    # A static switch entry for the router: frames to it never flood to rvs's port (rvs would
    # count them as other_mac), however long the router stays silent.
    bridge -n "$NS_SW" fdb replace "$(mac_of "$NS_RTR" "$IF_RTR_SRV")" dev "$IF_SW_RTR" master static

    # The router: forwards, and must not drop server replies (source VIP, which it routes out
    # of rtr-cli) on the reverse-path check.
    if_prepare "$NS_RTR" "$IF_RTR_SRV"
    if_prepare "$NS_RTR" "$IF_RTR_CLI"
    sysctls "$NS_RTR" net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 "net.ipv4.conf.$IF_RTR_SRV.rp_filter=0" \
        "net.ipv4.conf.$IF_RTR_CLI.rp_filter=0"
    ip -n "$NS_RTR" addr add "$RTR_SRV_IP/24" dev "$IF_RTR_SRV"
    ip -n "$NS_RTR" addr add "$RTR_CLI_IP/32" dev "$IF_RTR_CLI"
    ip -n "$NS_RTR" route add "$CLI_NET" dev "$IF_RTR_CLI"

    # The client: replies from the VIP arrive on cli1 (no address): weak host, no reverse-path
    # filter (the VIP is reached through cli0), answers the router's ARP for its cli0 addresses.
    if_prepare "$NS_CLI" "$IF_CLI_DR"
    sysctls "$NS_CLI" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        "net.ipv4.conf.$IF_CLI.rp_filter=0" "net.ipv4.conf.$IF_CLI_DR.rp_filter=0" \
        net.ipv4.conf.all.arp_ignore=0 "net.ipv4.conf.$IF_CLI_DR.arp_ignore=0" \
        net.ipv4.conf.all.arp_filter=0 "net.ipv4.conf.$IF_CLI_DR.arp_filter=0"

    local ns rtr_mac
    rtr_mac=$(mac_of "$NS_RTR" "$IF_RTR_SRV")
    for ns in "$NS_SRV1" "$NS_SRV2"; do
        ip -n "$ns" addr add "$VIP/32" dev lo
        sysctls "$ns" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            "net.ipv4.conf.$IF_SRV.arp_ignore=1" "net.ipv4.conf.$IF_SRV.arp_announce=2"
        # No broadcast ARP for the gateway ever reaches rvs (it would count arp_ignored).
        ip -n "$ns" neigh replace "$RTR_SRV_IP" lladdr "$rtr_mac" dev "$IF_SRV" nud permanent
    done
}

cmd_up() {
    ((EUID == 0)) || die "must run as root"
    local t
    for t in ip ethtool ss setsid; do command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh)"; done
    command -v "$PY" >/dev/null || die "python3 not found (scripts/deps.sh)"
    if [[ $FTP != 0 ]]; then
        [[ -x $VSFTPD ]] || die "vsftpd not found (scripts/deps.sh), or set RVS_LAB_FTP=0"
    fi

    cmd_down 2>/dev/null
    mkdir -p "$RUN_DIR"
    echo "$MODE" >"$RUN_DIR/mode"

    local ns
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ns_sysctls "$ns"
    done
    # rvs's namespace: the kernel there must never route or answer; DPDK owns the veths.
    in_ns "$NS_LB" sysctl -qw net.ipv4.ip_forward=0

    veth "$NS_LB" "$IF_LB_CLI" "$NS_CLI" "$IF_CLI"
    veth "$NS_LB" "$IF_LB_SRV" "$NS_SW" "$IF_SW_LB"
    veth "$NS_SW" "$IF_SW_S1" "$NS_SRV1" "$IF_SRV"
    veth "$NS_SW" "$IF_SW_S2" "$NS_SRV2" "$IF_SRV"

    # The switch: a plain learning bridge, no STP (ports forward at once), no addresses.
    ip -n "$NS_SW" link add "$BR" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    in_ns "$NS_SW" sysctl -qw "net.ipv6.conf.$BR.disable_ipv6=1" 2>/dev/null || true
    local port
    for port in "$IF_SW_LB" "$IF_SW_S1" "$IF_SW_S2"; do
        ip -n "$NS_SW" link set "$port" master "$BR"
        if_prepare "$NS_SW" "$port"
    done
    ip -n "$NS_SW" link set "$BR" up

    if_prepare "$NS_LB" "$IF_LB_CLI"
    if_prepare "$NS_LB" "$IF_LB_SRV"

    if_prepare "$NS_CLI" "$IF_CLI"
    ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$IF_CLI"
    local a
    for a in "${CLI_SOURCES[@]}"; do
        ip -n "$NS_CLI" addr add "$a/24" dev "$IF_CLI"
    done

    local pair
    for pair in "$NS_SRV1:$SRV1_IP" "$NS_SRV2:$SRV2_IP"; do
        ns=${pair%%:*}
        if_prepare "$ns" "$IF_SRV"
        ip -n "$ns" addr add "${pair#*:}/24" dev "$IF_SRV"
        # vsftpd listens with a backlog of 32 (compiled in). 50 sessions from one address that
        # persistence sends to one server fill it; with SYN cookies on, the kernel then answers
        # with a cookie and silently drops the ACK while the accept queue is full, and the
        # client waits for a banner that never comes. Without cookies the SYN is dropped and
        # retried a second later. Operators with such servers: see docs/FTP.md.
        sysctls "$ns" net.ipv4.tcp_syncookies=0
    done
    if [[ $MODE == dr ]]; then up_dr; fi
    for ns in "$NS_SRV1" "$NS_SRV2"; do
        ip -n "$ns" route add default via "$SRV_GW" dev "$IF_SRV"
    done

    # The switch works before anything else depends on it.
    if command -v ping >/dev/null; then
        in_ns "$NS_SRV1" ping -q -c 1 -W 2 "$SRV2_IP" >/dev/null ||
            die "srv1 cannot reach srv2 across $NS_SW/$BR"
        if [[ $MODE == dr ]]; then
            # The reply path: servers -> router -> the client's cli1 (the client answers the
            # router's ARP there). The client's echo replies would go to cli0 (rvs); for this
            # check only, a route sends them back through cli1 and the router.
            ip -n "$NS_CLI" route add "$SRV_NET" via "$RTR_CLI_IP" dev "$IF_CLI_DR" onlink
            for ns in "$NS_SRV1" "$NS_SRV2"; do
                in_ns "$ns" ping -q -c 1 -W 2 "${CLI_SOURCES[0]}" >/dev/null ||
                    die "$ns cannot reach the client through $NS_RTR"
            done
            ip -n "$NS_CLI" route del "$SRV_NET" via "$RTR_CLI_IP" dev "$IF_CLI_DR"
        fi
    fi

    start_peer "$NS_SRV1" srv1
    start_peer "$NS_SRV2" srv2
    local ftp_note=""
    if [[ $FTP != 0 ]]; then
        ftp_prepare
        start_ftp "$NS_SRV1" srv1
        start_ftp "$NS_SRV2" srv2
        ftp_note=", ftp $FTP_PORT (passive $FTP_PASV_PORTS)"
    fi
    local i
    for i in $(seq 1 100); do
        if servers_ready; then
            log "up ($MODE): client $NS_CLI/$IF_CLI, rvs $NS_LB/{$IF_LB_CLI,$IF_LB_SRV}," \
                "servers $NS_SRV1 $NS_SRV2 listening on tcp $PEER_TCP_PORTS udp $SRV_UDP_PORT$ftp_note;" \
                "run dir $RUN_DIR"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$RUN_DIR"/peer-*.log "$FTP_DIR"/*-stderr.log >&2 2>/dev/null || true
    die "peers or vsftpd did not start listening within 10 s"
}

# ---------------------------------------------------------------- status
cmd_status() {
    local ns rc=0
    for ns in "${ALL_NS[@]}"; do
        if ! ns_exists "$ns"; then
            echo "== $ns: absent"
            rc=1
            continue
        fi
        echo "== $ns"
        ip -n "$ns" -br link | sed 's/^/   link /'
        ip -n "$ns" -br -4 addr | sed 's/^/   addr /'
        ip -n "$ns" -4 route | sed 's/^/   route /'
        local ifn
        for ifn in $(ip -n "$ns" -o link show type veth | sed -n 's/^[0-9]*: \([^@:]*\).*/\1/p'); do
            local off
            off=$(in_ns "$ns" ethtool -k "$ifn" 2>/dev/null |
                grep -E '^(rx-checksumming|tx-checksumming|scatter-gather|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' |
                sed 's/: /=/; s/ \[fixed\]//' | tr '\n' ' ')
            echo "   offload $ifn: $off"
        done
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [[ -n $pids ]] && echo "   pids $pids"
    done
    local n
    for n in 1 2; do
        ns=$P-srv$n
        if ns_exists "$ns" && peer_listens "$ns"; then
            echo "peer srv$n: listening (tcp $PEER_TCP_PORTS, udp $SRV_UDP_PORT)"
        else
            echo "peer srv$n: NOT listening"
            rc=1
        fi
    done
    if [[ -d $FTP_DIR ]]; then
        for n in 1 2; do
            ns=$P-srv$n
            local pid
            pid=$(cat "$RUN_DIR/vsftpd-srv$n.pid" 2>/dev/null || true)
            if ns_exists "$ns" && ftp_listens "$ns"; then
                echo "vsftpd srv$n: listening (tcp $FTP_PORT, passive $FTP_PASV_PORTS, pid ${pid:-?}," \
                    "root $FTP_DIR/srv$n/root)"
            else
                echo "vsftpd srv$n: NOT listening (log $FTP_DIR/srv$n-stderr.log)"
                rc=1
            fi
        done
    else
        echo "vsftpd: not part of this lab (RVS_LAB_FTP=0, or the lab is down)"
    fi
    echo "mode: $MODE"
    echo "run dir: $RUN_DIR $([[ -d $RUN_DIR ]] && echo present || echo absent)"
    return $rc
}

# ---------------------------------------------------------------- env
cmd_env() {
    local kv=(
        RVS_LAB "$P"
        LAB_MODE "$MODE"
        LAB_RUN_DIR "$RUN_DIR"
        LAB_NS_LB "$NS_LB"
        LAB_NS_CLI "$NS_CLI"
        LAB_NS_SW "$NS_SW"
        LAB_NS_SRV1 "$NS_SRV1"
        LAB_NS_SRV2 "$NS_SRV2"
        LAB_IF_LB_CLI "$IF_LB_CLI"
        LAB_IF_LB_SRV "$IF_LB_SRV"
        LAB_IF_CLI "$IF_CLI"
        LAB_IF_SRV "$IF_SRV"
        LAB_IF_SW_LB "$IF_SW_LB"
        LAB_IF_SW_S1 "$IF_SW_S1"
        LAB_IF_SW_S2 "$IF_SW_S2"
        LAB_BR "$BR"
        LAB_CLI_NET "$CLI_NET"
        LAB_SRV_NET "$SRV_NET"
        LAB_VIP "$VIP"
        LAB_LB_CLI_IP "$LB_CLI_IP"
        LAB_LB_SRV_IP "$LB_SRV_IP"
        LAB_CLI_IP "$CLI_IP"
        LAB_CLI_SOURCES "$(join_by , "${CLI_SOURCES[@]}")"
        LAB_SRV1_IP "$SRV1_IP"
        LAB_SRV2_IP "$SRV2_IP"
        LAB_SRV_IPS "$SRV1_IP,$SRV2_IP"
        LAB_VIP_TCP_PORT "$VIP_TCP_PORT"
        LAB_VIP_UDP_PORT "$VIP_UDP_PORT"
        LAB_SRV_TCP_PORT "$SRV_TCP_PORT"
        LAB_SRV_UDP_PORT "$SRV_UDP_PORT"
        LAB_VDEV_CLI "net_af_packet0,iface=$IF_LB_CLI"
        LAB_VDEV_SRV "net_af_packet1,iface=$IF_LB_SRV"
        LAB_PEER "$HERE/lab/peer.py"
        LAB_CLIENT "$HERE/lab/client.py"
        LAB_PYTHON "$PY"
        # MACs are empty while the lab is down.
        LAB_LB_CLI_MAC "$(mac_of "$NS_LB" "$IF_LB_CLI" 2>/dev/null)"
        LAB_LB_SRV_MAC "$(mac_of "$NS_LB" "$IF_LB_SRV" 2>/dev/null)"
        LAB_CLI_MAC "$(mac_of "$NS_CLI" "$IF_CLI" 2>/dev/null)"
        LAB_SRV1_MAC "$(mac_of "$NS_SRV1" "$IF_SRV" 2>/dev/null)"
        LAB_SRV2_MAC "$(mac_of "$NS_SRV2" "$IF_SRV" 2>/dev/null)"
        LAB_SRV_GW "$SRV_GW"
        LAB_PEER_TCP_PORTS "$PEER_TCP_PORTS"
        LAB_FTP_DIR "$FTP_DIR"
        LAB_FTP_PORT "$FTP_PORT"
        LAB_FTP_PASV_PORTS "$FTP_PASV_PORTS"
        LAB_FTP_CLIENT "$HERE/lab/ftp_client.py"
    )
    if [[ $MODE == dr ]]; then
        kv+=(
            LAB_NS_RTR "$NS_RTR"
            LAB_IF_RTR_SRV "$IF_RTR_SRV"
            LAB_IF_RTR_CLI "$IF_RTR_CLI"
            LAB_IF_SW_RTR "$IF_SW_RTR"
            LAB_IF_CLI_DR "$IF_CLI_DR"
            LAB_RTR_SRV_IP "$RTR_SRV_IP"
            LAB_RTR_CLI_IP "$RTR_CLI_IP"
            LAB_CONFIG "config/lab-dr.toml"
            LAB_RTR_SRV_MAC "$(mac_of "$NS_RTR" "$IF_RTR_SRV" 2>/dev/null)"
            LAB_RTR_CLI_MAC "$(mac_of "$NS_RTR" "$IF_RTR_CLI" 2>/dev/null)"
            LAB_CLI_DR_MAC "$(mac_of "$NS_CLI" "$IF_CLI_DR" 2>/dev/null)"
        )
    else
        kv+=(LAB_CONFIG "config/lab.toml")
    fi
    local i
    for ((i = 0; i < ${#kv[@]}; i += 2)); do
        local v=${kv[i + 1]}
        # Plain KEY=value (easy to parse from any language); single quotes only if needed.
        if [[ $v =~ ^[A-Za-z0-9_./:,=@%+-]*$ ]]; then
            printf '%s=%s\n' "${kv[i]}" "$v"
        else
            printf "%s='%s'\n" "${kv[i]}" "${v//\'/\'\\\'\'}"
        fi
    done
}

# ---------------------------------------------------------------- selftest
standin_off() {
    set +e
    if ns_exists "$NS_LB"; then
        in_ns "$NS_LB" sysctl -qw net.ipv4.ip_forward=0
        ip -n "$NS_LB" route del "$VIP/32" 2>/dev/null
        in_ns "$NS_LB" sysctl -qw "net.ipv4.conf.$IF_LB_CLI.proxy_arp=0" 2>/dev/null
        ip -n "$NS_LB" addr flush dev "$IF_LB_CLI" 2>/dev/null
        ip -n "$NS_LB" addr flush dev "$IF_LB_SRV" 2>/dev/null
        command -v nft >/dev/null && in_ns "$NS_LB" nft delete table ip rvs_lab_standin 2>/dev/null
    fi
    ns_exists "$NS_CLI" && ip -n "$NS_CLI" route del "$SRV_NET" via "$LB_CLI_IP" 2>/dev/null
    set -e
    return 0
}

cmd_selftest() {
    ((EUID == 0)) || die "must run as root"
    local ns
    for ns in "${ALL_NS[@]}"; do ns_exists "$ns" || die "lab is not up ($ns missing): run lab.sh up"; done
    { peer_listens "$NS_SRV1" && peer_listens "$NS_SRV2"; } || die "peers are not listening"
    [[ -z $(ip netns pids "$NS_LB") ]] || die "something runs in $NS_LB (rvs?): not touching it"
    trap standin_off EXIT
    # The kernel stands in for rvs: addresses on the DPDK veths, forwarding on.
    ip -n "$NS_LB" addr add "$LB_CLI_IP/24" dev "$IF_LB_CLI"
    [[ $MODE == dr ]] || ip -n "$NS_LB" addr add "$VIP/24" dev "$IF_LB_CLI"
    ip -n "$NS_LB" addr add "$LB_SRV_IP/24" dev "$IF_LB_SRV"
    in_ns "$NS_LB" sysctl -qw net.ipv4.ip_forward=1
    # runs: "[server address for the VIP route (DR)]|client.py arguments"
    local out rc=0 runs=() map="{ 0 : $SRV1_IP, 1 : $SRV2_IP }"
    if [[ $MODE == dr ]]; then
        # A kernel DR director: the VIP is not local, proxy ARP answers for it on the client
        # side, and a host route forwards it (only the MAC changes) to one server per run.
        # Replies go from the servers through the router to cli1, never through here.
        in_ns "$NS_LB" sysctl -qw "net.ipv4.conf.$IF_LB_CLI.proxy_arp=1"
        log "selftest: kernel DR stand-in: proxy ARP for $VIP, routed to each server in turn"
        runs=("$SRV1_IP|--vip $VIP --tcp-port $VIP_TCP_PORT --udp-port $VIP_UDP_PORT --servers srv1"
            "$SRV2_IP|--vip $VIP --tcp-port $VIP_TCP_PORT --udp-port $VIP_UDP_PORT --servers srv2")
    elif [[ -z ${SELFTEST_NO_NFT:-} ]] && command -v nft >/dev/null &&
        in_ns "$NS_LB" nft -f - <<NFT; then
table ip rvs_lab_standin {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP tcp dport $VIP_TCP_PORT counter dnat to numgen inc mod 2 map $map : $SRV_TCP_PORT
        ip daddr $VIP udp dport $VIP_UDP_PORT counter dnat to numgen inc mod 2 map $map : $SRV_UDP_PORT
    }
}
NFT
        log "selftest: kernel NAT stand-in: nft DNAT $VIP tcp $VIP_TCP_PORT, udp $VIP_UDP_PORT -> both servers"
        runs=("|--vip $VIP --tcp-port $VIP_TCP_PORT --udp-port $VIP_UDP_PORT")
    else
        log "selftest: plain routing stand-in (no nft): the client talks to the servers' own addresses"
        ip -n "$NS_CLI" route add "$SRV_NET" via "$LB_CLI_IP" dev "$IF_CLI"
        runs=("|--vip $SRV1_IP --tcp-port $SRV_TCP_PORT --udp-port $SRV_UDP_PORT --servers srv1"
            "|--vip $SRV2_IP --tcp-port $SRV_TCP_PORT --udp-port $SRV_UDP_PORT --servers srv2")
    fi
    local r to
    for r in "${runs[@]}"; do
        to=${r%%|*}
        r=${r#*|}
        if [[ -n $to ]]; then
            ip -n "$NS_LB" route replace "$VIP/32" via "$to" dev "$IF_LB_SRV"
        fi
        # shellcheck disable=SC2086 # word splitting of $r is intended
        out=$(in_ns "$NS_CLI" "$PY" "$HERE/lab/client.py" $r \
            --count "${SELFTEST_COUNT:-200}" --sources "$(join_by , "${CLI_SOURCES[@]}")")
        echo "$out"
        "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
ok = all(d[p]["failed"] == 0 and d[p]["ok"] > 0 for p in ("tcp", "udp"))
sys.exit(0 if ok else 1)' "$out" || rc=1
    done
    standin_off
    trap - EXIT
    if ((rc == 0)); then log "selftest: OK"; else log "selftest: FAILED"; fi
    return $rc
}

# ---------------------------------------------------------------- ftpselftest
cmd_ftpselftest() {
    ((EUID == 0)) || die "must run as root"
    local ns
    for ns in "${ALL_NS[@]}"; do ns_exists "$ns" || die "lab is not up ($ns missing): run lab.sh up"; done
    [[ -d $FTP_DIR ]] || die "the lab has no vsftpd (it was brought up with RVS_LAB_FTP=0)"
    servers_ready || die "peers or vsftpd are not listening"
    [[ -z $(ip netns pids "$NS_LB") ]] || die "something runs in $NS_LB (rvs?): not touching it"
    trap standin_off EXIT
    ip -n "$NS_LB" addr add "$LB_CLI_IP/24" dev "$IF_LB_CLI"
    [[ $MODE == dr ]] || ip -n "$NS_LB" addr add "$VIP/24" dev "$IF_LB_CLI"
    ip -n "$NS_LB" addr add "$LB_SRV_IP/24" dev "$IF_LB_SRV"
    in_ns "$NS_LB" sysctl -qw net.ipv4.ip_forward=1
    # runs: "[server address for the VIP route (DR)]|ftp_client.py arguments"
    local runs=() map="{ 0 : $SRV1_IP, 1 : $SRV2_IP }"
    if [[ $MODE == dr ]]; then
        # The kernel DR director of `selftest`: every connection to the VIP, control and data,
        # goes to one server per run; the servers answer (227 with pasv_address, active data
        # connections from the VIP) straight to the client through the router.
        in_ns "$NS_LB" sysctl -qw "net.ipv4.conf.$IF_LB_CLI.proxy_arp=1"
        log "ftpselftest: kernel DR stand-in: proxy ARP for $VIP, routed to each server in turn"
        runs=("$SRV1_IP|--vip $VIP" "$SRV2_IP|--vip $VIP")
    elif command -v nft >/dev/null && in_ns "$NS_LB" nft -f - <<NFT; then
table ip rvs_lab_standin {
    ct helper ftp_standard {
        type "ftp" protocol tcp
    }
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP tcp dport $FTP_PORT counter dnat to numgen inc mod 2 map $map : $FTP_PORT
    }
    chain helpers {
        type filter hook prerouting priority filter; policy accept;
        ct original ip daddr $VIP tcp dport $FTP_PORT ct helper set "ftp_standard"
    }
}
NFT
        # netfilter's FTP helper is rvs's NAT helper in the kernel: it rewrites the servers'
        # 227 to the VIP and NATs the expected data connections (passive to the server, active
        # from the VIP).
        log "ftpselftest: kernel NAT stand-in: nft DNAT $VIP tcp $FTP_PORT -> both servers, FTP helper"
        runs=("|--vip $VIP")
    else
        log "ftpselftest: plain routing stand-in (no nft): the client talks to the servers' own addresses"
        ip -n "$NS_CLI" route add "$SRV_NET" via "$LB_CLI_IP" dev "$IF_CLI"
        runs=("|--vip $SRV1_IP --servers srv1" "|--vip $SRV2_IP --servers srv2")
    fi
    local r to out rc=0
    for r in "${runs[@]}"; do
        to=${r%%|*}
        r=${r#*|}
        if [[ -n $to ]]; then
            ip -n "$NS_LB" route replace "$VIP/32" via "$to" dev "$IF_LB_SRV"
        fi
        local extra=(--run-dir "$RUN_DIR" --sources "$(join_by , "${CLI_SOURCES[@]}")"
            --sessions "${FTP_SELFTEST_SESSIONS:-20}" --files "${FTP_SELFTEST_FILES:-40}")
        [[ -z ${FTP_SELFTEST_MODES:-} ]] || extra+=(--modes "$FTP_SELFTEST_MODES")
        # shellcheck disable=SC2086 # word splitting of $r is intended
        if out=$(in_ns "$NS_CLI" "$PY" "$HERE/lab/ftp_client.py" $r "${extra[@]}"); then
            :
        else
            rc=1
        fi
        if [[ -n ${FTP_SELFTEST_OUT:-} ]]; then echo "$out" >>"$FTP_SELFTEST_OUT"; fi
        "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
t = d["totals"]
print("ftpselftest: %d/%d sessions ok, %d/%d files, %d bytes, %d data connections "
      "(%d passive, %d active), servers %s, %.1f s" % (t["ok"], t["sessions"], t["files_ok"],
      t["files"], t["bytes"], t["data_conns"], t["passive_data_conns"], t["active_data_conns"],
      t["by_server"], d["elapsed_s"]))
for e in d["errors"]:
    print("  " + e)' "$out" || {
            echo "$out"
            rc=1
        }
    done
    standin_off
    trap - EXIT
    if ((rc == 0)); then log "ftpselftest: OK"; else log "ftpselftest: FAILED"; fi
    return $rc
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
selftest) cmd_selftest ;;
ftpselftest) cmd_ftpselftest ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
