#!/usr/bin/env python3
"""peer.py — a real server for the rvs namespace lab (python3 stdlib only).

    peer.py --name srv1 --tcp-port 8080[,80...] --udp-port 9000[,...] [--bind 0.0.0.0]

TCP: per connection, read one line (up to 2 s; a client that sends nothing gets an
empty line part), reply "<name> <client_ip>:<client_port> <line>\\n" and close.
UDP: reply to each datagram with "<name> <client_ip>:<client_port> <payload>", sent from
the address the datagram was sent to (IP_PKTINFO): on a direct-routing server, a request to
the VIP (on lo) is answered from the VIP, not from the interface's primary address.
Each port option takes a comma-separated list: one listener per port.

The client address in the reply is what this server saw: with NAT it must be the
client's own address and port. Exceptions in one exchange never stop the server.
Logs go to stderr. SIGTERM/SIGINT stop it.
"""
import argparse
import logging
import signal
import socket
import socketserver
import struct
import sys
import threading

LINE_MAX = 65536
# Linux's IP_PKTINFO: the socket module of older Pythons (3.11 among them) lacks the name.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
PKTINFO_LEN = 12  # struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst, ipi_addr; }
READ_TIMEOUT = 2.0

log = logging.getLogger("peer")


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        ip, port = self.client_address[:2]
        data = b""
        try:
            sock.settimeout(READ_TIMEOUT)
            while b"\n" not in data and len(data) < LINE_MAX:
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
            line = data.split(b"\n", 1)[0].rstrip(b"\r")
            reply = b"%s %s:%d %s\n" % (self.server.peer_name, ip.encode(), port, line)
            sock.sendall(reply)
            log.debug("tcp %s:%d %r", ip, port, line)
        except Exception as e:  # one bad connection must not matter
            log.warning("tcp %s:%d: %s", ip, port, e)


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        log.warning("tcp %s: unhandled error", client_address, exc_info=True)


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        payload, sock, local = self.request
        ip, port = self.client_address[:2]
        try:
            reply = b"%s %s:%d %s" % (self.server.peer_name, ip.encode(), port, payload)
            if local is not None:
                # Source = the local address the request reached (ipi_spec_dst), any interface.
                info = struct.pack("=i4s4s", 0, local, b"\0\0\0\0")
                sock.sendmsg([reply], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0,
                             self.client_address)
            else:
                sock.sendto(reply, self.client_address)
            log.debug("udp %s:%d %r", ip, port, payload)
        except Exception as e:
            log.warning("udp %s:%d: %s", ip, port, e)


class UDPServer(socketserver.UDPServer):
    # One thread: the reply is immediate, and no thread per datagram under load.
    allow_reuse_address = True
    max_packet_size = 65535

    def server_bind(self):
        super().server_bind()
        self.socket.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)

    def get_request(self):
        data, anc, _flags, addr = self.socket.recvmsg(self.max_packet_size,
                                                      socket.CMSG_SPACE(PKTINFO_LEN))
        local = None
        for level, kind, cdata in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= PKTINFO_LEN:
                local = cdata[4:8]  # ipi_spec_dst: the local address the datagram reached
        return (data, self.socket, local), addr

    def handle_error(self, request, client_address):
        log.warning("udp %s: unhandled error", client_address, exc_info=True)


def ports(text):
    """"8080" or "8080,80": a list of ports; 0 (or an empty list) disables the protocol."""
    out = []
    for x in text.split(","):
        x = x.strip()
        if not x:
            continue
        n = int(x)
        if not 0 <= n <= 65535:
            raise argparse.ArgumentTypeError("bad port %r" % x)
        if n and n not in out:
            out.append(n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="name put at the start of every reply")
    ap.add_argument("--tcp-port", type=ports, default=[8080],
                    help="comma-separated TCP ports; 0 disables TCP")
    ap.add_argument("--udp-port", type=ports, default=[9000],
                    help="comma-separated UDP ports; 0 disables UDP")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every exchange")
    args = ap.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s peer[" + args.name + "] %(levelname)s %(message)s")
    servers = []
    for p in args.tcp_port:
        t = TCPServer((args.bind, p), TCPHandler)
        t.peer_name = args.name.encode()
        servers.append(t)
        log.info("tcp listening on %s:%d", args.bind, p)
    for p in args.udp_port:
        u = UDPServer((args.bind, p), UDPHandler)
        u.peer_name = args.name.encode()
        servers.append(u)
        log.info("udp listening on %s:%d", args.bind, p)
    if not servers:
        ap.error("nothing to serve: both ports are 0")

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
               for s in servers]
    for th in threads:
        th.start()
    while not stop.is_set() and all(th.is_alive() for th in threads):
        stop.wait(0.5)
    for s in servers:
        s.shutdown()
        s.server_close()
    log.info("stopped")


if __name__ == "__main__":
    main()
