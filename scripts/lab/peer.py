#!/usr/bin/env python3
"""peer.py — a real server for the rvs namespace lab (python3 stdlib only).

    peer.py --name srv1 --tcp-port 8080 --udp-port 9000 [--bind 0.0.0.0]

TCP: per connection, read one line (up to 2 s; a client that sends nothing gets an
empty line part), reply "<name> <client_ip>:<client_port> <line>\\n" and close.
UDP: reply to each datagram with "<name> <client_ip>:<client_port> <payload>".

The client address in the reply is what this server saw: with NAT it must be the
client's own address and port. Exceptions in one exchange never stop the server.
Logs go to stderr. SIGTERM/SIGINT stop it.
"""
import argparse
import logging
import signal
import socket
import socketserver
import sys
import threading

LINE_MAX = 65536
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
        payload, sock = self.request
        ip, port = self.client_address[:2]
        try:
            reply = b"%s %s:%d %s" % (self.server.peer_name, ip.encode(), port, payload)
            sock.sendto(reply, self.client_address)
            log.debug("udp %s:%d %r", ip, port, payload)
        except Exception as e:
            log.warning("udp %s:%d: %s", ip, port, e)


class UDPServer(socketserver.UDPServer):
    # One thread: the reply is immediate, and no thread per datagram under load.
    allow_reuse_address = True
    max_packet_size = 65535

    def handle_error(self, request, client_address):
        log.warning("udp %s: unhandled error", client_address, exc_info=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="name put at the start of every reply")
    ap.add_argument("--tcp-port", type=int, default=8080, help="0 disables TCP")
    ap.add_argument("--udp-port", type=int, default=9000, help="0 disables UDP")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every exchange")
    args = ap.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s peer[" + args.name + "] %(levelname)s %(message)s")
    servers = []
    if args.tcp_port:
        t = TCPServer((args.bind, args.tcp_port), TCPHandler)
        t.peer_name = args.name.encode()
        servers.append(t)
        log.info("tcp listening on %s:%d", args.bind, args.tcp_port)
    if args.udp_port:
        u = UDPServer((args.bind, args.udp_port), UDPHandler)
        u.peer_name = args.name.encode()
        servers.append(u)
        log.info("udp listening on %s:%d", args.bind, args.udp_port)
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
