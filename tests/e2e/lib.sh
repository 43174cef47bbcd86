# tests/e2e/lib.sh - helpers for end-to-end tests: real zq-broker / zq-worker / zq-ctl processes.
# Source it from a test script. Every process started here is stopped by PID on exit, even
# when the test fails; logs are printed on failure.
set -u

B=${ZQ_BUILDDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ZQ_BROKER_BIN=$B/zq-broker
ZQ_WORKER_BIN=$B/zq-worker
ZQ_CTL_BIN=$B/zq-ctl
PLUGINS=$B/plugins
FIXTURES=$B/tests/plugins
# Extra command in front of every daemon (e.g. "valgrind -q --error-exitcode=99").
ZQ_WRAP=${ZQ_WRAP:-}

T=$(mktemp -d "${TMPDIR:-/tmp}/zq-e2e.XXXXXX")
PIDS=()
PASS=0
FAIL=0
CURRENT=""

e2e_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$FAIL" -ne 0 ]; then
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "=== $f"; tail -n 60 "$f"; }; done
    fi
    rm -rf "$T"
}
trap e2e_cleanup EXIT

# A random port whose +1 and +2 neighbours are free too (the broker derives them).
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qE ":($p|$((p + 1))|$((p + 2)))$"); then
            echo "$p"
            return
        fi
    done
    echo 0
}

ok() { PASS=$((PASS + 1)); echo "ok   - $CURRENT: $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $CURRENT: $*"; }
section() { CURRENT=$1; echo "# $1"; }

assert_eq() { # name want got
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: wanted '$2', got '$3'"; fi
}
assert_contains() { # name needle haystack
    if [[ $3 == *"$2"* ]]; then ok "$1"; else bad "$1: '$2' not in: $3"; fi
}
assert_not_contains() {
    if [[ $3 != *"$2"* ]]; then ok "$1"; else bad "$1: '$2' unexpectedly in: $3"; fi
}
assert_file_contains() { # name needle file
    if grep -qF -- "$2" "$3"; then ok "$1"; else bad "$1: '$2' not in $3"; fi
}

# Wait until a command succeeds, at most $1 seconds (polling a condition, not sleeping blindly).
wait_for() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while [ $SECONDS -le $end ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

ctl() { "$ZQ_CTL_BIN" --broker "$URL" "$@"; }

# broker_settled PID LOG: the broker said it is ready, or it has exited.
broker_settled() { grep -q " ready: frontend" "$2" || ! kill -0 "$1" 2>/dev/null; }

# start_broker NAME [args...]: sets URL (if unset) and BROKER_PID; waits for "ready".
start_broker() {
    local name=$1
    shift
    local try
    for try in 1 2 3 4 5; do
        if [ -z "${URL:-}" ] || [ "$try" -gt 1 ]; then URL=tcp://127.0.0.1:$(free_port); fi
        $ZQ_WRAP "$ZQ_BROKER_BIN" --listen "$URL" --data-dir "$T/$name-data" "$@" >>"$T/$name.log" 2>&1 &
        BROKER_PID=$!
        PIDS+=("$BROKER_PID")
        # ready, or dead (a port taken meanwhile): whichever comes first
        wait_for 20 broker_settled "$BROKER_PID" "$T/$name.log"
        if grep -q " ready: frontend" "$T/$name.log"; then return 0; fi
        kill -0 "$BROKER_PID" 2>/dev/null || continue # bind failed: try another port
        break
    done
    bad "broker $name did not start"
    return 1
}

# restart_broker NAME [args...]: same URL and data dir.
restart_broker() {
    local name=$1
    shift
    : >"$T/$name.log.tmp"
    mv "$T/$name.log" "$T/$name.prev.log" 2>/dev/null
    $ZQ_WRAP "$ZQ_BROKER_BIN" --listen "$URL" --data-dir "$T/$name-data" "$@" >>"$T/$name.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_for 20 grep -q " ready: frontend" "$T/$name.log" || bad "broker $name did not restart"
}

# start_worker NAME [args...]: sets WORKER_PID; waits until the broker lists it.
start_worker() {
    local name=$1
    shift
    $ZQ_WRAP "$ZQ_WORKER_BIN" --broker "$URL" -n "$name" "$@" >>"$T/$name.log" 2>&1 &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
    if ! wait_for 30 sh -c "'$ZQ_CTL_BIN' --broker '$URL' status 2>/dev/null | grep -qF -- '$name: OK'"; then
        bad "worker $name did not come online"
        return 1
    fi
}

# stop_pid PID: SIGTERM and wait for it to exit (at most 20 s), then SIGKILL.
stop_pid() {
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

e2e_finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
