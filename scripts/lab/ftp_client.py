#!/usr/bin/env python3
"""ftp_client.py — FTP session driver and checker for the rvs namespace lab (stdlib only).

    ftp_client.py [--vip 203.0.113.100] [--port 21] [--sessions 20] [--files 40]
                  [--modes curl-epsv,curl-pasv,...] [--sources 203.0.113.10,...,203.0.113.17]
                  [--run-dir /tmp/rvs-lab-rvs] [--concurrency N] [--one-per-source]
                  [--timeout 180] [--keep]

Run it inside the client namespace of a lab brought up by scripts/lab.sh (vsftpd on both
servers). It runs SESSIONS FTP sessions at once (at most CONCURRENCY; with --one-per-source,
sessions that share a client address run one after the other), each over ONE control
connection from one of the client addresses (round-robin), with one tool and mode
(rotating over --modes):

  curl-epsv     curl, passive with EPSV (curl's default)
  curl-pasv     curl, passive with PASV; curl ignores the 227's address (its default)
  curl-pasv-ip  curl, PASV honouring the 227's address (--no-ftp-skip-pasv-ip): only works if
                the 227 names the VIP (NAT: rvs rewrote it)
  curl-port     curl, active with PORT (-P - --disable-eprt)
  curl-eprt     curl, active with EPRT (-P -)
  lftp-pasv     lftp, PASV honouring the 227's address
  lftp-port     lftp, active with PORT
  ftplib-mix    Python's ftplib with hand-made data connections, cycling PASV, EPSV, PORT and
                EPRT over one control connection; checks that a 227 names the VIP exactly and
                that active data connections come from the VIP
  ftplib-passive, ftplib-active   the same, cycling PASV and EPSV only, or PORT and EPRT only
                (not in the default rotation)

Every session: reads the banner ("220 rvs-srvN": the server holding its control connection),
downloads id.txt over a data connection and checks that it names the same server, lists the
root and checks that every test file is listed, downloads FILES test files and checks each by
SHA-256 (scripts/lab/ftp_files.py generates the same content), resumes a download of a file
it holds the first part of (REST), and uploads a file to incoming/ and checks, through the run
dir, that it landed byte for byte on the session's server and not on the other. It also checks
that exactly one control connection was used, that every data connection used the mode's
command, and that the session opened exactly FILES + 4 data connections.

Prints ONE JSON object on stdout:
  {"sessions": [{"id", "tool", "mode", "source", "server", "ok", "files", "files_ok", "bytes",
                 "data_conns", "control_conns", "commands": {"PASV", "EPSV", "PORT", "EPRT"},
                 "resumed", "uploaded", "errors": [...], "elapsed_s"}],
   "totals": {"sessions", "ok", "failed", "files", "files_ok", "bytes", "data_conns",
              "passive_data_conns", "active_data_conns", "commands": {...}, "by_server",
              "by_mode": {mode: {"sessions", "ok", "data_conns"}}},
   "errors": [first 20 errors, prefixed by session], "elapsed_s"}
Exits 0 if every session passed every check, 1 if any failed, 2 for bad arguments.
"""
import argparse
import ftplib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftp_files  # noqa: E402  (beside this script)

# The default rotation; ALL_MODES adds the ftplib variants that use one side only.
MODES = ["curl-epsv", "curl-pasv", "curl-pasv-ip", "curl-port", "curl-eprt",
         "lftp-pasv", "lftp-port", "ftplib-mix"]
ALL_MODES = MODES + ["ftplib-passive", "ftplib-active"]
DATA_CMDS = ("PASV", "EPSV", "PORT", "EPRT")
PASSIVE_CMDS = ("PASV", "EPSV")
# What each mode sends before each data connection (ftplib-mix: each in turn).
MODE_CMDS = {
    "curl-epsv": ("EPSV",), "curl-pasv": ("PASV",), "curl-pasv-ip": ("PASV",),
    "curl-port": ("PORT",), "curl-eprt": ("EPRT",),
    "lftp-pasv": ("PASV",), "lftp-port": ("PORT",),
    "ftplib-mix": ("PASV", "EPSV", "PORT", "EPRT"),
    "ftplib-passive": ("PASV", "EPSV"),
    "ftplib-active": ("PORT", "EPRT"),
}
CURL_FLAGS = {
    "curl-epsv": ["--ftp-pasv"],
    "curl-pasv": ["--ftp-pasv", "--disable-epsv"],
    "curl-pasv-ip": ["--ftp-pasv", "--disable-epsv", "--no-ftp-skip-pasv-ip"],
    "curl-port": ["-P", "-", "--disable-eprt"],
    "curl-eprt": ["-P", "-"],
}
TRACE_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d+ ")
BANNER = re.compile(r"^220[ -]rvs-(\S+)")
MAX_ERRORS = 20


class SessionError(Exception):
    pass


class Session:
    """One FTP session's plan and what came of it."""

    def __init__(self, sid, mode, source, files, resume, args, servers, workdir, tag):
        self.id = sid
        self.mode = mode
        self.tool = mode.split("-", 1)[0]
        self.source = source
        self.files = files          # [(local name, remote name, size)]
        self.resume = resume        # (remote name, size, bytes already held)
        self.args = args
        self.servers = servers
        self.dir = workdir
        self.upload_name = "up-%s-s%02d-%s.bin" % (tag, sid, mode)
        self.upload_size = 20000 + 997 * sid
        self.server = None
        self.errors = []
        self.files_ok = 0
        self.bytes = 0
        self.data_conns = 0
        self.control_conns = 0
        self.commands = {c: 0 for c in DATA_CMDS}
        self.resumed = False
        self.uploaded = False
        self.elapsed = 0.0

    def error(self, msg):
        self.errors.append(msg)

    def report(self):
        return {"id": self.id, "tool": self.tool, "mode": self.mode, "source": self.source,
                "server": self.server, "ok": not self.errors, "files": len(self.files),
                "files_ok": self.files_ok, "bytes": self.bytes, "data_conns": self.data_conns,
                "control_conns": self.control_conns, "commands": self.commands,
                "resumed": self.resumed, "uploaded": self.uploaded,
                "errors": self.errors[:MAX_ERRORS], "elapsed_s": round(self.elapsed, 3)}

    # ------------------------------------------------------------ shared checks
    def upload_content(self):
        return ftp_files.content(self.upload_name, self.upload_size)

    def local(self, name):
        return os.path.join(self.dir, name)

    def prepare(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.local("upload.bin"), "wb") as f:
            f.write(self.upload_content())
        name, size, held = self.resume
        with open(self.local("resume-" + name), "wb") as f:
            f.write(ftp_files.content(name, size)[:held])

    def set_server(self, banner_server, control_conns):
        self.control_conns = control_conns
        if control_conns != 1:
            self.error("%d control connections (banners), expected exactly 1" % control_conns)
        if banner_server is None:
            self.error("no 220 rvs-<server> banner")
        elif banner_server not in self.servers:
            self.error("banner names unknown server %r" % banner_server)
        self.server = banner_server

    def check_id(self, data):
        if data is None:
            return self.error("id.txt: not downloaded")
        got = data.decode(errors="replace").strip()
        if got != self.server:
            self.error("id.txt names %r but the banner came from %r" % (got, self.server))

    def check_listing(self, data):
        if data is None:
            return self.error("listing: not downloaded")
        text = data.decode(errors="replace")
        names = set()
        for line in text.splitlines():
            parts = line.split()
            if parts:
                names.add(parts[-1])
        missing = [n for n, _ in ftp_files.files() if n not in names] + \
            [n for n in ("id.txt", "incoming") if n not in names]
        if missing:
            self.error("listing lacks %d names, first %s" % (len(missing), missing[:3]))

    def check_file(self, name, size, data, label=None):
        label = label or name
        if data is None:
            return self.error("%s: not downloaded" % label)
        want = ftp_files.content(name, size)
        if len(data) != size:
            return self.error("%s: %d bytes, expected %d" % (label, len(data), size))
        if hashlib.sha256(data).digest() != hashlib.sha256(want).digest():
            return self.error("%s: SHA-256 mismatch" % label)
        return True

    def check_downloads(self, read):
        """read(local name) -> bytes or None, for every planned download."""
        for local, remote, size in self.files:
            if self.check_file(remote, size, read(local), local):
                self.files_ok += 1
                self.bytes += size
        name, size, held = self.resume
        if self.check_file(name, size, read("resume-" + name), "resume of " + name):
            self.bytes += size - held
        else:
            self.resumed = False

    def check_upload(self):
        if self.server is None:
            return self.error("upload: no server to look on")
        want = self.upload_content()
        for srv in self.servers:
            path = os.path.join(self.args.run_dir, "ftp", srv, "root", "incoming",
                                self.upload_name)
            there = os.path.exists(path)
            if srv == self.server:
                if not there:
                    return self.error("upload: %s is not on %s (%s)" % (self.upload_name, srv,
                                                                       path))
                with open(path, "rb") as f:
                    got = f.read()
                if got != want:
                    return self.error("upload: %s on %s has %d bytes, differs from the %d sent"
                                      % (self.upload_name, srv, len(got), len(want)))
            elif there:
                return self.error("upload: %s landed on %s, but the session's server is %s"
                                  % (self.upload_name, srv, self.server))
        self.uploaded = True
        self.bytes += len(want)

    def check_commands(self):
        """Every data connection opened with the mode's command(s), one command each."""
        want = MODE_CMDS[self.mode]
        expected = len(self.files) + 4
        if self.data_conns != expected:
            self.error("%d data connections, expected %d (id, list, %d files, resume, upload)"
                       % (self.data_conns, expected, len(self.files)))
        used = sum(self.commands[c] for c in want)
        others = {c: n for c, n in self.commands.items() if c not in want and n}
        if others:
            self.error("data commands %s used, the mode uses only %s" % (others, "/".join(want)))
        if used != self.data_conns:
            self.error("%d %s commands for %d data connections" % (used, "/".join(want),
                                                                 self.data_conns))


def read_local(sess):
    def read(name):
        try:
            with open(sess.local(name), "rb") as f:
                return f.read()
        except OSError:
            return None
    return read


# ------------------------------------------------------------------ curl
def run_curl(sess):
    a = sess.args
    url = "ftp://%s:%d/" % (a.vip, a.port)
    common = ["-v", "--trace-time", "-sS", "--interface", sess.source, "--connect-timeout", "10",
              "--max-time", str(a.timeout), "--ftp-method", "multicwd",
              "-w", "TRANSFER %{response_code} %{size_download} %{size_upload} %{url_effective}\\n"]
    common += CURL_FLAGS[sess.mode]
    argv = ["curl"] + common + [url + "id.txt", "-o", sess.local("id.txt"),
                                url, "-o", sess.local("list.txt")]
    for local, remote, _ in sess.files:
        argv += [url + remote, "-o", sess.local(local)]
    # One operation per --next: a resumed download, then an upload, on the same connection
    # (curl's connection cache outlives --next).
    name, _, held = sess.resume
    argv += ["--next"] + common + ["-C", "-", url + name, "-o", sess.local("resume-" + name)]
    argv += ["--next"] + common + ["-T", sess.local("upload.bin"),
                                   url + "incoming/" + sess.upload_name]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=a.timeout + 15)
    except subprocess.TimeoutExpired:
        sess.error("curl: timed out after %d s" % (a.timeout + 15))
        return
    log = p.stderr.decode(errors="replace")
    with open(sess.local("curl.log"), "w") as f:
        f.write(log)
    # --trace-time puts "HH:MM:SS.ffffff " before every verbose line.
    log = "\n".join(TRACE_TIME.sub("", ln) for ln in log.splitlines())
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        tail = [ln for ln in log.splitlines() if ln.startswith("curl:")]
        sess.error("curl exited %d: %s" % (p.returncode, "; ".join(tail[:3])))
    bad = [ln for ln in out.splitlines() if ln.startswith("TRANSFER ")
           and ln.split()[1] not in ("226", "250")]
    if bad:
        sess.error("%d transfers did not end in 226, first %r" % (len(bad), bad[0]))
    banners = [m.group(1) for m in (BANNER.match(ln[2:]) for ln in log.splitlines()
                                    if ln.startswith("< 220")) if m]
    sess.set_server(banners[0] if banners else None,
                    sum(1 for ln in log.splitlines() if ln.startswith("< 220")))
    for ln in log.splitlines():
        if ln.startswith("> "):
            cmd = ln[2:].split(" ", 1)[0]
            if cmd in sess.commands:
                sess.commands[cmd] += 1
            if cmd == "REST" and ln.split()[-1] == str(held):
                sess.resumed = True
        elif ln.startswith("< 150") or ln.startswith("< 125"):
            sess.data_conns += 1
    if not sess.resumed:
        sess.error("curl -C -: no REST %d sent" % held)
    read = read_local(sess)
    sess.check_id(read("id.txt"))
    sess.check_listing(read("list.txt"))
    sess.check_downloads(read)
    sess.check_upload()
    sess.check_commands()


# ------------------------------------------------------------------ lftp
def run_lftp(sess):
    a = sess.args
    passive = sess.mode == "lftp-pasv"
    dbg = sess.local("lftp.log")
    lines = [
        "set cmd:fail-exit yes",
        "set net:socket-bind-ipv4 %s" % sess.source,
        "set net:timeout 15",
        "set net:max-retries 1",
        "set net:persist-retries 0",
        "set net:reconnect-interval-base 1",
        "set net:connection-limit 1",
        "set ftp:passive-mode %s" % ("on" if passive else "off"),
        "set ftp:prefer-epsv off",
        # Honour the 227's address exactly: it must be the VIP (rvs rewrote it).
        "set ftp:fix-pasv-address off",
        "set ftp:ignore-pasv-address off",
        "set ftp:ssl-allow off",
        "set xfer:clobber on",
        "set xfer:use-temp-file off",
        "debug -o %s 9" % dbg,
        "open -u anonymous,lab@ ftp://%s:%d" % (a.vip, a.port),
        "get id.txt -o %s" % sess.local("id.txt"),
        "ls > %s" % sess.local("list.txt"),
    ]
    for local, remote, _ in sess.files:
        lines.append("get %s -o %s" % (remote, sess.local(local)))
    name, _, held = sess.resume
    lines.append("get -c %s -o %s" % (name, sess.local("resume-" + name)))
    lines.append("put %s -o incoming/%s" % (sess.local("upload.bin"), sess.upload_name))
    lines.append("bye")
    script = sess.local("session.lftp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        p = subprocess.run(["lftp", "-f", script], capture_output=True, timeout=a.timeout + 15,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        sess.error("lftp: timed out after %d s" % (a.timeout + 15))
        return
    if p.returncode != 0:
        sess.error("lftp exited %d: %s" % (p.returncode,
                                           p.stderr.decode(errors="replace").strip()[:300]))
    try:
        with open(dbg, errors="replace") as f:
            log = f.read()
    except OSError:
        log = ""
    sent, got = [], []
    for ln in log.splitlines():
        ln = ln.strip()
        if ln.startswith("---> "):
            sent.append(ln[5:])
        elif ln.startswith("<--- "):
            got.append(ln[5:])
    banners = [m.group(1) for m in (BANNER.match(r) for r in got if r.startswith("220")) if m]
    sess.set_server(banners[0] if banners else None,
                    sum(1 for r in got if r.startswith("220")))
    for c in sent:
        cmd = c.split(" ", 1)[0]
        if cmd in sess.commands:
            sess.commands[cmd] += 1
        if cmd == "REST" and c.split()[-1] == str(held):
            sess.resumed = True
    sess.data_conns = sum(1 for r in got if r.startswith("150") or r.startswith("125"))
    if not sess.resumed:
        sess.error("lftp get -c: no REST %d sent" % held)
    read = read_local(sess)
    sess.check_id(read("id.txt"))
    sess.check_listing(read("list.txt"))
    sess.check_downloads(read)
    sess.check_upload()
    sess.check_commands()


# ------------------------------------------------------------------ ftplib
def parse227(resp):
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", resp)
    if not resp.startswith("227") or not m:
        raise SessionError("bad 227 reply %r" % resp)
    n = [int(x) for x in m.groups()]
    return "%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]


class MixClient:
    """ftplib with data connections made by hand, so every command and address is checked."""

    def __init__(self, sess):
        self.sess = sess
        self.vip = sess.args.vip
        self.t = sess.args.data_timeout
        self.ftp = ftplib.FTP(timeout=self.t, source_address=(sess.source, 0))
        self.n = 0

    def transfer(self, cmd, upload=None, rest=None):
        """Runs one data command (RETR x, LIST, STOR x); returns the bytes received."""
        s = self.sess
        cycle = MODE_CMDS[s.mode]
        kind = cycle[self.n % len(cycle)]
        self.n += 1
        ftp = self.ftp
        listener = conn = None
        try:
            if kind in PASSIVE_CMDS:
                if kind == "PASV":
                    host, port = parse227(ftp.sendcmd("PASV"))
                    if host != self.vip:
                        raise SessionError("227 names %s, not the VIP %s (not rewritten?)"
                                           % (host, self.vip))
                else:
                    _, port = ftplib.parse229(ftp.sendcmd("EPSV"), (self.vip, 0))
                s.commands[kind] += 1
                conn = socket.create_connection((self.vip, port), timeout=self.t,
                                                source_address=(s.source, 0))
            else:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind((s.source, 0))
                listener.listen(1)
                listener.settimeout(self.t)
                port = listener.getsockname()[1]
                if kind == "PORT":
                    ftp.sendport(s.source, port)
                else:
                    ftp.sendeprt(s.source, port)
                s.commands[kind] += 1
            if rest is not None:
                r = ftp.sendcmd("REST %d" % rest)
                if not r.startswith("350"):
                    raise SessionError("REST %d: %r" % (rest, r))
            ftp.putcmd(cmd)
            resp = ftp.getresp()
            if not resp.startswith(("150", "125")):
                raise SessionError("%s: %r" % (cmd, resp))
            s.data_conns += 1
            if listener is not None:
                conn, peer = listener.accept()
                conn.settimeout(self.t)
                if peer[0] != self.vip:
                    raise SessionError("active data connection from %s:%d, not the VIP %s"
                                       % (peer[0], peer[1], self.vip))
            data = b""
            if upload is not None:
                conn.sendall(upload)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(4096):
                    pass
            else:
                chunks = []
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
                data = b"".join(chunks)
            conn.close()
            conn = None
            ftp.voidresp()
            return data
        finally:
            for x in (conn, listener):
                if x is not None:
                    x.close()

    def run(self):
        s = self.sess
        ftp = self.ftp
        welcome = ftp.connect(self.vip, s.args.port)
        m = BANNER.match(welcome)
        s.set_server(m.group(1) if m else None, 1)
        ftp.login("anonymous", "lab@")
        ftp.voidcmd("TYPE I")
        s.check_id(self.transfer("RETR id.txt"))
        s.check_listing(self.transfer("LIST"))
        got = {}
        for local, remote, _ in s.files:
            got[local] = self.transfer("RETR " + remote)
        name, size, held = s.resume
        got["resume-" + name] = ftp_files.content(name, size)[:held] + \
            self.transfer("RETR " + name, rest=held)
        s.resumed = True
        self.transfer("STOR incoming/" + s.upload_name, upload=s.upload_content())
        try:
            ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            pass
        s.check_downloads(got.get)
        s.check_upload()
        s.check_commands()


def run_ftplib(sess):
    c = MixClient(sess)
    try:
        c.run()
    except (OSError, EOFError, ftplib.Error, SessionError) as e:
        sess.error("ftplib after %d data connections: %s: %s" % (sess.data_conns,
                                                                 type(e).__name__, e))
    finally:
        c.ftp.close()


RUNNERS = {"curl": run_curl, "lftp": run_lftp, "ftplib": run_ftplib}


SOURCE_LOCKS = {}


def run_session(sess):
    # DR pins a client address's next data connection, whatever its port: sessions sharing an
    # address at once could take each other's pins (--one-per-source keeps them apart).
    lock = SOURCE_LOCKS.get(sess.source) if sess.args.one_per_source else None
    if lock is not None:
        lock.acquire()
    t0 = time.monotonic()
    try:
        sess.prepare()
        RUNNERS[sess.tool](sess)
    except Exception as e:  # a driver bug must show up as a failed session, not a hang
        sess.error("driver: %s: %s" % (type(e).__name__, e))
    finally:
        if lock is not None:
            lock.release()
    sess.elapsed = time.monotonic() - t0
    if not sess.args.keep and not sess.errors:
        shutil.rmtree(sess.dir, ignore_errors=True)
    return sess


def plan(args, workdir, tag):
    catalogue = ftp_files.files()
    big = [(n, s) for n, s in catalogue if s >= 100000]
    sessions = []
    for i in range(args.sessions):
        source = args.sources[i % len(args.sources)]
        # Every mode within the first len(modes) sessions; after each sources x modes round
        # the pairing shifts, so a source sees several modes over the sessions.
        rnd = len(args.sources) * len(args.modes)
        mode = args.modes[(i + i // rnd) % len(args.modes)]
        start = (i * 7) % len(catalogue)
        files = []
        for k in range(args.files):
            name, size = catalogue[(start + k) % len(catalogue)]
            files.append(("%03d-%s" % (k, name), name, size))
        rname, rsize = big[i % len(big)]
        resume = (rname, rsize, rsize // 3 + 17 * i + 1)
        sessions.append(Session(i, mode, source, files, resume, args, args.servers,
                                os.path.join(workdir, "s%02d" % i), tag))
    return sessions


def csv(s):
    return [x for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description="FTP session driver for the rvs lab")
    ap.add_argument("--vip", default="203.0.113.100")
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--modes", type=csv, default=MODES)
    ap.add_argument("--sources", type=csv,
                    default=["203.0.113.%d" % i for i in range(10, 18)])
    ap.add_argument("--servers", type=csv, default=["srv1", "srv2"])
    ap.add_argument("--run-dir", default=os.environ.get(
        "LAB_RUN_DIR", "/tmp/rvs-lab-%s" % os.environ.get("RVS_LAB", "rvs")))
    ap.add_argument("--concurrency", type=int, default=0, help="default: every session at once")
    ap.add_argument("--one-per-source", action="store_true",
                    help="sessions that share a client address run one after the other")
    ap.add_argument("--timeout", type=int, default=180, help="seconds for one whole session")
    ap.add_argument("--data-timeout", type=float, default=15.0,
                    help="seconds for one ftplib socket operation")
    ap.add_argument("--keep", action="store_true", help="keep the sessions' local files")
    args = ap.parse_args()
    bad = [m for m in args.modes if m not in ALL_MODES]
    if bad or not args.modes:
        ap.error("unknown modes %s (known: %s)" % (bad, ",".join(ALL_MODES)))
    if args.sessions < 1 or args.files < 1 or not args.sources:
        ap.error("--sessions and --files must be positive, --sources non-empty")
    ftp_root = os.path.join(args.run_dir, "ftp")
    if not os.path.isdir(ftp_root):
        ap.error("%s does not exist: is the lab up with vsftpd (--run-dir)?" % ftp_root)
    # The servers must hold what this script expects (same generator, same version).
    try:
        with open(os.path.join(ftp_root, "manifest.json")) as f:
            if json.load(f) != ftp_files.manifest():
                ap.error("%s/manifest.json differs from ftp_files.py's files" % ftp_root)
    except (OSError, ValueError) as e:
        ap.error("cannot read the manifest: %s" % e)
    tag = "%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000000)
    workdir = tempfile.mkdtemp(prefix="rvs-ftp-")
    t0 = time.monotonic()
    sessions = plan(args, workdir, tag)
    for src in args.sources:
        SOURCE_LOCKS[src] = threading.Lock()
    workers = args.concurrency or len(sessions)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(run_session, sessions))
    elapsed = time.monotonic() - t0
    if not args.keep and all(not s.errors for s in done):
        shutil.rmtree(workdir, ignore_errors=True)

    reports = [s.report() for s in done]
    totals = {"sessions": len(done), "ok": sum(r["ok"] for r in reports),
              "files": sum(r["files"] for r in reports),
              "files_ok": sum(r["files_ok"] for r in reports),
              "bytes": sum(r["bytes"] for r in reports),
              "data_conns": sum(r["data_conns"] for r in reports),
              "commands": {c: sum(r["commands"][c] for r in reports) for c in DATA_CMDS},
              "by_server": {}, "by_mode": {}}
    totals["failed"] = totals["sessions"] - totals["ok"]
    totals["passive_data_conns"] = sum(totals["commands"][c] for c in PASSIVE_CMDS)
    totals["active_data_conns"] = totals["data_conns"] - totals["passive_data_conns"]
    for r in reports:
        srv = r["server"] or "unknown"
        totals["by_server"][srv] = totals["by_server"].get(srv, 0) + 1
        m = totals["by_mode"].setdefault(r["mode"], {"sessions": 0, "ok": 0, "data_conns": 0})
        m["sessions"] += 1
        m["ok"] += int(r["ok"])
        m["data_conns"] += r["data_conns"]
    errors = ["s%02d %s %s: %s" % (r["id"], r["mode"], r["source"], e)
              for r in reports for e in r["errors"]][:MAX_ERRORS]
    out = {"sessions": reports, "totals": totals, "errors": errors,
           "elapsed_s": round(elapsed, 3)}
    if totals["failed"] and not args.keep:
        out["kept"] = workdir
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if totals["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
