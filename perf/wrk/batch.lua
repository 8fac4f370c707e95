-- batch.lua — POST /events, FA_BATCH (default 1000) events per request as NDJSON: the same
-- deterministic 1MRC event stream as event.lua, batched. Each response counts FA_BATCH events
-- (load.sh checks the /stats delta against answers x FA_BATCH).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
local fa_batch = tonumber(os.getenv("FA_BATCH") or "1000")

-- A handful of distinct bodies per thread, built once: events i .. i+fa_batch-1 of the stream.
local bodies, nbodies, k = {}, 16, 0
local function body(first)
    local lines = {}
    for e = 0, fa_batch - 1 do
        local j = (first + e) % 75000
        lines[#lines + 1] = string.format('{"userId":"user_%d","value":%d.5}', j, j % 1000)
    end
    return wrk.format("POST", "/events", {["Content-Type"] = "application/x-ndjson"},
                      table.concat(lines, "\n"))
end

function request()
    local go, verify = fa_gate(1)
    if not go then
        return ""
    end
    if #bodies == 0 then
        for b = 1, nbodies do
            bodies[b] = body((tid * nbodies + b) * fa_batch)
        end
    end
    if not verify then
        k = k % nbodies + 1
    end
    return bodies[k > 0 and k or 1]
end
