#!/usr/bin/env bash
# Run the libFuzzer targets built by `make fuzz` (tests/fuzz/README.md).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 10 seconds, every target
# Each target starts from its seeds (tests/fuzz/corpus/<target>/) and crash regressions
# (tests/fuzz/regressions/<target>/) plus what earlier runs found (build-fuzz/work/<target>/,
# kept: a long run goes on where the last one stopped) and writes what crashes it to
# build-fuzz/artifacts/<target>/. FUZZ_JOBS targets run at once (default 2); FUZZ_ARGS adds
# libFuzzer options. Prints "PASS"/"FAIL" per target and "N passed, N failed", also written
# to tests/fuzz/fuzz-run.log (scripts/test.sh counts it). Exit status 1 if a target failed.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=${ZQ_BUILDDIR:-$src}
secs=${1:-10}
[ $# -gt 0 ] && shift
all="proto time broker_frontend broker_upstream worker_dispatch worker_control client_reply
flower_http"
targets=${*:-$all}
jobs=${FUZZ_JOBS:-2}
out=$b/build-fuzz
for t in $targets; do
    if [ ! -x "$out/fuzz-$t" ]; then
        echo "scripts/fuzz.sh: $out/fuzz-$t missing: run 'make fuzz'" >&2
        exit 2
    fi
done
mkdir -p "$b/tests/fuzz"
summary=$b/tests/fuzz/fuzz-run.log
: >"$summary"

run_one() { # run_one TARGET -> exit status of libFuzzer; log in build-fuzz/logs/TARGET.log
    local t=$1 work=$out/work/$1 art=$out/artifacts/$1/
    mkdir -p "$work" "$art" "$out/logs"
    local dirs=("$work" "$src/tests/fuzz/corpus/$t")
    [ -d "$src/tests/fuzz/regressions/$t" ] && dirs+=("$src/tests/fuzz/regressions/$t")
    # targets whose state lives across inputs (a broker, a client, a monitor) allocate on
    # almost every input: a leak check after each would cost 20x the run (LeakSanitizer still
    # checks everything at exit, and the replay of the corpus in an ASan `make check`)
    local extra=""
    case $t in broker_* | client_reply | flower_http) extra="-detect_leaks=0" ;; esac
    # shellcheck disable=SC2086
    ZQ_FUZZ_PLUGINS=$out/plugins "$out/fuzz-$t" -max_total_time="$secs" -timeout=30 \
        -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -dict="$src/tests/fuzz/zq.dict" \
        -artifact_prefix="$art" $extra ${FUZZ_ARGS:-} "${dirs[@]}" >"$out/logs/$t.log" 2>&1
}

report() { # report TARGET STATUS
    local t=$1 rc=$2 log=$out/logs/$1.log
    local runs cov
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "PASS $t: ${runs:-?} runs in ${secs}s, coverage ${cov:-?} edges" | tee -a "$summary"
    else
        {
            echo "FAIL $t (exit $rc): see $log; the input is in $out/artifacts/$t/"
            grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz:|artifact_prefix)' "$log" |
                head -20
        } | tee -a "$summary"
    fi
}

declare -A pid_of
passed=0 failed=0
finish() { # finish TARGET: wait for it, report, count
    local rc=0
    wait "${pid_of[$1]}" || rc=$?
    report "$1" "$rc"
    if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    unset "pid_of[$1]"
}
for t in $targets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
        for d in "${!pid_of[@]}"; do
            kill -0 "${pid_of[$d]}" 2>/dev/null || finish "$d"
        done
    done
    run_one "$t" &
    pid_of[$t]=$!
done
for d in "${!pid_of[@]}"; do
    finish "$d"
done
echo "$passed passed, $failed failed" | tee -a "$summary"
[ "$failed" -eq 0 ]
