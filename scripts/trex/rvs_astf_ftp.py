"""TRex ASTF profile: an FTP-like control channel through rvs's FTP helper (NAT).

Each connection is a short control session to the bench-ftp service of config/bench-pci.toml
(VIP 198.18.0.103:21, one server 198.19.0.11): banner, USER, PASS, PASV, 227, QUIT.
The emulated server's 227 names 198.19.0.11; rvs must rewrite it to the VIP and adjust
sequence numbers for the rest of the connection, because the reply grows by one byte.
The client waits for exactly the rewritten reply's length: if rvs did not rewrite it, the
session stalls and TRex counts the connection as timed out. That is the check.

What this tests: control connections per second through the worker and the slow path, the
227 rewrite and sequence adjustment under load (ftp_rewrites, ftp_expect_created).
What it does not: data connections. TRex's programs cannot read the port out of a 227 and
open a connection to it, so every expectation goes unused and expires (keep
service.ftp.expectation_timeout short, as bench-pci.toml does). Data connections need real
clients (lftp, curl against vsftpd, as tests/lab_ftp.rs runs them) or, without a NIC,
`rvs bench --scenario ftp-data`. Not run against rvs yet.

  trex-console> start -f scripts/trex/rvs_astf_ftp.py -m 1 -t cps=20000
Port config as in rvs_astf_http.py.
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

VIP = "198.18.0.103"
SERVER = "198.19.0.11"


def pasv_reply(addr, port):
    h = addr.replace(".", ",")
    return ("227 Entering Passive Mode (%s,%d,%d).\r\n" % (h, port >> 8, port & 255)).encode()


class RvsFtp(object):
    def get_profile(self, tunables=(), **kwargs):
        p = argparse.ArgumentParser(prog="rvs_astf_ftp.py")
        p.add_argument("--cps", type=float, default=10000)
        p.add_argument("--data_port", type=int, default=10000)
        a = p.parse_args(list(tunables))

        dialogue = [  # (client sends, server answers)
            (None, b"220 bench ready\r\n"),
            (b"USER anonymous\r\n", b"331 Please specify the password.\r\n"),
            (b"PASS bench@\r\n", b"230 Login successful.\r\n"),
            (b"PASV\r\n", pasv_reply(SERVER, a.data_port)),
            (b"QUIT\r\n", b"221 Goodbye.\r\n"),
        ]
        client, server = ASTFProgram(), ASTFProgram()
        for ask, answer in dialogue:
            seen = pasv_reply(VIP, a.data_port) if answer.startswith(b"227") else answer
            if ask:
                client.send(ask)
                server.recv(len(ask))
            server.send(answer)
            client.recv(len(seen))  # the client reads what rvs delivers: the VIP's 227

        ip_gen = ASTFIPGen(glob=ASTFIPGenGlobal(ip_offset="1.0.0.0"),
                           dist_client=ASTFIPGenDist(ip_range=["198.18.16.0", "198.18.31.255"],
                                                     distribution="seq"),
                           dist_server=ASTFIPGenDist(ip_range=[VIP, VIP], distribution="seq"))
        tmpl = ASTFTemplate(
            client_template=ASTFTCPClientTemplate(program=client, ip_gen=ip_gen, cps=a.cps, port=21),
            server_template=ASTFTCPServerTemplate(program=server, assoc=ASTFAssociationRule(port=21)))
        return ASTFProfile(default_ip_gen=ip_gen, templates=tmpl)


def register():
    return RvsFtp()
