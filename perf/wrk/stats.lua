-- stats.lua — GET /stats, one request per write, sent during the window of common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local req
function request()
    if not fa_gate(1) then
        return ""
    end
    req = req or wrk.format("GET", "/stats")
    return req
end
