#!/usr/bin/env bash
# End-to-end: countdown/ETA, expires, retry semantics, time limits, revoke (issue 3).
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/plugins"
cp "$PLUGINS/tasks.so" "$FIXTURES/testtasks.so" "$T/plugins/"

section "startup"
start_broker b || exit 1
start_worker w1@time --plugins "$T/plugins" -c 2 --time-limit 1.5 -l INFO || exit 1

section "countdown, eta, expires, retries (client API)"
if "$B/tests/e2e/time_api" "$URL" >"$T/time_api.log" 2>&1; then ok "time_api"; else bad "time_api: $(grep FAIL "$T/time_api.log")"; fi

section "countdown from the CLI"
start=$SECONDS
assert_eq "countdown 2 prints 4" "4" "$(ctl call tasks.add 2 2 --countdown 2 --wait --timeout 10)"
[ $((SECONDS - start)) -ge 1 ] && ok "took at least the countdown" || bad "returned early"
out=$(ctl call tasks.add 2 2 --countdown 2 --expires 1 --wait --timeout 10 2>&1); rc=$?
assert_eq "expired exits 1" 1 "$rc"
assert_contains "expired is REVOKED" "REVOKED" "$out"

section "hard time limit kills only that task"
long=$(ctl call testtasks.sleep_ignore 5)
short=$(ctl call tasks.sleep 0.5)
assert_eq "the other task completes" "0.5" "$(ctl --timeout 10 result "$short")"
ctl --timeout 10 result "$long" >/dev/null 2>&1
j=$(ctl --json result "$long")
assert_contains "TimeLimitExceeded" "TimeLimitExceeded" "$j"
assert_contains "hard limit -> FAILURE" '"state":"FAILURE"' "$j"
assert_eq "worker keeps serving" "2" "$(ctl call tasks.add 1 1 --wait --timeout 10)"

section "soft time limit is visible to the task"
j=$(ctl call testtasks.limited 3 --wait --timeout 10 --json 2>/dev/null)
assert_contains "soft limit seen" "SoftTimeLimitExceeded" "$j"

section "revoke"
# a worker without --time-limit, so that only the revoke can end the long task below
stop_pid "$WORKER_PID"
start_worker w1b@time --plugins "$T/plugins" -c 2 || exit 1
rid=$(ctl call tasks.add 5 5 --countdown 3)
ctl revoke "$rid" >/dev/null; rc=$?
assert_eq "revoke exits 0" 0 "$rc"
ctl --timeout 10 result "$rid" >/dev/null 2>&1
j=$(ctl --json result "$rid")
assert_contains "revoked before start" '"state":"REVOKED"' "$j"
assert_contains "never started" '"date_started":null' "$j"
tid=$(ctl call tasks.sleep 30)
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' --json result '$tid' | grep -q '\"state\":\"STARTED\"'" && ok "sleep(30) started" || bad "sleep(30) never started"
ctl revoke --terminate "$tid" >/dev/null
out=$(ctl --timeout 10 result "$tid" 2>&1); rc=$?
assert_eq "terminated task exits 1" 1 "$rc"
j=$(ctl --json result "$tid")
assert_contains "terminated -> REVOKED" '"state":"REVOKED"' "$j"
assert_contains "terminated message" "terminated" "$j"

section "an ETA task held by a worker that is SIGKILLed runs on another worker"
stop_pid "$WORKER_PID"
start_worker w2@time --plugins "$T/plugins" -c 1 || exit 1
w2=$WORKER_PID
eid=$(ctl call tasks.add 20 22 --countdown 3)
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' --json result '$eid' | grep -q '\"worker\":\"w2@time\"'" && ok "w2 holds the ETA task" || bad "w2 never got it"
kill -KILL "$w2"; wait "$w2" 2>/dev/null
start_worker w3@time --plugins "$T/plugins" -c 1 || exit 1
assert_eq "ETA task still runs" "42" "$(ctl --timeout 30 result "$eid")"
assert_contains "on the other worker" '"worker":"w3@time"' "$(ctl --json result "$eid")"

e2e_finish
