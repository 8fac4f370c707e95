-- users.lua — loads FA_USERS (default 1,000,000) distinct users: POST /event with userId
-- "user_" .. i for every i in [0, FA_USERS), value (i % 1000) + 0.5, FA_DEPTH (default 16) per
-- write. Unlike the timed scripts it is bounded by count: each thread sends its share of the
-- sequence and stops itself (wrk.thread:stop) once all of its share has been answered, so wrk
-- ends as soon as the load is in, with nothing in flight. FA_USERS must be a multiple of
-- FA_THREADS * FA_DEPTH. Counting answers needs the response() hook, which slows wrk down a
-- little; that does not matter for a loader.
--
-- wrk itself sleeps for its whole -d before collecting the threads, whatever they do; SIGINT cuts
-- that sleep short. So each thread that is done also creates FA_DONE_DIR/done.<tid>, and
-- load.sh sends wrk SIGINT once all FA_THREADS files are there.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
fa_window = math.huge
if not os.getenv("FA_DEPTH") then
    fa_depth = 16
end
local users = tonumber(os.getenv("FA_USERS") or "1000000")
local share = users / fa_threads
local answered = 0

local i
local batch = {}
local headers = {}
function request()
    if not fa_verifying and sent >= share then
        return ""
    end
    local _, verify = fa_gate(fa_depth)
    i = i or tid
    headers["Content-Type"] = "application/json"
    for k = 1, fa_depth do
        local n = i + (k - 1) * fa_threads
        batch[k] = wrk.format("POST", "/event", headers,
                              string.format('{"userId":"user_%d","value":%d.5}', n, n % 1000))
    end
    if not verify then
        i = i + fa_depth * fa_threads
    end
    return table.concat(batch)
end

function response(status)
    answered = answered + 1
    if answered == share then
        t_stop = fa_now()
        wrk.thread:stop()
        local dir = os.getenv("FA_DONE_DIR")
        if dir then
            local f = io.open(dir .. "/done." .. tid, "w")
            if f then
                f:close()
            end
        end
    end
end
