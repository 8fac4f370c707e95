#!/usr/bin/env bash
# upstream.sh — load test of the upstream stages, on 127.0.0.1 only, every run bounded in time,
# every process started here stopped by PID.
#
#   FASTERAPID_BIN=build/fasterapid perf/upstream.sh
#
# One fasterapid "backend" (its respond and delay stages) stands for three services, a (5 ms),
# b (2 ms) and c (10 ms), plus instant variants a0 b0 c0; the "front" fasterapid declares them
# as separate upstreams (separate keep-alive pools) and serves:
#   fan    fan_out of a, b, c + merge      (expected p50 ~ the slowest, 10 ms)
#   seq    fetch a, fetch b, fetch c + merge (expected p50 ~ the sum, 17 ms)
#   fan0   fan_out of a0, b0, c0 + merge   (CPU-bound: 3 upstream calls per request)
#   one0   fetch c0 + merge                (one call: what nginx_c0 does, plus a JSON merge)
# and nginx proxies one upstream in the same run:
#   nginx_c    proxy_pass to c (10 ms), keep-alive upstream connections
#   nginx_c0   proxy_pass to c0 (instant)
# The front's upstreams use the default pool settings (pool_size 1024 idle connections per worker),
# nginx a keep-alive pool of 256 (more than the CONNS in flight).
# Scenarios alternate within each round so that noise falls on all alike; each figure printed
# at the end is the median over rounds, as `bench: upstream.<scenario>.<metric> <value> <unit>`.
# Besides requests/s and latency, each run reads the CPU time (user + system, /proc) that the
# front (fasterapid or nginx, master and workers) and the backend spent, per request served:
# on 2 shared cores requests/s of a CPU-bound scenario say as much about the other processes as
# about the server, CPU per request much less so.
#
# Environment: ROUNDS [3] DURATION [5] seconds per run, CONNS [64], THREADS [2],
# WORKERS [1] per server, PORT_BASE [18480], SCENARIOS ["fan seq nginx_c fan0 one0 nginx_c0"].
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-1}
PORT_BASE=${PORT_BASE:-18480}
SCENARIOS=${SCENARIOS:-"fan seq nginx_c fan0 one0 nginx_c0"}
FASTERAPID_BIN=${FASTERAPID_BIN:-$HERE/../build/fasterapid}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

command -v wrk >/dev/null || { echo "upstream.sh: wrk is missing (make bench-deps)" >&2; exit 2; }
[ -x "$FASTERAPID_BIN" ] || { echo "upstream.sh: no $FASTERAPID_BIN" >&2; exit 2; }

TMP=$(mktemp -d /tmp/fasterapid-upstream.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$PORT_BASE
pick_port() { # sets PORT (not echoed: a subshell would lose next_port)
    while port_in_use $next_port; do next_port=$((next_port + 1)); done
    PORT=$next_port
    next_port=$((next_port + 1))
}
wait_ok() { # url
    for _ in $(seq 50); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ] && return 0
        sleep 0.1
    done
    echo "upstream.sh: $1 never answered 200" >&2
    return 1
}

pick_port; BACK=$PORT
pick_port; FRONT=$PORT
pick_port; NGX=$PORT

cat >"$TMP/back.yaml" <<EOF
server: { workers: $WORKERS, pin_workers: false }
log: { level: warn }
routes:
  - { match: GET /a, pipeline: [ { delay: 5ms }, { respond: { json: { svc: a, id: 1, name: ann } } } ] }
  - { match: GET /b, pipeline: [ { delay: 2ms }, { respond: { json: { svc: b, orders: [1, 2, 3] } } } ] }
  - { match: GET /c, pipeline: [ { delay: 10ms }, { respond: { json: { svc: c, score: 42 } } } ] }
  - { match: GET /a0, pipeline: [ { respond: { json: { svc: a, id: 1, name: ann } } } ] }
  - { match: GET /b0, pipeline: [ { respond: { json: { svc: b, orders: [1, 2, 3] } } } ] }
  - { match: GET /c0, pipeline: [ { respond: { json: { svc: c, score: 42 } } } ] }
EOF

cat >"$TMP/front.yaml" <<EOF
server: { workers: $WORKERS, pin_workers: false }
log: { level: warn }
upstreams:
  - { name: a, addresses: "127.0.0.1:$BACK" }
  - { name: b, addresses: "127.0.0.1:$BACK" }
  - { name: c, addresses: "127.0.0.1:$BACK" }
routes:
  - match: GET /fan
    pipeline:
      - fan_out: { calls: { a: { upstream: a, path: /a }, b: { upstream: b, path: /b }, c: { upstream: c, path: /c } } }
      - merge: {}
  - match: GET /seq
    pipeline:
      - fetch: { upstream: a, path: /a }
      - fetch: { upstream: b, path: /b }
      - fetch: { upstream: c, path: /c }
      - merge: {}
  - match: GET /one0
    pipeline:
      - fetch: { upstream: c, path: /c0 }
      - merge: {}
  - match: GET /fan0
    pipeline:
      - fan_out: { calls: { a: { upstream: a, path: /a0 }, b: { upstream: b, path: /b0 }, c: { upstream: c, path: /c0 } } }
      - merge: {}
EOF

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/cb;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream back { server 127.0.0.1:$BACK; keepalive 256; }
    server {
        listen 127.0.0.1:$NGX reuseport backlog=4096;
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

"$FASTERAPID_BIN" -c "$TMP/back.yaml" -o "server.listen=127.0.0.1:$BACK" >"$TMP/back.log" 2>&1 </dev/null &
BACK_PID=$!
PIDS+=($!)
"$FASTERAPID_BIN" -c "$TMP/front.yaml" -o "server.listen=127.0.0.1:$FRONT" >"$TMP/front.log" 2>&1 </dev/null &
FRONT_PID=$!
PIDS+=($!)
NGINX_PID=
wait_ok "http://127.0.0.1:$BACK/a0" && wait_ok "http://127.0.0.1:$FRONT/fan0" || { tail "$TMP"/*.log; exit 1; }
have_nginx=0
if [ -x "$NGINX_BIN" ]; then
    "$NGINX_BIN" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx/" >"$TMP/nginx.log" 2>&1 </dev/null &
    NGINX_PID=$!
    PIDS+=($!)
    wait_ok "http://127.0.0.1:$NGX/c0" && have_nginx=1
fi

url_of() {
    case $1 in
    fan | seq | fan0 | one0) echo "http://127.0.0.1:$FRONT/$1" ;;
    nginx_c) echo "http://127.0.0.1:$NGX/c" ;;
    nginx_c0) echo "http://127.0.0.1:$NGX/c0" ;;
    esac
}

# CPU clock ticks (user + system) of a process and its children (a master and its workers).
CLK_TCK=$(getconf CLK_TCK)
tree_ticks() {
    local p t=0 v
    for p in "$1" $(pgrep -P "$1"); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) && t=$((t + v))
    done
    echo "$t"
}
# Microseconds of CPU per request from two tick counts and a request count.
us_per_req() { awk -v d="$(($2 - $1))" -v n="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", n ? d / hz * 1e6 / n : 0 }'; }

# wrk's latency line value ("812.00us", "10.52ms", "1.01s") in ms.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

mkdir -p "$TMP/res"
echo "== upstream load: $ROUNDS rounds of ${DURATION}s, wrk -t$THREADS -c$CONNS, $WORKERS worker(s) per server, $(nproc) CPUs"
for round in $(seq "$ROUNDS"); do
    for scn in $SCENARIOS; do
        case $scn in nginx*) [ $have_nginx = 1 ] || continue ;; esac
        case $scn in nginx*) front_pid=$NGINX_PID ;; *) front_pid=$FRONT_PID ;; esac
        f0=$(tree_ticks "$front_pid") b0=$(tree_ticks "$BACK_PID")
        wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency "$(url_of "$scn")" >"$TMP/wrk.out" 2>&1
        f1=$(tree_ticks "$front_pid") b1=$(tree_ticks "$BACK_PID")
        nreq=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
        fcpu=$(us_per_req "$f0" "$f1" "${nreq:-0}") bcpu=$(us_per_req "$b0" "$b1" "${nreq:-0}")
        rps=$(sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$TMP/wrk.out")
        p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.out")")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.out")")
        bad=$(sed -nE 's/.*Non-2xx or 3xx responses: *([0-9]+).*/\1/p' "$TMP/wrk.out")
        [ -n "$rps" ] || { echo "  $scn: wrk failed"; tail -n 5 "$TMP/wrk.out"; continue; }
        echo "$rps $p50 $p99 $fcpu $bcpu" >>"$TMP/res/$scn"
        printf '  round %d %-9s %9s req/s  p50 %7s ms  p99 %7s ms  cpu/req front %6s us back %6s us  non-2xx %s\n' \
            "$round" "$scn" "$rps" "$p50" "$p99" "$fcpu" "$bcpu" "${bad:-0}"
    done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
declare -A RPS P50 FCPU
for scn in $SCENARIOS; do
    f=$TMP/res/$scn
    [ -s "$f" ] || continue
    RPS[$scn]=$(cut -d' ' -f1 "$f" | median)
    P50[$scn]=$(cut -d' ' -f2 "$f" | median)
    echo "bench: upstream.$scn.rps ${RPS[$scn]} req/s"
    echo "bench: upstream.$scn.p50_ms ${P50[$scn]} ms"
    echo "bench: upstream.$scn.p99_ms $(cut -d' ' -f3 "$f" | median) ms"
    FCPU[$scn]=$(cut -d' ' -f4 "$f" | median)
    echo "bench: upstream.$scn.front_cpu_us_per_req ${FCPU[$scn]} us"
    echo "bench: upstream.$scn.back_cpu_us_per_req $(cut -d' ' -f5 "$f" | median) us"
done
ratio() { [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ] && awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { printf "%.3f", a / b }'; }
r=$(ratio fan seq) && echo "bench: upstream.fan_vs_seq.rps_ratio $r x"
r=$(ratio fan nginx_c) && echo "bench: upstream.fan_vs_nginx_c.rps_ratio $r x"
r=$(ratio fan0 nginx_c0) && echo "bench: upstream.fan0_vs_nginx_c0.rps_ratio $r x"
r=$(ratio one0 nginx_c0) && echo "bench: upstream.one0_vs_nginx_c0.rps_ratio $r x"
# The front's CPU per request: fasterapid doing 3 calls (fan0) or 1 (one0) against nginx doing 1.
cratio() { [ -n "${FCPU[$1]:-}" ] && [ -n "${FCPU[$2]:-}" ] && awk -v a="${FCPU[$1]}" -v b="${FCPU[$2]}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else exit 1 }'; }
r=$(cratio fan0 nginx_c0) && echo "bench: upstream.fan0_vs_nginx_c0.front_cpu_ratio $r x"
r=$(cratio one0 nginx_c0) && echo "bench: upstream.one0_vs_nginx_c0.front_cpu_ratio $r x"
grep -h "warn\|error" "$TMP/front.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/  front log: /'
exit 0
