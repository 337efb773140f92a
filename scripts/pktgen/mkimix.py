#!/usr/bin/env python3
"""Write an IMIX pcap for Pktgen-DPDK's pcap mode (pktgen -s 0:FILE, then imix.pkt).

Simple IMIX, 7:4:1 of 64, 594 and 1518-byte frames (FCS included, as RFC 2544 counts them;
the pcap holds them without FCS), mean 362 bytes. Frame i belongs to the flow of rvs.lua's
plan: client 198.18.16.0 + i mod ADDRS, source port 1024 + i mod PORTS, to VIP:VPORT, so a
TCP pcap only carries flows that a SYN pass (syn.pkt, same --flows) has opened.

Only the Python standard library; checksums are computed here, the NIC offloads nothing.

  scripts/pktgen/mkimix.py --dut-mac 3c:fd:fe:00:00:01 --flows 100000 -o /tmp/imix.pcap
"""

import argparse
import ipaddress
import struct
import sys

IMIX = [64, 64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 594]  # 7 x 64, 4 x 594, 1 x 1518
FCS = 4


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text: str) -> bytes:
    b = bytes(int(x, 16) for x in text.replace("-", ":").split(":"))
    if len(b) != 6:
        raise argparse.ArgumentTypeError(f"{text}: not a MAC address")
    return b


def plan(flows: int, addrs: int) -> tuple:
    """(addresses, ports) as rvs.lua computes them: ports odd, so the pair is coprime."""
    ports = max(1, int(flows / addrs + 0.5))
    if ports % 2 == 0:
        ports += 1
    if addrs & (addrs - 1) or ports > 64511:
        sys.exit("mkimix.py: --addrs must be a power of two and flows/addrs at most 64511")
    return addrs, ports


def frame(dst, src, sip, dip, sport, dport, proto, size) -> bytes:
    l4_len = 20 if proto == "tcp" else 8
    payload = b"\0" * (size - FCS - 14 - 20 - l4_len)
    ip_len = 20 + l4_len + len(payload)
    pnum = 6 if proto == "tcp" else 17
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, pnum, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    pseudo = sip + dip + struct.pack("!BBH", 0, pnum, l4_len + len(payload))
    if proto == "tcp":
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
        l4 = l4[:16] + struct.pack("!H", csum(pseudo + l4 + payload)) + l4[18:]
    else:
        l4 = struct.pack("!HHHH", sport, dport, l4_len + len(payload), 0)
        c = csum(pseudo + l4 + payload) or 0xFFFF
        l4 = l4[:6] + struct.pack("!H", c)
    return dst + src + b"\x08\x00" + ip + l4 + payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dut-mac", type=mac, required=True, help="rvs's client-side port MAC")
    ap.add_argument("--src-mac", type=mac, default=mac("02:00:00:00:00:a0"), help="generator port 0's MAC")
    ap.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--flows", type=int, default=100000, help="the same value as the SYN pass")
    ap.add_argument("--addrs", type=int, default=None, help="client addresses (default as rvs.lua)")
    ap.add_argument("--frames", type=int, default=49152, help="frames in the file, a multiple of 12")
    ap.add_argument("--vip", default="198.18.0.100")
    ap.add_argument("--vport", type=int, default=None, help="default 80 (tcp) or 53 (udp)")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    addrs = a.addrs or (4096 if a.flows >= 1000000 else 256)
    addrs, ports = plan(a.flows, addrs)
    vport = a.vport or (80 if a.proto == "tcp" else 53)
    base = int(ipaddress.IPv4Address("198.18.16.0"))
    dip = ipaddress.IPv4Address(a.vip).packed
    n = max(12, a.frames - a.frames % 12)
    with open(a.output, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            sip = ipaddress.IPv4Address(base + i % addrs).packed
            fr = frame(a.dut_mac, a.src_mac, sip, dip, 1024 + i % ports, vport, a.proto, IMIX[i % 12])
            f.write(struct.pack("<IIII", 0, i, len(fr), len(fr)) + fr)
    covered = min(n, addrs * ports)
    print(f"mkimix.py: {a.output}: {n} frames, {a.proto} to {a.vip}:{vport}, "
          f"{covered} of {addrs * ports} flows ({addrs} addresses x {ports} ports), mean "
          f"{sum(IMIX) / len(IMIX):.1f} B with FCS")


if __name__ == "__main__":
    main()
