"""TRex STL (stateless) profile for rvs: the bench of config/bench-pci*.toml.

Port 0 sends client -> VIP; port 1 (the servers) only counts. Not run against rvs yet.

  trex-console> start -f scripts/trex/rvs_stl.py -p 0 -m 10mpps -t scenario=syn,flows=1000000
  trex-console> start -f scripts/trex/rvs_stl.py -p 0 -m 10mpps -t scenario=ack,flows=1000000

Tunables (-t name=value,...):
  scenario  syn    one SYN for each flow, then stop (open the flows; -m sets its rate)
            ack    the same flows, ACK only, continuous (after syn; NAT, DR, TUN, FNAT)
            udp    UDP flows, continuous (the first datagram makes the flow)
            imix   ACKs (or UDP with proto=udp) in 64/594/1518-byte frames, 28:16:4 by rate
            storm  a new connection in every packet (rvs: config/bench-pci-syn.toml)
  flows     flows (default 100000); addrs: client addresses (default 256, 4096 from 1M)
  size      frame size with FCS, 64-1518 (default 64; not for imix)
  vip       198.18.0.100 nat/dr (default), 198.18.0.101 tun, 198.18.0.102 fnat
  vport     default 80 (tcp) or 53 (udp); proto: tcp or udp (imix only)

The flow plan is scripts/pktgen's: client 198.18.16.0 + i mod ADDRS, source port
1024 + i mod PORTS (PORTS odd). TRex's tuple generator walks the same ADDRS x PORTS
pairs; TRex splits it between its cores, so check rvs's flows_created after the SYN pass.
"""

import argparse

try:  # TRex v2.89 and later
    from trex.stl.api import (STLPktBuilder, STLProfile, STLStream, STLTXCont,
                              STLTXSingleBurst, STLVM, CTRexVmInsFixHwCs, Ether, IP, TCP, UDP)
except ImportError:  # older layout
    from trex_stl_lib.api import (STLPktBuilder, STLProfile, STLStream, STLTXCont,
                                  STLTXSingleBurst, STLVM, CTRexVmInsFixHwCs, Ether, IP, TCP, UDP)

CLIENT_BASE = "198.18.16.0"
STORM = ("198.18.128.0", "198.18.255.255", 1024, 65534)  # 32768 x 64511 = 2.1G tuples
IMIX = [(64, 28), (594, 16), (1518, 4)]  # TRex's stock IMIX rates, frame sizes with FCS
FCS = 4


def ip_add(base, n):
    a, b, c, d = (int(x) for x in base.split("."))
    v = (a << 24 | b << 16 | c << 8 | d) + n
    return ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))


def plan(flows, addrs):
    """Client addresses and ports, as scripts/pktgen/rvs.lua computes them."""
    addrs = addrs or (4096 if flows >= 1000000 else 256)
    ports = max(1, int(flows / addrs + 0.5))
    if ports % 2 == 0:
        ports += 1
    if addrs & (addrs - 1) or ports > 64511:
        raise ValueError("addrs must be a power of two and flows/addrs at most 64511")
    return addrs, ports


class RvsStl(object):
    def _args(self, tunables):
        p = argparse.ArgumentParser(prog="rvs_stl.py")
        p.add_argument("--scenario", choices=["syn", "ack", "udp", "imix", "storm"], default="ack")
        p.add_argument("--flows", type=int, default=100000)
        p.add_argument("--addrs", type=int, default=0)
        p.add_argument("--size", type=int, default=64)
        p.add_argument("--vip", default="198.18.0.100")
        p.add_argument("--vport", type=int, default=0)
        p.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
        return p.parse_args(tunables)

    def _vm(self, l4, ip_min, ip_max, port_min, port_max, flows):
        vm = STLVM()
        vm.tuple_var(name="t", ip_min=ip_min, ip_max=ip_max, port_min=port_min,
                     port_max=port_max, limit_flows=flows)
        vm.write(fv_name="t.ip", pkt_offset="IP.src")
        vm.write(fv_name="t.port", pkt_offset=l4 + ".sport")
        l4_type = CTRexVmInsFixHwCs.L4_TYPE_TCP if l4 == "TCP" else CTRexVmInsFixHwCs.L4_TYPE_UDP
        vm.fix_chksum_hw(l3_offset="IP", l4_offset=l4, l4_type=l4_type)
        return vm

    def _pkt(self, vip, vport, proto, flags, size, vm):
        l4 = TCP(sport=1024, dport=vport, flags=flags) if proto == "tcp" else UDP(sport=1024, dport=vport)
        base = Ether() / IP(src=CLIENT_BASE, dst=vip, ttl=64) / l4
        pad = max(0, size - FCS - len(base))
        return STLPktBuilder(pkt=base / ("\0" * pad), vm=vm)

    def get_streams(self, tunables=(), **kwargs):
        a = self._args(list(tunables))
        proto = "udp" if a.scenario == "udp" else ("tcp" if a.scenario != "imix" else a.proto)
        vport = a.vport or (53 if proto == "udp" else 80)
        l4 = "TCP" if proto == "tcp" else "UDP"
        if a.scenario == "storm":
            ip_min, ip_max, port_min, port_max = STORM
            flows = 0  # no limit: the whole key space
        else:
            addrs, ports = plan(a.flows, a.addrs)
            ip_min, ip_max = CLIENT_BASE, ip_add(CLIENT_BASE, addrs - 1)
            port_min, port_max = 1024, 1024 + ports - 1
            flows = addrs * ports

        def vm():
            return self._vm(l4, ip_min, ip_max, port_min, port_max, flows)

        if a.scenario == "syn":
            pkt = self._pkt(a.vip, vport, "tcp", "S", a.size, vm())
            return [STLStream(packet=pkt, mode=STLTXSingleBurst(pps=1000000, total_pkts=flows))]
        if a.scenario == "imix":
            flags = "A" if proto == "tcp" else None
            return [STLStream(packet=self._pkt(a.vip, vport, proto, flags, size, vm()),
                              mode=STLTXCont(pps=pps)) for size, pps in IMIX]
        flags = {"ack": "A", "storm": "S", "udp": None}[a.scenario]
        return [STLStream(packet=self._pkt(a.vip, vport, proto, flags, a.size, vm()),
                          mode=STLTXCont(pps=1000000))]


def register():
    return RvsStl()


if __name__ == "__main__":  # print what the profile would make, without TRex
    print(STLProfile(RvsStl().get_streams(["--scenario", "ack"])).dump_to_yaml())
