-- report.lua: print what port 0 sent and port 1 received since the last 'clr', and the loss.
-- Load it after 'stp' (let the last frames drain for a second first). A zero-loss run has
-- lost = 0 here and no drops in rvs's stats file (docs/BENCHMARKING-HARDWARE.md).
-- Works with the portStats layout of Pktgen 23.x (flat) and of later versions (.curr).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local function counters(pid)
    local t = pktgen.portStats(tostring(pid), "port")[pid]
    local c = t.curr or t
    return c.opackets or 0, c.ipackets or 0, c.imissed or 0, c.rx_nombuf or 0
end

local sent = counters(0)
local _, received, imissed, nombuf = counters(1)
local lost = sent - received
print(string.format("report: port 0 sent %d, port 1 received %d, lost %d (%.4f%%); port 1 imissed %d rx_nombuf %d",
    sent, received, lost, (sent > 0) and (100.0 * lost / sent) or 0.0, imissed, nombuf))
if imissed > 0 or nombuf > 0 then
    print("report: the generator's own port 1 missed frames: the loss may be the generator's, not rvs's")
end
