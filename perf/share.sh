#!/usr/bin/env bash
# share.sh — fasterapid binaries compared by the user-space share of their workers' CPU samples.
#
#   perf/share.sh ROUNDS BINARY...      (e.g. perf/share.sh 5 /tmp/fasterapid-old build/fasterapid)
#
# utime, which load.sh and ab.sh divide by the requests, is sampled by the kernel at its tick
# (250 Hz on a tick-accounting kernel): a 5 s run holds a few hundred user ticks, and the same
# binary moves 10-25% from run to run. perf samples the workers at 4 kHz instead, so the share of
# their samples spent outside the kernel (the daemon, libev, libc, vDSO) is a steadier figure for
# the same question: kernel time per request is the same for any build, so a lower share is less
# user CPU per request. Each round runs every binary once, in turn, on a fresh daemon under
# perf/wrk/event.lua (256 connections, 2 workers), and samples 6 s of it; the last lines give
# each binary's median share. Needs perf (Debian linux-perf) and wrk; 127.0.0.1 only; every
# process it starts is stopped by PID.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [ $# -lt 2 ]; then
    echo "usage: $0 ROUNDS BINARY..." >&2
    exit 2
fi
ROUNDS=$1
shift
case $ROUNDS in '' | *[!0-9]* | 0) echo "share.sh: ROUNDS must be a whole number > 0" >&2; exit 2 ;; esac
for b in "$@"; do
    [ -x "$b" ] || { echo "share.sh: $b is not executable" >&2; exit 2; }
done
for tool in perf wrk curl; do
    command -v $tool >/dev/null || { echo "share.sh: $tool not found" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/fa-share.XXXXXX)
DPID= WPID=
cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
    [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A shares
for r in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        port=$((20000 + RANDOM % 20000))
        "$bin" -c "$HERE/fasterapid-perf.yaml" -o server.listen=127.0.0.1:$port \
            -o server.workers=2 >"$TMP/daemon.log" 2>&1 &
        DPID=$!
        for _ in $(seq 50); do
            curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/stats" && break
            sleep 0.1
        done
        workers=$(pgrep -P "$DPID" | paste -sd,)
        if [ -z "$workers" ]; then
            echo "share.sh: $bin did not start; its log:" >&2
            cat "$TMP/daemon.log" >&2
            exit 1
        fi
        (cd "$ROOT" && DURATION=9 exec wrk -t2 -c256 -d11s -s perf/wrk/event.lua \
            "http://127.0.0.1:$port/" >"$TMP/wrk.log" 2>&1) &
        WPID=$!
        sleep 1.5
        perf record -q -e cpu-clock -F 4000 -p "$workers" -o "$TMP/perf.data" -- sleep 6 \
            >/dev/null 2>&1
        wait "$WPID"
        WPID=
        kill -TERM "$DPID"
        wait "$DPID" 2>/dev/null
        DPID=
        share=$(perf report -i "$TMP/perf.data" --sort dso --stdio 2>/dev/null | awk '
            $1 ~ /%$/ { p = $1; sub("%", "", p); if ($2 != "[kernel.kallsyms]") u += p }
            END { printf "%.2f", u }')
        rps=$(sed -nE 's/.*rps=([0-9]+).*/\1/p' "$TMP/wrk.log")
        echo "  round $r  $bin  user share ${share}%  (${rps:-?} req/s)"
        shares[$bin]="${shares[$bin]:-} $share"
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }
echo
for bin in "$@"; do
    m=$(echo "${shares[$bin]}" | median)
    echo "$bin  median user share ${m}%  (rounds:${shares[$bin]})"
    echo "bench: share.$(basename "$bin").user_share $m %"
done
