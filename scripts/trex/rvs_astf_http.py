"""TRex ASTF (stateful TCP) profile for rvs: real TCP connections through NAT or full NAT.

TRex's TCP stack plays both ends: clients on port 0 connect to the VIP, emulated servers on
port 1 answer, and every reply goes back through rvs. This measures what the STL profiles
cannot: the reply direction, complete handshakes and closes, and connections per second with
rvs's TCP state table and expiry doing their real work. Not run against rvs yet.

  trex-console> start -f scripts/trex/rvs_astf_http.py -m 1 -t cps=100000,size=1024

TRex's port config (/etc/trex_cfg.yaml) for the bench of config/bench-pci.toml:
  port 0: ip 198.18.0.254, default_gw 198.18.0.1   (rvs's client port)
  port 1: ip 198.19.0.254, default_gw 198.19.0.1   (rvs's server port)
rvs sends server-side frames to 198.19.0.11-14 with port 1's MAC (its static neighbours);
TRex's servers take any address and match connections by port (8080 NAT, 8081 full NAT).

Tunables: cps (connections a second, default 10000), size (response bytes, default 1024),
vip (198.18.0.100 NAT, 198.18.0.102 full NAT), server_port (8080 NAT, 8081 full NAT).
DR and TUN are not measured here: the servers' replies do not pass rvs, so they need a
return path from port 1 to port 0 (a router) that a two-port bench does not have.
"""

import argparse

try:  # TRex v2.89 and later
    from trex.astf.api import (ASTFAssociationRule, ASTFIPGen, ASTFIPGenDist, ASTFIPGenGlobal,
                               ASTFProfile, ASTFProgram, ASTFTCPClientTemplate,
                               ASTFTCPServerTemplate, ASTFTemplate)
except ImportError:  # older layout
    from trex_astf_lib.api import (ASTFAssociationRule, ASTFIPGen, ASTFIPGenDist,
                                   ASTFIPGenGlobal, ASTFProfile, ASTFProgram,
                                   ASTFTCPClientTemplate, ASTFTCPServerTemplate, ASTFTemplate)


class RvsHttp(object):
    def get_profile(self, tunables=(), **kwargs):
        p = argparse.ArgumentParser(prog="rvs_astf_http.py")
        p.add_argument("--cps", type=float, default=10000)
        p.add_argument("--size", type=int, default=1024)
        p.add_argument("--vip", default="198.18.0.100")
        p.add_argument("--server_port", type=int, default=8080)
        a = p.parse_args(list(tunables))

        req = b"GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n"
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % a.size + b"x" * a.size

        client = ASTFProgram()
        client.send(req)
        client.recv(len(resp))
        server = ASTFProgram()
        server.recv(len(req))
        server.send(resp)

        # Clients: the 4096 addresses of the STL/pktgen plan; "server" here is the VIP.
        ip_gen = ASTFIPGen(glob=ASTFIPGenGlobal(ip_offset="1.0.0.0"),
                           dist_client=ASTFIPGenDist(ip_range=["198.18.16.0", "198.18.31.255"],
                                                     distribution="seq"),
                           dist_server=ASTFIPGenDist(ip_range=[a.vip, a.vip], distribution="seq"))
        tmpl = ASTFTemplate(
            client_template=ASTFTCPClientTemplate(program=client, ip_gen=ip_gen, cps=a.cps, port=80),
            server_template=ASTFTCPServerTemplate(program=server,
                                                  assoc=ASTFAssociationRule(port=a.server_port)))
        return ASTFProfile(default_ip_gen=ip_gen, templates=tmpl)


def register():
    return RvsHttp()
