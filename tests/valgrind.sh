#!/usr/bin/env bash
# make valgrind: runs the daemon (built with libc malloc) under valgrind memcheck, master and
# workers, drives it with a scripted client (the 1MRC contract, pipelining, every error status,
# a waiting stage answered and one abandoned, connections abandoned mid-request, a reload), stops
# it with SIGTERM, and fails unless every process logged zero errors: no invalid access, no
# definite, indirect or possible leak.
# Env: FASTERAPID_BIN (the binary), FA_SRCDIR (source tree). Logs: build/valgrind/vg/.
set -u
bin=${FASTERAPID_BIN:?}
src=${FA_SRCDIR:-.}
out=$src/build/valgrind/vg
rm -rf "$out"
mkdir -p "$out"
fail() { echo "valgrind: FAIL: $*"; [ -n "${pid:-}" ] && kill -KILL "$pid" 2>/dev/null; exit 1; }

start() {
    port=$((20000 + RANDOM % 30000))
    valgrind -q --trace-children=yes --child-silent-after-fork=no --leak-check=full \
        --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
        --error-exitcode=99 --log-file="$out/vg.%p.log" \
        "$bin" -c "$src/tests/conf/http.yaml" -o "server.listen=127.0.0.1:$port" \
        -o server.workers=2 -o timeouts.header=10s -o timeouts.body=10s >"$out/daemon.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        grep -q "ready:" "$out/daemon.log" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
for _ in 1 2 3; do start && break; wait "$pid" 2>/dev/null; pid=; done
[ -n "${pid:-}" ] || fail "the daemon did not start under valgrind; see $out/daemon.log"
echo "valgrind: daemon $pid on port $port"

# One conversation on a fresh connection: sends $1 (printf format), prints everything read until
# the server closes (the last request must ask for Connection: close) or 20 s pass.
talk() {
    exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connect"
    printf "$1" >&3
    timeout 20 cat <&3
    exec 3<&-
}
status_of() { talk "$1" | head -n 1 | cut -d' ' -f2; }
ev() { local b="{\"userId\":\"$1\",\"value\":$2}"; printf 'POST /event HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s' ${#b} "$b"; }

# 300 pipelined events, 100 distinct users, then stats.
req=
for i in $(seq 1 300); do req+=$(ev "user$((i % 100))" "$i.5"); done
req+=$'GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
resp=$(talk "${req//%/%%}")
n=$(grep -c "^HTTP/1.1 200" <<<"$resp")
[ "$n" = 301 ] || fail "pipelined events: $n answers instead of 301"
grep -q '"totalRequests":300,"uniqueUsers":100,"sum":45300,' <<<"$resp" || fail "stats: $(tail -c 200 <<<"$resp")"

# Every error status.
check() { local got; got=$(status_of "$2"); [ "$got" = "$1" ] || fail "expected $1, got '$got' for: $2"; }
check 400 'POST /event HTTP/1.1\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{"userId":'
check 400 'GET / HTTP/1.1\r\nBad Header\r\n\r\n'
check 404 'GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n'
check 405 'DELETE /stats HTTP/1.1\r\nConnection: close\r\n\r\n'
check 413 'POST /event HTTP/1.1\r\nContent-Length: 999999\r\n\r\n'
check 414 "GET /$(head -c 2000 /dev/zero | tr '\0' a) HTTP/1.1\r\n\r\n"
check 431 "GET / HTTP/1.1\r\nX: $(head -c 5000 /dev/zero | tr '\0' a)\r\n\r\n"
check 200 'GET /users/42 HTTP/1.1\r\nConnection: close\r\n\r\n'
check 200 'POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"msg\r\n7\r\n":"hi"}\r\n0\r\n\r\n'
check 200 'GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n'

# A waiting stage abandoned (its future is cancelled), and connections abandoned mid-request.
exec 3<>"/dev/tcp/127.0.0.1/$port"; printf 'GET /slow HTTP/1.1\r\n\r\n' >&3; sleep 0.2; exec 3<&-
full=$(ev abandoned 1)
for i in $(seq 1 50); do
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf '%s' "${full:0:$((i * 7 % ${#full}))}" >&3 # never the whole request
    exec 3<&-
done

# A reload: a new generation of workers, the old one drains and exits.
kill -HUP "$pid"
for _ in $(seq 1 300); do [ "$(grep -c "ready:" "$out/daemon.log")" -ge 2 ] && break; sleep 0.1; done
check 200 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n'
got=$(talk 'GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n' | tail -c 200)
grep -q '"totalRequests":300,' <<<"$got" || fail "abandoned requests were counted: $got"

kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 0 ] || fail "the master exited with $rc; see $out/"

nlogs=0
for f in "$out"/vg.*.log; do
    nlogs=$((nlogs + 1))
    if [ -s "$f" ]; then
        echo "valgrind: errors in $f:"; head -n 60 "$f"
        fail "$f is not empty"
    fi
done
# -q keeps a log empty unless something is wrong; make sure the workers were traced at all.
[ "$nlogs" -ge 5 ] || fail "only $nlogs process logs (master + 2 workers + 2 after reload expected)"
echo "valgrind: ok: $nlogs processes (master and workers, before and after a reload), 0 errors, 0 leaks"
