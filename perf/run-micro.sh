#!/usr/bin/env bash
# run-micro.sh — runs each micro-benchmark program given as an argument (make bench-micro passes
# build/perf/bench_*), shows its own output as it comes, and ends with one table of every
# "bench: <name> <value> <unit>" line they printed.
#
# The programs size themselves (each stays under ~10 s); nothing is passed to them. Each one is
# cut off after MICRO_TIMEOUT seconds (default 30) so that a hung benchmark cannot hang make;
# the whole set should take under a minute, and the closing line says how long it took.
# Exits 1 if a program failed, timed out, or printed no bench: line.
set -u

MICRO_TIMEOUT=${MICRO_TIMEOUT:-30}
out=$(mktemp /tmp/fasterapid-micro.XXXXXX)
trap 'rm -f "$out"' EXIT

if [ $# -eq 0 ]; then
    echo "== micro: no benchmark programs (perf/bench_*.c) to run"
    exit 0
fi

failed=0
start=$(date +%s.%N)
for prog in "$@"; do
    name=$(basename "$prog")
    echo "== $name"
    t0=$(date +%s.%N)
    # Show the program's output as it comes and keep a copy for the summary.
    timeout --kill-after=5 "$MICRO_TIMEOUT" "$prog" </dev/null 2>&1 | tee "$out.one"
    rc=${PIPESTATUS[0]}
    t1=$(date +%s.%N)
    n=$(grep -c '^bench: ' "$out.one")
    grep '^bench: ' "$out.one" >>"$out"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $name: still running after ${MICRO_TIMEOUT} s, stopped"
        failed=$((failed + 1))
    elif [ "$rc" -ne 0 ]; then
        echo "FAIL $name: exit status $rc"
        failed=$((failed + 1))
    elif [ "$n" -eq 0 ]; then
        echo "FAIL $name: printed no 'bench: <name> <value> <unit>' line"
        failed=$((failed + 1))
    fi
    awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN { printf "   (%s: %.1f s)\n", n, b - a }'
done
rm -f "$out.one"

echo
echo "== micro-benchmark summary"
awk '{ unit = $4; for (i = 5; i <= NF; i++) unit = unit " " $i
       printf "%-44s %14s  %s\n", $2, $3, unit }' "$out"
echo
cat "$out"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" -v n=$# -v f="$failed" 'BEGIN {
    t = b - a
    printf "micro: %d programs, %d failed, %.1f s%s\n", n, f, t, (t > 60) ? " (over the one-minute budget)" : "" }'
[ "$failed" -eq 0 ]
