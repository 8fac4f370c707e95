-- pipeline.lua — POST /event, FA_DEPTH (default 16) requests per write: the same event stream
-- as event.lua, pipelined. wrk counts each response, but records one latency per write (the
-- time until the last of its FA_DEPTH responses).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
if not os.getenv("FA_DEPTH") then
    fa_depth = 16
end

local i
local batch = {}
function request()
    local go, verify = fa_gate(fa_depth)
    if not go then
        return ""
    end
    i = i or tid
    for k = 1, fa_depth do
        batch[k] = fa_event(i + (k - 1) * fa_threads)
    end
    if not verify then
        i = i + fa_depth * fa_threads
    end
    return table.concat(batch)
end
