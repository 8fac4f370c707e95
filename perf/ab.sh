#!/usr/bin/env bash
# ab.sh — two fasterapid binaries, A and B, compared on one perf/load.sh scenario in pairs.
#
#   perf/ab.sh OLD_BINARY NEW_BINARY        (e.g. a copy of build/fasterapid from before a change)
#
# On this shared 2-core machine one binary's user CPU per request ranges ±25% from run to run,
# so two separate load.sh runs cannot tell a 10% change. Here each round runs A then B (then A
# then B ...), each on a fresh daemon for one load.sh run (SERVERS=fasterapid ROUNDS=1), so
# drift hits both alike; the figures are the per-binary medians and, the steadier signal, how
# many rounds B used less user CPU than A in the same pair.
#
# Environment: PAIRS [6] rounds, SCENARIO [event], DURATION [5] seconds of sending per run, and
# whatever else load.sh takes (WORKERS, CONNS, ...). Prints the pairs, a table, and
#   bench: ab.<scenario>.user_us_per_req.a|b, ab.<scenario>.user_ratio_b_vs_a, ab.<scenario>.b_better_pairs
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
    echo "usage: $0 BINARY_A BINARY_B   (two executable fasterapid builds)" >&2
    exit 2
fi
A=$(realpath "$1") B=$(realpath "$2")
PAIRS=${PAIRS:-6}
SCENARIO=${SCENARIO:-event}
DURATION=${DURATION:-5}
case $PAIRS in '' | *[!0-9]* | 0) echo "ab.sh: PAIRS must be a whole number > 0" >&2; exit 2 ;; esac

# One load.sh run of one binary: prints "rps user_us" or nothing if the run failed.
run_one() {
    FASTERAPID_BIN=$1 SERVERS=fasterapid SCENARIOS=$SCENARIO ROUNDS=1 DURATION=$DURATION \
        "$HERE/load.sh" 2>&1 | awk -v s="load.$SCENARIO" '
            $1 == "bench:" && $2 == s ".rps" { r = $3 }
            $1 == "bench:" && $2 == s ".user_us_per_req" { u = $3 }
            / FAIL / { bad = 1 }
            END { if (r != "" && u != "" && !bad) print r, u }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }

ua=() ub=()
better=0
for p in $(seq "$PAIRS"); do
    ra=$(run_one "$A") rb=$(run_one "$B")
    if [ -z "$ra" ] || [ -z "$rb" ]; then
        echo "ab.sh: pair $p: a load.sh run failed (run it alone to see why)" >&2
        exit 1
    fi
    read -r rpsa usa <<<"$ra"
    read -r rpsb usb <<<"$rb"
    ua+=("$usa") ub+=("$usb")
    awk -v a="$usa" -v b="$usb" 'BEGIN { exit !(b < a) }' && better=$((better + 1))
    printf '  pair %d  A %8s req/s %6s us/req   B %8s req/s %6s us/req\n' "$p" "$rpsa" "$usa" "$rpsb" "$usb"
done
ma=$(printf '%s\n' "${ua[@]}" | median)
mb=$(printf '%s\n' "${ub[@]}" | median)
ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }')
printf '\n%-10s %s\n%-10s %s\n' "A" "$A" "B" "$B"
printf 'user us/req medians: A %s  B %s  (B/A %s); B used less in %d of %d pairs\n\n' \
    "$ma" "$mb" "$ratio" "$better" "$PAIRS"
echo "bench: ab.$SCENARIO.user_us_per_req.a $ma us"
echo "bench: ab.$SCENARIO.user_us_per_req.b $mb us"
echo "bench: ab.$SCENARIO.user_ratio_b_vs_a $ratio x"
echo "bench: ab.$SCENARIO.b_better_pairs $better of $PAIRS"
