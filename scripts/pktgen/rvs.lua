-- rvs.lua: set up Pktgen-DPDK (23.x) port 0 for an rvs benchmark; port 1 only counts.
--
-- Loaded at start by scripts/pktgen/run.sh (pktgen ... -f scripts/pktgen/rvs.lua), which also
-- sets the environment below. This script only configures: it sends nothing. Then, at the
-- Pktgen prompt, load the phase files it names (syn.pkt, ack.pkt, storm.pkt, go.pkt, imix.pkt).
--
-- Environment (defaults in brackets):
--   RVS_DUT_MAC0   rvs's client-side port MAC (required: rvs drops frames for other MACs)
--   RVS_SCENARIO   nat | udp | storm [nat]
--                  nat: TCP flows, a SYN pass then ACKs (the same traffic serves DR/TUN/FNAT;
--                       only rvs's config and RVS_VIP change)
--                  udp: UDP flows, no handshake; storm: a SYN for every packet
--   RVS_FLOWS      flows wanted [100000]; the script prints the exact number it makes
--   RVS_ADDRS      client addresses, a power of two [256, or 4096 from 1M flows]
--   RVS_SIZE       frame size in bytes, FCS included, 64-1518 [64]
--   RVS_RATE       percent of line rate [100]
--   RVS_VIP        [198.18.0.100]; 198.18.0.101 = TUN, 198.18.0.102 = FNAT in config/bench-pci*
--   RVS_VPORT      [80, or 53 for udp]
--
-- Flow plan (the same in scripts/trex/ and config/bench-pci*.toml):
--   clients 198.18.16.0 + i mod ADDRS, source port 1024 + i mod PORTS, to VIP:VPORT.
--   Pktgen's range mode steps every field once a packet and wraps, so with ADDRS a power of two
--   and PORTS odd the first ADDRS x PORTS packets are all different flows, and the sequence then
--   repeats. The SYN pass sends exactly that many packets.
--   storm: clients 198.18.128.0/17 x ports 1024-65534 (2.1G tuples, minutes before a repeat).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

local function ip_add(base, n)
    local a, b, c, d = base:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    local x = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
    return string.format("%d.%d.%d.%d", (x >> 24) & 255, (x >> 16) & 255, (x >> 8) & 255, x & 255)
end

local function gcd(a, b)
    while b ~= 0 do
        a, b = b, a % b
    end
    return a
end

local port = "0"
local scenario = env("RVS_SCENARIO", "nat")
local mac = env("RVS_DUT_MAC0", nil)
local size = tonumber(env("RVS_SIZE", "64"))
local rate = tonumber(env("RVS_RATE", "100"))
local vip = env("RVS_VIP", "198.18.0.100")
local proto = (scenario == "udp") and "udp" or "tcp"
local vport = tonumber(env("RVS_VPORT", (proto == "udp") and "53" or "80"))

if mac == nil then
    error("rvs.lua: set RVS_DUT_MAC0 to rvs's client-side port MAC (run.sh --dut-mac)")
end
if scenario ~= "nat" and scenario ~= "udp" and scenario ~= "storm" then
    error("rvs.lua: RVS_SCENARIO must be nat, udp or storm, not " .. scenario)
end

local addrs, ports, src_base
if scenario == "storm" then
    addrs, ports, src_base = 32768, 64511, "198.18.128.0"
else
    local want = tonumber(env("RVS_FLOWS", "100000"))
    addrs = tonumber(env("RVS_ADDRS", (want >= 1000000) and "4096" or "256"))
    ports = math.max(1, math.floor(want / addrs + 0.5))
    if ports % 2 == 0 then
        ports = ports + 1
    end
    src_base = "198.18.16.0"
end
if gcd(addrs, ports) ~= 1 then
    error(string.format("rvs.lua: %d addresses and %d ports share a factor: flows would repeat early", addrs, ports))
end
if ports > 64511 then
    error("rvs.lua: more than 64511 ports per address: raise RVS_ADDRS")
end
local flows = addrs * ports

-- Single-packet page too, so the main screen shows the right addresses.
pktgen.set_type(port, "ipv4")
pktgen.set_proto(port, proto)
pktgen.set_mac(port, "dst", mac)
pktgen.set_ipaddr(port, "dst", vip)
pktgen.set_ipaddr(port, "src", src_base .. "/15")
pktgen.set(port, "sport", 1024)
pktgen.set(port, "dport", vport)
pktgen.set(port, "size", size)
pktgen.set(port, "rate", rate)

pktgen.range.ip_proto(port, proto)
pktgen.range.dst_mac(port, "start", mac)
pktgen.range.dst_ip(port, "start", vip)
pktgen.range.dst_ip(port, "inc", "0.0.0.0")
pktgen.range.dst_ip(port, "min", vip)
pktgen.range.dst_ip(port, "max", vip)
pktgen.range.src_ip(port, "start", src_base)
pktgen.range.src_ip(port, "inc", "0.0.0.1")
pktgen.range.src_ip(port, "min", src_base)
pktgen.range.src_ip(port, "max", ip_add(src_base, addrs - 1))
pktgen.range.dst_port(port, "start", vport)
pktgen.range.dst_port(port, "inc", 0)
pktgen.range.dst_port(port, "min", vport)
pktgen.range.dst_port(port, "max", vport)
pktgen.range.src_port(port, "start", 1024)
pktgen.range.src_port(port, "inc", 1)
pktgen.range.src_port(port, "min", 1024)
pktgen.range.src_port(port, "max", 1024 + ports - 1)
pktgen.range.pkt_size(port, "start", size)
pktgen.range.pkt_size(port, "inc", 0)
pktgen.range.pkt_size(port, "min", size)
pktgen.range.pkt_size(port, "max", size)
pktgen.range.ttl(port, "start", 64)
pktgen.range.ttl(port, "inc", 0)
pktgen.range.ttl(port, "min", 64)
pktgen.range.ttl(port, "max", 64)
pktgen.set_range(port, "on")

-- The SYN pass sends each flow once, then stops; the other phases run until stopped.
if scenario == "nat" then
    pktgen.set(port, "count", flows)
else
    pktgen.set(port, "count", 0)
end

print(string.format("rvs.lua: %s, %s %s:%d, %d B at %d%%, clients %s-%s ports 1024-%d: %d flows",
    scenario, proto, vip, vport, size, rate, src_base, ip_add(src_base, addrs - 1), 1024 + ports - 1, flows))
if scenario == "nat" then
    print("rvs.lua: next: 'load scripts/pktgen/syn.pkt' (one SYN a flow, then it stops);")
    print("         when rvs shows flows_created = " .. flows .. ", 'load scripts/pktgen/ack.pkt'.")
    print("         Send the SYN pass at a rate rvs takes whole ('set 0 rate 10' first, say),")
    print("         and within rvs's tcp_syn_recv (60 s); then 'set 0 rate N' for the ACKs.")
elseif scenario == "storm" then
    print("rvs.lua: next: 'load scripts/pktgen/storm.pkt' (rvs: config/bench-pci-syn.toml)")
else
    print("rvs.lua: next: 'load scripts/pktgen/go.pkt'")
end
print("rvs.lua: 'load scripts/pktgen/report.lua' prints sent, received and lost; 'stp' stops.")
