#!/usr/bin/env bash
# tests/e2e/flower.sh - the web monitor `zq-ctl flower` (docs/monitor.md) against a real
# broker and worker: the command line, every HTTP route through tests/e2e/flower_api (a raw
# socket client: routes, bad input, concurrency, SSE), authentication, read-only mode, a
# URL prefix, and the same counts after a restart of the monitor and of the broker.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

API=$B/tests/e2e/flower_api
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed (scripts/install-deps.sh --with-test-tools installs it)"
    exit 77
fi

# start_flower NAME [args...]: a monitor on a free port; sets FLOWER_PID and FURL.
start_flower() {
    local name=$1
    shift
    $ZQ_WRAP "$ZQ_CTL_BIN" flower --broker "$URL" --port 0 "$@" >"$T/$name.log" 2>&1 &
    FLOWER_PID=$!
    FLOWER_LOG=$T/$name.log
    PIDS+=("$FLOWER_PID")
    if ! wait_for 20 grep -q "Visit me at" "$T/$name.log"; then
        bad "flower $name did not start"
        return 1
    fi
    FPORT=$(grep -o 'Visit me at http://127.0.0.1:[0-9]*' "$T/$name.log" | grep -o '[0-9]*$')
    FURL=http://127.0.0.1:$FPORT
}

# stop_flower: SIGTERM by PID; its log must show a clean exit (no sanitizer or valgrind
# report: the ASan pass and ZQ_WRAP=valgrind runs check the server's threads this way)
stop_flower() {
    stop_pid "$FLOWER_PID"
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|ERROR SUMMARY: [1-9]|definitely lost: [1-9]" "$FLOWER_LOG"; then
        bad "$(basename "$FLOWER_LOG" .log): memory errors reported"
    else
        ok "$(basename "$FLOWER_LOG" .log) stopped cleanly"
    fi
}

# run_api MODE ARGS...: tests/e2e/flower_api's checks, counted here
run_api() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "FAIL - "*) bad "${line#FAIL - }" ;;
        *) echo "$line" ;;
        esac
    done < <("$API" "$@" 2>&1)
}

# The task counts by state, as the dashboard gets them.
counts() { curl -s "$FURL/api/stats" | grep -o '"tasks":{[^}]*}'; }
worker_counts() { curl -s "$FURL/api/workers?workername=fl@test" | grep -o '"stats":{[^}]*}'; }

section "command line"
out=$("$ZQ_CTL_BIN" flower --help)
assert_eq "flower --help exits 0" 0 $?
assert_contains "help lists --basic-auth" "--basic-auth USER:PASS" "$out"
assert_contains "zq-ctl help lists flower" "flower" "$("$ZQ_CTL_BIN" --help)"
err=$("$ZQ_CTL_BIN" flower --port abc 2>&1)
assert_eq "a bad port is a usage error" 2 $?
assert_contains "... saying so" "--port: not a port number" "$err"
err=$("$ZQ_CTL_BIN" flower --address 0.0.0.0 2>&1)
assert_eq "a public address without auth is refused" 2 $?
assert_contains "... saying why" "without --basic-auth" "$err"
err=$("$ZQ_CTL_BIN" flower --basic-auth nocolon 2>&1)
assert_eq "a --basic-auth without USER:PASS is refused" 2 $?
err=$("$ZQ_CTL_BIN" flower --bogus 2>&1)
assert_eq "an unknown option is refused" 2 $?

section "every route"
start_broker b1 || exit 1
start_worker fl@test --plugins "$PLUGINS" -c 2 || exit 1
start_flower f1 || exit 1
assert_file_contains "logs that it needs no auth on loopback" "No authentication: listening on 127.0.0.1 only" "$T/f1.log"
# a second monitor on the same port fails cleanly
"$ZQ_CTL_BIN" flower --broker "$URL" --port "$FPORT" >"$T/f-dup.log" 2>&1
assert_eq "a port in use: exit 1" 1 $?
assert_file_contains "... with a clear message" "cannot listen on 127.0.0.1:$FPORT" "$T/f-dup.log"
run_api open 127.0.0.1 "$FPORT" fl@test

section "restart of the monitor"
# nothing is running now (every task of the API test has ended): counts are stable
wait_for 20 sh -c "curl -s '$FURL/api/stats' | grep -q '\"STARTED\":0,\"RETRY\":0'" || bad "tasks still running"
before=$(counts)
wbefore=$(worker_counts)
assert_contains "counts read" '"SUCCESS":' "$before"
stop_flower
start_flower f2 || exit 1
assert_eq "same task counts after the monitor restarted" "$before" "$(counts)"
assert_eq "same worker counts after the monitor restarted" "$wbefore" "$(worker_counts)"

section "restart of the broker"
stop_pid "$BROKER_PID"
restart_broker b1
wait_for 30 sh -c "curl -s '$FURL/api/workers?status=1' | grep -q '\"fl@test\":true'" ||
    bad "the worker did not come back"
assert_eq "same task counts after the broker restarted" "$before" "$(counts)"
# the monitor's event stream came back by itself
sent=$(curl -s "$FURL/metrics" | grep -c 'type="task-succeeded"')
id=$(curl -s -X POST "$FURL/api/task/async-apply/tasks.add" -d '{"args":[20,22]}' | grep -o '"task-id":"[^"]*"' | cut -d'"' -f4)
assert_contains "a task sent through the API after the restart" "-" "$id"
wait_for 20 sh -c "curl -s '$FURL/api/task/result/$id?timeout=5' | grep -q '\"result\":42'" &&
    ok "its result is 42" || bad "no result for $id"
wait_for 20 sh -c "curl -s '$FURL/metrics' | grep 'zq_events_total{worker=\"fl@test\",type=\"task-succeeded\",task=\"tasks.add\"}' | grep -qv ' 0$'" &&
    ok "events are counted again after the broker restart" || bad "no events after the broker restart"
stop_flower

section "authentication"
start_flower f3 --basic-auth alice:s3cret --basic-auth bob:hunter2 || exit 1
assert_file_contains "logs the auth mode" "Authentication: HTTP basic, 2 users" "$T/f3.log"
run_api auth 127.0.0.1 "$FPORT" alice:s3cret bob:hunter2
stop_flower

section "read-only"
start_flower f4 --read-only || exit 1
run_api readonly 127.0.0.1 "$FPORT"
stop_flower

section "url prefix"
start_flower f5 --url-prefix /flower/ || exit 1
assert_file_contains "logs the prefixed URL" "Visit me at http://127.0.0.1:$FPORT/flower/" "$T/f5.log"
run_api prefix 127.0.0.1 "$FPORT" /flower
stop_flower
assert_file_contains "the monitor shut down cleanly" "flower: shutting down" "$T/f5.log"

e2e_finish
