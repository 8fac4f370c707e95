#!/usr/bin/env bash
# load.sh — end-to-end load: fasterapid side by side with nginx and the floor (perf/floor.c),
# on 127.0.0.1 only, every run bounded in time, every process started here stopped by PID.
#
#   FASTERAPID_BIN=build/fasterapid FLOOR_BIN=build/perf/floor perf/load.sh     (make bench)
#
# Environment (defaults in brackets):
#   SERVERS     which servers, in the order they alternate ["fasterapid nginx floor"]
#   SCENARIOS   ["event pipelined stats_1m_users c10k batch"] (batch: fasterapid only, POST
#               /events with BATCH [1000] events per request on BATCH_CONNS [16] connections)
#   ROUNDS [3]  DURATION [5] seconds of sending per run   WORKERS [nproc] server processes
#   THREADS [2] CONNS [256] wrk threads and connections    DEPTH [16] requests per pipelined write
#   C10K [10000] connections of the c10k scenario          USERS [1000000] users loaded for stats
#   PORT_BASE [18380] first of three ports tried           FASTERAPID_CONF [perf/fasterapid-perf.yaml]
#
# For each scenario the servers take turns (A B C A B C ...) so that noise from the shared
# machine falls on all of them alike; each figure printed at the end is the median over rounds.
# After every fasterapid run its GET /stats totalRequests delta must equal the number of
# answers wrk counted, exactly (see perf/wrk/common.lua for why nothing is in flight at the
# end of a run); a mismatch prints FAIL and makes the script exit 1. See perf/README.md.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
SERVERS=${SERVERS:-"fasterapid nginx floor"}
SCENARIOS=${SCENARIOS:-"event pipelined stats_1m_users c10k batch"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WORKERS=${WORKERS:-$(nproc)}
THREADS=${THREADS:-2}
CONNS=${CONNS:-256}
DEPTH=${DEPTH:-16}
C10K=${C10K:-10000}
USERS=${USERS:-1000000}
BATCH=${BATCH:-1000}
BATCH_CONNS=${BATCH_CONNS:-16}
PORT_BASE=${PORT_BASE:-18380}
FASTERAPID_BIN=${FASTERAPID_BIN:-$HERE/../build/fasterapid}
FASTERAPID_CONF=${FASTERAPID_CONF:-$HERE/fasterapid-perf.yaml}
FLOOR_BIN=${FLOOR_BIN:-$HERE/../build/perf/floor}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
CLK_TCK=$(getconf CLK_TCK)

for v in ROUNDS DURATION WORKERS THREADS CONNS DEPTH C10K USERS PORT_BASE BATCH BATCH_CONNS; do
    case ${!v} in '' | *[!0-9]*) echo "load.sh: $v must be a whole number (got '${!v}')" >&2; exit 2 ;; esac
done
if [ $((USERS % (THREADS * DEPTH))) -ne 0 ]; then
    echo "load.sh: USERS must be a multiple of THREADS*DEPTH" >&2
    exit 2
fi
for tool in wrk curl; do
    command -v $tool >/dev/null || { echo "load.sh: $tool is missing (make bench-deps)" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/fasterapid-load.XXXXXX)
declare -A PID PORT RPS USR
FAILS=0
WRK_PID=

# Stops one process and, if TERM is not enough within 5 s, KILLs it and its children.
stop_pid() {
    local pid=$1 kids i
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(children_of "$pid")
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "load.sh: PID $pid ignored SIGTERM; killing it" >&2
        kill -KILL "$pid" $kids 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    # Children that outlived their parent (they should not) go the same way.
    for i in $kids; do kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null; done
    return 0
}

cleanup() {
    [ -n "$WRK_PID" ] && stop_pid "$WRK_PID"
    local s
    for s in "${!PID[@]}"; do stop_pid "${PID[$s]}"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The direct children of a PID (a server's workers), from /proc. (cat, not awk, opens the files:
# mawk gives up on the first /proc/PID that vanished meanwhile, cat goes on.)
children_of() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{ pid = $1; sub(/^.*\) /, ""); if ($2 == root) print pid }'
}

# "utime stime" in clock ticks, summed over a PID and its direct children (master + workers).
cpu_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{ pid = $1; sub(/^.*\) /, "");
                        if (pid == root || $2 == root) { u += $12; s += $13 } }
                      END { printf "%d %d\n", u, s }'
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_port=$PORT_BASE
pick_port() {
    while port_in_use $next_port; do next_port=$((next_port + 1)); done
    echo $next_port
    next_port=$((next_port + 1))
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@"; }

# Waits up to 5 s for GET /stats on a port to answer 200 while the PID lives.
wait_ready() {
    local pid=$1 port=$2 i
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$(http_code "http://127.0.0.1:$port/stats")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

stats_field() { # port field -> number from GET /stats
    curl -s --max-time 5 "http://127.0.0.1:$1/stats" | sed -nE "s/.*\"$2\" *: *([0-9.eE+-]+).*/\1/p"
}

# Each start_* runs a server in the background on a fresh port and records PID and PORT, or
# prints why not and returns 1.
start_fasterapid() {
    local port conf=$FASTERAPID_CONF
    port=$(pick_port)
    if [ ! -x "$FASTERAPID_BIN" ]; then
        echo "SKIP fasterapid: no executable at $FASTERAPID_BIN"
        return 1
    fi
    "$FASTERAPID_BIN" -c "$conf" -o "server.listen=127.0.0.1:$port" -o "server.workers=$WORKERS" \
        >"$TMP/fasterapid.log" 2>&1 </dev/null &
    PID[fasterapid]=$! PORT[fasterapid]=$port
    if ! wait_ready "${PID[fasterapid]}" "$port"; then
        echo "SKIP fasterapid: not answering GET /stats on 127.0.0.1:$port within 5 s" \
            "($FASTERAPID_BIN -c $conf); its last output:"
        tail -n 5 "$TMP/fasterapid.log" | sed 's/^/    /'
        stop_pid "${PID[fasterapid]}"
        unset 'PID[fasterapid]'
        return 1
    fi
    # The contract the exactness check relies on: an event is answered 200 (not 201/204), empty.
    local got
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 2 -X POST \
        -H 'Content-Type: application/json' -d '{"userId":"user_0","value":0.5}' \
        "http://127.0.0.1:$port/event")
    if [ "$got" != "200 0" ]; then
        echo "FAIL fasterapid: POST /event answered '$got' (code, body bytes), expected '200 0'"
        FAILS=$((FAILS + 1))
        stop_pid "${PID[fasterapid]}"
        unset 'PID[fasterapid]'
        return 1
    fi
}

start_nginx() {
    local port dir=$TMP/nginx
    port=$(pick_port)
    [ -x "$NGINX_BIN" ] || { echo "SKIP nginx: no $NGINX_BIN (make bench-deps)"; return 1; }
    mkdir -p "$dir"
    sed "s|@PREFIX@|$dir|g; s|@PORT@|$port|g; s|@WORKERS@|$WORKERS|g" "$HERE/nginx.conf" >"$dir/nginx.conf"
    "$NGINX_BIN" -c "$dir/nginx.conf" -p "$dir/" >"$TMP/nginx.log" 2>&1 </dev/null &
    PID[nginx]=$! PORT[nginx]=$port
    if ! wait_ready "${PID[nginx]}" "$port"; then
        echo "SKIP nginx: did not start; its logs:"
        tail -n 5 "$TMP/nginx.log" "$dir/error.log" 2>/dev/null | sed 's/^/    /'
        stop_pid "${PID[nginx]}"
        unset 'PID[nginx]'
        return 1
    fi
}

start_floor() {
    local port
    port=$(pick_port)
    [ -x "$FLOOR_BIN" ] || { echo "SKIP floor: no executable at $FLOOR_BIN (make build/perf/floor)"; return 1; }
    "$FLOOR_BIN" "$port" "$WORKERS" >"$TMP/floor.log" 2>&1 </dev/null &
    PID[floor]=$! PORT[floor]=$port
    if ! wait_ready "${PID[floor]}" "$port"; then
        echo "SKIP floor: did not start; its output:"
        tail -n 5 "$TMP/floor.log" | sed 's/^/    /'
        stop_pid "${PID[floor]}"
        unset 'PID[floor]'
        return 1
    fi
}

# Reads key from a "wrk-result k=v ..." line.
field() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<"$2"; }

# Connect, read, write and timeout errors of a wrk-result line, added up.
socket_errors() {
    echo $(($(field connect "$1") + $(field read "$1") + $(field write "$1") + $(field timeout "$1")))
}

us_to_ms() { awk -v u="$1" -v d="${2:-2}" 'BEGIN { if (u < 0) printf "n/a"; else printf "%.*f", d, u / 1000 }'; }

# Compares fasterapid's totalRequests delta with what wrk saw; prints PASS or FAIL.
check_exact() {
    local what=$1 delta=$2 expect=$3 line=$4
    local req sent errs
    req=$(field requests "$line") sent=$(field sent "$line")
    errs=$(socket_errors "$line")
    if [ "$delta" = "$expect" ] && [ "$req" = "$sent" ] && [ "$errs" = 0 ] && [ "$(field open_windows "$line")" = 0 ]; then
        echo "    check $what: PASS totalRequests delta $delta == $expect expected (wrk sent $sent, answered $req, socket errors 0)"
    else
        echo "    check $what: FAIL totalRequests delta $delta, expected $expect (wrk sent $sent, answered $req," \
            "socket errors $errs, windows left open $(field open_windows "$line"))"
        FAILS=$((FAILS + 1))
    fi
}

# One timed wrk run against one server; appends "rps p50_us p99_us user_us cpu_us" to
# $TMP/res/<scenario>.<server> and prints a line.
run_one() {
    local scn=$1 srv=$2 round=$3 script conns depth=1 grace=1
    local port=${PORT[$srv]} pid=${PID[$srv]}
    case $scn in
    event) script=event.lua conns=$CONNS ;;
    pipelined) script=pipeline.lua conns=$CONNS depth=$DEPTH ;;
    stats_1m_users) script=stats.lua conns=$CONNS ;;
    c10k) script=event.lua conns=$C10K grace=3 ;;
    batch) script=batch.lua conns=$BATCH_CONNS ;;
    esac
    local t0 t1 before=0
    [ "$srv" = fasterapid ] && before=$(stats_field "$port" totalRequests)
    t0=$(cpu_ticks "$pid")
    FA_WINDOW=$DURATION FA_THREADS=$THREADS FA_DEPTH=$depth FA_BATCH=$BATCH \
        wrk -t"$THREADS" -c"$conns" -d"$((DURATION + grace))s" --timeout 30s --latency \
        -s "$HERE/wrk/$script" "http://127.0.0.1:$port/" >"$TMP/wrk.out" 2>&1
    t1=$(cpu_ticks "$pid")
    local line
    line=$(grep '^wrk-result' "$TMP/wrk.out")
    if [ -z "$line" ]; then
        echo "    $scn round $round $srv: wrk failed:"
        tail -n 5 "$TMP/wrk.out" | sed 's/^/      /'
        FAILS=$((FAILS + 1))
        return
    fi
    local req user_us cpu_us rps p50 p99 errs
    req=$(field requests "$line") rps=$(field rps "$line")
    p50=$(field p50_us "$line") p99=$(field p99_us "$line") errs=$(socket_errors "$line")
    read -r user_us cpu_us < <(awk -v a="$t0" -v b="$t1" -v n="$req" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " "); if (n < 1) n = 1
        printf "%.3f %.3f\n", (y[1] - x[1]) * 1e6 / hz / n, (y[1] - x[1] + y[2] - x[2]) * 1e6 / hz / n }')
    echo "$rps $p50 $p99 $user_us $cpu_us" >>"$TMP/res/$scn.$srv"
    printf '    %-15s round %d  %-10s %9s req/s  p50 %7s ms  p99 %7s ms' \
        "$scn" "$round" "$srv" "$rps" "$(us_to_ms "$p50")" "$(us_to_ms "$p99")"
    printf '  user %6.2f us/req  user+sys %6.2f us/req  (%s answers, %s non-2xx, %s socket errors)\n' \
        "$user_us" "$cpu_us" "$req" "$(field non2xx "$line")" "$errs"
    if [ "$srv" = fasterapid ]; then
        local after expect
        after=$(stats_field "$port" totalRequests)
        expect=$(field ok "$line")
        [ "$scn" = stats_1m_users ] && expect=0 # GET /stats counts no event
        [ "$scn" = batch ] && expect=$((expect * BATCH))
        check_exact "$scn round $round" "$((after - before))" "$expect" "$line"
    fi
}

# Loads USERS distinct users into fasterapid with a count-bounded pipelined run (users.lua),
# then checks totalRequests and uniqueUsers. wrk is stopped with SIGINT as soon as every
# thread reports its share answered; 120 s is the ceiling.
load_users() {
    local port=${PORT[fasterapid]} before after unique done_dir=$TMP/users-done i
    mkdir -p "$done_dir"
    before=$(stats_field "$port" totalRequests)
    FA_THREADS=$THREADS FA_DEPTH=$DEPTH FA_USERS=$USERS FA_DONE_DIR=$done_dir \
        wrk -t"$THREADS" -c64 -d120s --timeout 30s -s "$HERE/wrk/users.lua" \
        "http://127.0.0.1:$port/" >"$TMP/users.out" 2>&1 &
    WRK_PID=$!
    for i in $(seq 1200); do
        kill -0 $WRK_PID 2>/dev/null || break
        [ "$(ls "$done_dir" | wc -l)" -ge "$THREADS" ] && { kill -INT $WRK_PID; break; }
        sleep 0.1
    done
    wait $WRK_PID
    WRK_PID=
    local line
    line=$(grep '^wrk-result' "$TMP/users.out")
    after=$(stats_field "$port" totalRequests)
    unique=$(stats_field "$port" uniqueUsers)
    if [ -z "$line" ]; then
        echo "    loading users: FAIL, wrk printed no result:"
        tail -n 5 "$TMP/users.out" | sed 's/^/      /'
        FAILS=$((FAILS + 1))
        return
    fi
    echo "    loaded $USERS users into fasterapid in $(field elapsed_s "$line") s ($(field rps "$line") req/s, pipelined $DEPTH)"
    check_exact "stats_1m_users load" "$((after - before))" "$USERS" "$line"
    # The event runs used user_0 .. user_74999, a subset of what was just loaded when USERS >= 75000.
    if [ "$USERS" -ge 75000 ] && [ "$unique" != "$USERS" ]; then
        echo "    check uniqueUsers: FAIL $unique, expected $USERS"
        FAILS=$((FAILS + 1))
    else
        echo "    check uniqueUsers: PASS $unique"
    fi
}

median() { sort -g | awk '$1 >= 0 { a[++n] = $1 } END { if (n == 0) { print -1; exit } printf "%.10g\n", (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'; }

# ---- main ----
lim=$((C10K + 1000))
[ $lim -lt 4096 ] && lim=4096
ulimit -n $lim 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
mkdir -p "$TMP/res"
echo "== load: servers [$SERVERS], scenarios [$SCENARIOS], $ROUNDS rounds of ${DURATION} s, $WORKERS workers," \
    "wrk -t$THREADS -c$CONNS (c10k: -c$C10K), $(nproc) CPUs, ulimit -n $(ulimit -n)"

active=
for s in $SERVERS; do
    case $s in
    fasterapid | nginx | floor) start_"$s" && active="$active $s" ;;
    *) echo "load.sh: unknown server '$s' (fasterapid, nginx, floor)" >&2 ;;
    esac
done
for s in $active; do echo "  $s: PID ${PID[$s]} on 127.0.0.1:${PORT[$s]}"; done
[ -n "$active" ] || { echo "load.sh: no server started" >&2; exit 1; }

for scn in $SCENARIOS; do
    case $scn in event | pipelined | stats_1m_users | c10k | batch) ;; *)
        echo "load.sh: unknown scenario '$scn'" >&2
        continue
        ;;
    esac
    if [ "$scn" = c10k ] && [ "$(ulimit -n)" -lt $((C10K + 100)) ]; then
        echo "SKIP c10k: ulimit -n is $(ulimit -n), need $((C10K + 100))"
        continue
    fi
    echo "-- $scn"
    # Only fasterapid keeps state; nginx and the floor answer /stats with a constant.
    [ "$scn" = stats_1m_users ] && [ -n "${PID[fasterapid]:-}" ] && load_users
    for round in $(seq "$ROUNDS"); do
        for s in $active; do
            # Batches are fasterapid's own feature: the anchors have nothing to compare.
            [ "$scn" = batch ] && [ "$s" != fasterapid ] && continue
            run_one "$scn" "$s" "$round"
        done
    done
done

echo
echo "== medians over $ROUNDS rounds"
printf '%-16s %-11s %10s %9s %9s %10s %10s\n' scenario server req/s p50_ms p99_ms user_us/req cpu_us/req
for scn in $SCENARIOS; do
    for s in $active; do
        f=$TMP/res/$scn.$s
        [ -s "$f" ] || continue
        rps=$(cut -d' ' -f1 "$f" | median)
        p50=$(cut -d' ' -f2 "$f" | median)
        p99=$(cut -d' ' -f3 "$f" | median)
        usr=$(cut -d' ' -f4 "$f" | median)
        cpu=$(cut -d' ' -f5 "$f" | median)
        printf '%-16s %-11s %10.0f %9s %9s %10.2f %10.2f\n' "$scn" "$s" "$rps" \
            "$(us_to_ms "$p50")" "$(us_to_ms "$p99")" "$usr" "$cpu"
        name=load.$scn
        [ "$s" = fasterapid ] || name=load.$scn.$s
        echo "bench: $name.rps $(printf '%.0f' "$rps") req/s" >>"$TMP/bench"
        [ "$p50" != -1 ] && echo "bench: $name.p50_ms $(us_to_ms "$p50" 3) ms" >>"$TMP/bench"
        [ "$p99" != -1 ] && echo "bench: $name.p99_ms $(us_to_ms "$p99" 3) ms" >>"$TMP/bench"
        echo "bench: $name.user_us_per_req $usr us" >>"$TMP/bench"
        echo "bench: $name.cpu_us_per_req $cpu us" >>"$TMP/bench"
        RPS[$s.$scn]=$rps
        USR[$s.$scn]=$usr
        [ "$scn" = batch ] && echo "bench: load.batch.events_per_s $(printf '%.0f' "$(awk -v r="$rps" -v b="$BATCH" 'BEGIN{print r*b}')") events/s" >>"$TMP/bench"
    done
    for anchor in nginx floor; do
        a=${RPS[$anchor.$scn]:-} f=${RPS[fasterapid.$scn]:-}
        [ -n "$a" ] && [ -n "$f" ] &&
            echo "bench: load.$scn.ratio_vs_$anchor $(awk -v f="$f" -v a="$a" 'BEGIN{printf "%.3f", f/a}') x" >>"$TMP/bench"
    done
    # User CPU per request over nginx's (the issue's target: <= 0.5); below 1 is cheaper.
    a=${USR[nginx.$scn]:-} f=${USR[fasterapid.$scn]:-}
    [ -n "$a" ] && [ -n "$f" ] && awk -v a="$a" 'BEGIN{exit !(a > 0)}' &&
        echo "bench: load.$scn.user_ratio_vs_nginx $(awk -v f="$f" -v a="$a" 'BEGIN{printf "%.3f", f/a}') x" >>"$TMP/bench"
done
echo
[ -s "$TMP/bench" ] && cat "$TMP/bench"
case " $active " in *" fasterapid "*) ;; *)
    case " $SERVERS " in *" fasterapid "*) echo "SKIP fasterapid: not measured (see above)" ;; esac ;;
esac
if [ "$FAILS" -gt 0 ]; then
    echo "load: $FAILS FAIL(s)"
    exit 1
fi
echo "load: done, no FAIL"
