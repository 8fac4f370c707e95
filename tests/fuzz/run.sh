#!/usr/bin/env bash
# Runs libFuzzer targets, each for SECONDS: tests/fuzz/run.sh SECONDS TARGET...
# Binaries are $FUZZ_DIR/fuzz/TARGET. Each run first replays the seed and regression corpus
# tests/fuzz/corpus/TARGET/ (read-only here), then mutates; new interesting inputs go to
# $FUZZ_DIR/corpus/TARGET/ and a crash input to $FUZZ_DIR/crashes/TARGET-crash-*. Copy a crash
# input into tests/fuzz/corpus/TARGET/ once it is fixed, so every later run replays it.
# Prints one line per target with its executions; exits non-zero on the first failing target.
set -u
seconds=$1
shift
dir=${FUZZ_DIR:-build/fuzz}
src=$(cd "$(dirname "$0")" && pwd)
status=0
for t in "$@"; do
    bin=$dir/fuzz/$t
    mkdir -p "$dir/corpus/$t" "$dir/crashes"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$dir/crashes/$t-")
    case $t in
    fuzz_request) args+=(-max_len=16384 -dict="$src/request.dict") ;;
    fuzz_config) args+=(-max_len=8192 -dict="$src/config.dict") ;;
    fuzz_snapshot) args+=(-max_len=20000) ;;
    esac
    log=$dir/$t.log
    "$bin" "${args[@]}" "$dir/corpus/$t" "$src/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        grep -vE '^#[0-9]+' "$log" | tail -n 60
        echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; see $log"
        status=1
        break
    fi
    echo "fuzz: $t ok: ${execs:-?} executions in ${seconds}s"
done
exit $status
