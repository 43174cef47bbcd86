#!/usr/bin/env bash
# README command 2 (and what .ci/run calls): install what is missing, build, run every test
# (Check unit suites + end-to-end tests with real processes), a valgrind memcheck run of
# broker, worker and client (make check-valgrind; ZQ_SKIP_VALGRIND=1 skips it), a short
# fuzzing run (tests/fuzz/README.md; ZQ_SKIP_FUZZ=1 skips it), then the same suite again in
# a separate AddressSanitizer+UBSan build (ZQ_SKIP_ASAN=1 skips it). Prints
# "N passed, N failed" at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-deps.sh --with-test-tools || exit 1
scripts/build.sh || exit 1

status=0
make -j2 check || status=1

# valgrind memcheck of broker, worker and client over 10,000 tasks (tests/soak/valgrind.sh,
# well under 2 min): its log, tests/soak/check-valgrind.log, is counted in the closing line.
rm -f tests/soak/check-valgrind.log
if [ "${ZQ_SKIP_VALGRIND:-0}" != 1 ]; then
    VALGRIND_N=${ZQ_VALGRIND_N:-10000} make -s check-valgrind || status=1
fi

# Fuzzing, a short run: every libFuzzer target for ZQ_FUZZ_SECONDS (default 10) seconds, two
# at a time, from its seeds and crash regressions (tests/fuzz/README.md has the long run).
# Its "N passed, N failed" lands in tests/fuzz/fuzz-run.log, counted below.
rm -f tests/fuzz/fuzz-run.log
if [ "${ZQ_SKIP_FUZZ:-0}" != 1 ]; then
    { make -j2 -s fuzz >/dev/null && make -s fuzz-run FUZZ_SECONDS="${ZQ_FUZZ_SECONDS:-10}"; } ||
        status=1
fi

# Sanitized pass in its own copy of the sources (an in-tree build cannot share a VPATH build).
if [ "${ZQ_SKIP_ASAN:-0}" != 1 ]; then
    asan=$root/build-asan
    rm -rf "$asan" && mkdir -p "$asan/src"
    git ls-files -co --exclude-standard -z | xargs -0 tar -cf - | tar -xf - -C "$asan/src"
    (cd "$asan/src" && ./autogen.sh >/dev/null && ./configure -q --enable-sanitizers &&
        make -j2 -s && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        make -j2 check) || status=1
fi

# One closing line over every individual check: Check's "Checks: N, Failures: F, Errors: E"
# and the end-to-end scripts' "N passed, N failed".
logs=$(find "$root/tests" "$root/build-asan/src/tests" -name '*.log' ! -name 'test-suite.log' 2>/dev/null)
passed=0 failed=0
for f in $logs; do
    while read -r c fl er; do
        passed=$((passed + c - fl - er)); failed=$((failed + fl + er))
    done < <(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$f")
    while read -r p fl; do
        passed=$((passed + p)); failed=$((failed + fl))
    done < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$f")
done
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1   # a build or harness failure counts too
# Name each failed check (and the first lines of a sanitizer report) just before the
# closing line, where a CI summary that keeps only the tail of the output still shows them.
if [ "$failed" -ne 0 ]; then
    echo "failed checks:"
    for f in $logs; do
        grep -hE '^FAIL - |:[0-9]+:[EF]:|^(==[0-9]+==ERROR|SUMMARY): |runtime error:' "$f" 2>/dev/null |
            head -n 20 | sed "s|^|  ${f#"$root"/}: |"
    done
fi
echo "$passed passed, $failed failed"
exit $status
