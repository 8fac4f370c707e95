-- event.lua — POST /event, one request per write: the 1MRC event stream (see common.lua).
-- Thread k of T sends events i = k, k+T, k+2T, ... so together the threads send 0, 1, 2, ...
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local i
function request()
    local go, verify = fa_gate(1)
    if not go then
        return ""
    end
    i = i or tid
    local r = fa_event(i)
    if not verify then
        i = i + fa_threads
    end
    return r
end
