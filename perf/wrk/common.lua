-- common.lua — shared by the wrk scripts of perf/load.sh (loaded with dofile by each of them).
--
-- The exactness rule: a run must end with nothing in flight, so that the requests wrk counts
-- are exactly the requests the server processed. wrk itself stops at its -d deadline and drops
-- whatever is in flight, so instead each wrk thread sends only during a window of FA_WINDOW
-- seconds from its first request; after that request() returns "" and wrk, which writes the
-- empty string and waits for the next response that never comes, leaves the connection idle.
-- load.sh runs wrk with -d a little longer than the window, so by the deadline every request
-- sent has been answered. done() then reports whether every thread closed its window: if one
-- did not, requests may still have been in flight and the check is only a bound.
--
-- Throughput is computed here, not taken from wrk: wrk divides by the whole -d duration, idle
-- tail included. rps = responses / (last window close - first request), from CLOCK_MONOTONIC.
--
-- Environment (set by load.sh): FA_WINDOW seconds of sending, FA_THREADS the -t value (so the
-- threads can interleave one global sequence i = 0, 1, 2, ...), FA_DEPTH requests per write.
--
-- Per-thread globals read by done() through thread:get: tid, sent, t_first, t_stop.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } fa_perf_timespec_t;
int clock_gettime(int clk, fa_perf_timespec_t *ts);
]]
local ts = ffi.new("fa_perf_timespec_t")

function fa_now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

fa_window = tonumber(os.getenv("FA_WINDOW") or "5")
fa_threads = tonumber(os.getenv("FA_THREADS") or "1")
fa_depth = tonumber(os.getenv("FA_DEPTH") or "1")

-- Main state: every thread, in creation order; each learns its index before init() runs.
local threads = {}
function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

-- Thread state. wrk calls request() once in thread 0 before the run to count the requests per
-- write (its pipeline depth) and discards the result: that call must not count or open the window.
sent = 0
fa_verifying = false
function init(args)
    fa_verifying = (tid == 0)
end

-- Called by request() before building n requests: true while this thread may still send (and
-- counts the n as sent); the second result is true for wrk's verification call, which the
-- caller must answer without advancing its sequence.
function fa_gate(n)
    if fa_verifying then
        fa_verifying = false
        return true, true
    end
    local t = fa_now()
    if not t_first then
        t_first = t
    end
    if t - t_first >= fa_window then
        if not t_stop then
            t_stop = t
        end
        return false
    end
    sent = sent + n
    return true, false
end

-- Main state, once at the end: one machine-readable line for load.sh.
function done(summary, latency, requests)
    local first, stop, nsent, open = math.huge, 0, 0, 0
    for _, t in ipairs(threads) do
        local f, s = t:get("t_first"), t:get("t_stop")
        if f and f < first then first = f end
        if s and s > stop then stop = s end
        if not s then open = open + 1 end
        nsent = nsent + (t:get("sent") or 0)
    end
    local elapsed = stop - first
    if open > 0 or elapsed <= 0 then
        elapsed = summary.duration / 1e6
    end
    -- Before done(), wrk corrects its latencies for coordinated omission (stats_correct), adding
    -- synthesized samples that can fall below the recorded minimum; percentile() only scans
    -- min..max, so it then misses its rank and returns 0. Report -1 (unknown) rather than 0.
    local p50, p99 = latency:percentile(50), latency:percentile(99)
    if summary.requests > 0 then
        if p50 == 0 then p50 = -1 end
        if p99 == 0 then p99 = -1 end
    end
    local e = summary.errors
    io.write(string.format(
        "wrk-result requests=%d ok=%d non2xx=%d sent=%d connect=%d read=%d write=%d " ..
        "timeout=%d open_windows=%d elapsed_s=%.3f rps=%.0f p50_us=%d p99_us=%d\n",
        summary.requests, summary.requests - e.status, e.status, nsent, e.connect, e.read,
        e.write, e.timeout, open, elapsed, summary.requests / elapsed,
        p50, p99))
end

-- The deterministic 1MRC event number i, as a complete POST /event request. The public load
-- generators send userId "user_" .. (i % 75000) and value (i % 1000) + 0.5; both depend only on
-- i % 75000, so each thread caches the few tens of thousands of distinct requests it sends.
local cache = {}
local headers = {}
function fa_event(i)
    local j = i % 75000
    local r = cache[j]
    if not r then
        headers["Content-Type"] = "application/json"
        r = wrk.format("POST", "/event", headers,
                       string.format('{"userId":"user_%d","value":%d.5}', j, j % 1000))
        cache[j] = r
    end
    return r
end
