#!/usr/bin/env bash
# Runs each Criterion test binary given as an argument, then prints one closing line with the
# totals ("N passed, N failed"). Exits non-zero if any test failed or crashed or a binary failed.
set -u
passed=0 failed=0 status=0
for t in "$@"; do
    name=$(basename "$t")
    out=$("$t" --jobs "${FA_TEST_JOBS:-2}" --timeout "${FA_TEST_TIMEOUT:-120}" 2>&1)
    rc=$?
    syn=$(printf '%s\n' "$out" | grep -E 'Synthesis: Tested' | tail -n 1)
    p=$(printf '%s' "$syn" | sed -nE 's/.*Passing: ([0-9]+).*/\1/p')
    f=$(printf '%s' "$syn" | sed -nE 's/.*Failing: ([0-9]+).*/\1/p')
    c=$(printf '%s' "$syn" | sed -nE 's/.*Crashing: ([0-9]+).*/\1/p')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${c:-0}))
    if [ "$rc" -ne 0 ] || [ -z "$syn" ]; then
        status=1
        printf '%s\n' "$out" | grep -vE '^\[----\] *$' | tail -n 60
        echo "FAIL $name (exit $rc)"
        [ -z "$syn" ] && failed=$((failed + 1))
    else
        echo "ok   $name: ${p:-0} passed"
    fi
done
echo "tests: $passed passed, $failed failed"
# make test adds the passes up (build/test-totals: "passed failed" per pass).
[ -n "${FA_TOTALS:-}" ] && echo "$passed $failed" >>"$FA_TOTALS"
exit $status
