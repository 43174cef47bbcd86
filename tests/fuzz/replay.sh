#!/bin/sh
# Replay every seed (tests/fuzz/corpus/<target>/) and crash regression
# (tests/fuzz/regressions/<target>/) through the fuzz targets built by `make check` with the
# configured compiler (tests/fuzz/replay-<target>): each input must go through without a
# crash, a failed check or (in a sanitized build) a sanitizer report. One check per input.
# Prints "N passed, N failed".
set -u
b=${ZQ_BUILDDIR:-.}
s=${ZQ_SRCDIR:-.}
targets="proto time broker_frontend broker_upstream worker_dispatch worker_control
client_reply flower_http"
passed=0
failed=0
err=$(mktemp "${TMPDIR:-/tmp}/zq-replay.XXXXXX") || exit 1
trap 'rm -f "$err"' EXIT
for t in $targets; do
    dirs="$s/tests/fuzz/corpus/$t $s/tests/fuzz/regressions/$t"
    # shellcheck disable=SC2086
    n=$(find $dirs -type f ! -name 'README*' ! -name '.*' 2>/dev/null | wc -l)
    # shellcheck disable=SC2086
    out=$(ZQ_FUZZ_RESET=1 "$b/tests/fuzz/replay-$t" $dirs 2>"$err")
    rc=$?
    ok=$(printf '%s\n' "$out" | grep -c '^ok ')
    bad=$((n - ok))
    [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
    if [ "$bad" -ne 0 ] || [ "$n" -eq 0 ]; then
        [ "$n" -eq 0 ] && bad=1
        echo "FAIL $t: $ok of $n inputs replayed (exit $rc); last messages:"
        tail -n 30 "$err"
    else
        echo "PASS $t: $n inputs"
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
