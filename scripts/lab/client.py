#!/usr/bin/env python3
"""client.py — traffic generator and checker for the rvs namespace lab (stdlib only).

    client.py --vip 203.0.113.100 --tcp-port 80 --udp-port 9000 --count 200 \\
              --sources 203.0.113.10,...,203.0.113.17 [--timeout 3] [--udp-retries 3] \\
              [--proto tcp|udp|both] [--servers srv1,srv2] [--concurrency 8]

Run it inside the client namespace. It makes COUNT TCP connections, each from the next
source address round-robin (bind((src, 0))), sends "hello <i>\\n" and checks that the reply
is "<name> <src>:<srcport> hello <i>" with <name> one of --servers and src:srcport its own
address: that proves the balancer kept the client address (NAT) and reached a real server.
Then COUNT UDP exchanges likewise, each on a fresh socket (a new flow), resent on the same
socket up to --udp-retries times after a timeout; the reply must come from VIP:port.

Prints ONE JSON object on stdout:
  {"tcp": {"sent", "ok", "failed", "by_server": {name: n}},
   "udp": {"sent", "ok", "failed", "by_server": {...}, "retries", "flows"},  (both: "flows" =
   distinct source address:port pairs answered)
   "errors": [first 10 error strings], "elapsed_s": seconds}
Exits 0 even when exchanges fail (the caller asserts); non-zero only for bad arguments.
"""
import argparse
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MAX_ERRORS = 10


class Results:
    def __init__(self, servers):
        self.lock = threading.Lock()
        self.errors = []
        self.flows = {"tcp": set(), "udp": set()}
        self.stats = {
            "tcp": {"sent": 0, "ok": 0, "failed": 0, "by_server": {s: 0 for s in servers}},
            "udp": {"sent": 0, "ok": 0, "failed": 0, "by_server": {s: 0 for s in servers},
                    "retries": 0},
        }

    def record(self, proto, ok, server=None, error=None, retries=0, flow=None):
        with self.lock:
            if flow is not None:
                self.flows[proto].add(flow)
            st = self.stats[proto]
            st["sent"] += 1
            if proto == "udp":
                st["retries"] += retries
            if ok:
                st["ok"] += 1
                st["by_server"][server] = st["by_server"].get(server, 0) + 1
            else:
                st["failed"] += 1
                if error is not None and len(self.errors) < MAX_ERRORS:
                    self.errors.append(error)


def check_reply(text, servers, src, sport, payload, seen_from=None):
    """Return (server_name, None) if the reply is right, else (None, reason).

    seen_from: for full NAT, the addresses the server may see instead of the client's own
    (rvs's local addresses); the port is then rvs's too and is not checked."""
    parts = text.split(" ", 2)
    if len(parts) != 3:
        return None, "malformed reply %r" % text
    name, addr, rest = parts
    if name not in servers:
        return None, "unknown server %r in reply %r" % (name, text)
    if seen_from:
        if addr.rsplit(":", 1)[0] not in seen_from:
            return None, "%s saw %s, expected one of the local addresses %s" % (
                name, addr, ",".join(seen_from))
    elif addr != "%s:%d" % (src, sport):
        return None, "%s saw client %s, expected %s:%d (client address not preserved)" % (
            name, addr, src, sport)
    if rest != payload:
        return None, "%s echoed %r, expected %r" % (name, rest, payload)
    return name, None


def tcp_one(i, args, res):
    src = args.sources[i % len(args.sources)]
    payload = "hello %d" % i
    sport = 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(args.timeout)
        s.bind((src, 0))
        sport = s.getsockname()[1]
        s.connect((args.vip, args.tcp_port))
        s.sendall((payload + "\n").encode())
        data = b""
        deadline = time.monotonic() + args.timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for the reply line")
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if not data:
            raise ConnectionError("connection closed without a reply")
        text = data.split(b"\n", 1)[0].rstrip(b"\r").decode(errors="replace")
        name, err = check_reply(text, args.servers, src, sport, payload, args.seen_from)
        if err:
            res.record("tcp", False, error="tcp #%d %s:%d: %s" % (i, src, sport, err))
        else:
            res.record("tcp", True, server=name, flow=(src, sport))
    except Exception as e:
        res.record("tcp", False, error="tcp #%d %s:%d -> %s:%d: %s: %s" % (
            i, src, sport, args.vip, args.tcp_port, type(e).__name__, e))
    finally:
        s.close()


def udp_one(i, args, res):
    src = args.sources[i % len(args.sources)]
    payload = "hello %d" % i
    sport = 0
    retries = 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        sport = s.getsockname()[1]
        dst = (args.vip, args.udp_port)
        last = "no reply"
        for attempt in range(args.udp_retries + 1):
            if attempt:
                retries += 1
            s.sendto(payload.encode(), dst)
            deadline = time.monotonic() + args.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    last = "timed out after %d attempt(s)" % (attempt + 1)
                    break
                s.settimeout(left)
                try:
                    data, frm = s.recvfrom(65535)
                except socket.timeout:
                    continue
                if frm[:2] != dst:
                    last = "reply from %s:%d, expected %s:%d" % (frm[0], frm[1], dst[0], dst[1])
                    res_error = "udp #%d %s:%d: %s" % (i, src, sport, last)
                    res.record("udp", False, error=res_error, retries=retries)
                    return
                text = data.decode(errors="replace").rstrip("\r\n")
                name, err = check_reply(text, args.servers, src, sport, payload, args.seen_from)
                if err:
                    res.record("udp", False, error="udp #%d %s:%d: %s" % (i, src, sport, err),
                               retries=retries)
                else:
                    res.record("udp", True, server=name, retries=retries, flow=(src, sport))
                return
        res.record("udp", False, error="udp #%d %s:%d -> %s:%d: %s" % (
            i, src, sport, dst[0], dst[1], last), retries=retries)
    except Exception as e:
        res.record("udp", False, error="udp #%d %s:%d -> %s:%d: %s: %s" % (
            i, src, sport, args.vip, args.udp_port, type(e).__name__, e), retries=retries)
    finally:
        s.close()


def csv(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vip", default="203.0.113.100")
    ap.add_argument("--tcp-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=9000)
    ap.add_argument("--count", type=int, default=200, help="exchanges per protocol")
    ap.add_argument("--sources", type=csv,
                    default=["203.0.113.%d" % n for n in range(10, 18)],
                    help="comma-separated client source addresses, used round-robin")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per exchange (per UDP try)")
    ap.add_argument("--udp-retries", type=int, default=3)
    ap.add_argument("--proto", choices=("tcp", "udp", "both"), default="both")
    ap.add_argument("--servers", type=csv, default=["srv1", "srv2"],
                    help="names a reply may carry")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seen-from", type=csv, default=None,
                    help="full NAT: addresses the servers see instead of the client's (comma list)")
    args = ap.parse_args()
    if not args.sources:
        ap.error("--sources is empty")
    if args.count < 0 or args.concurrency < 1 or args.udp_retries < 0:
        ap.error("bad --count/--concurrency/--udp-retries")

    res = Results(args.servers)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        if args.proto in ("tcp", "both"):
            list(pool.map(lambda i: tcp_one(i, args, res), range(args.count)))
        if args.proto in ("udp", "both"):
            list(pool.map(lambda i: udp_one(i, args, res), range(args.count)))
    out = dict(res.stats)
    for proto in ("tcp", "udp"):
        # Distinct (source address, source port) pairs that got an answer: the kernel may reuse
        # a port, and the same 5-tuple within the flow timeout is one flow for a load balancer.
        out[proto]["flows"] = len(res.flows[proto])
    out["errors"] = res.errors
    out["elapsed_s"] = round(time.monotonic() - t0, 3)
    json.dump(out, sys.stdout, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
