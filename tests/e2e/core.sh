#!/usr/bin/env bash
# End-to-end: the core issue's "What a user does", every example task, the three pools,
# bad input, and a broker restart with tasks queued. Real processes over real sockets.
. "$(dirname "$0")/lib.sh"

section "startup"
start_broker b1 || exit 1
start_worker w1@e2e --plugins "$PLUGINS" -c 2 -l INFO || exit 1
assert_file_contains "banner lists tasks" ". tasks.add" "$T/w1@e2e.log"
assert_file_contains "worker ready line" "w1@e2e ready." "$T/w1@e2e.log"

section "call / result"
id=$(ctl call tasks.add 2 2); rc=$?
assert_eq "call exits 0" 0 "$rc"
if [[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]; then ok "call prints a task id (uuid7)"; else bad "call printed '$id'"; fi
assert_eq "result prints 4" "4" "$(ctl --timeout 10 result "$id")"
assert_eq "call --wait prints 4" "4" "$(ctl call tasks.add 2 2 --wait --timeout 10)"
j=$(ctl --json result "$id")
assert_contains "json id" "\"id\":\"$id\"" "$j"
assert_contains "json task" '"task":"tasks.add"' "$j"
assert_contains "json state" '"state":"SUCCESS"' "$j"
assert_contains "json result" '"result":4' "$j"
assert_contains "json worker" '"worker":"w1@e2e"' "$j"
assert_contains "json date_done" '"date_done":"20' "$j"
assert_contains "json retries" '"retries":0' "$j"
assert_file_contains "received log line" "Task tasks.add[$id] received" "$T/w1@e2e.log"
if grep -qE "Task tasks.add\[$id\] succeeded in [0-9.]+s: 4" "$T/w1@e2e.log"; then ok "succeeded log line"; else bad "no succeeded log line"; fi

section "example tasks"
assert_eq "add_when_binded" "10" "$(ctl call tasks.add_when_binded 5 5 --wait --timeout 10)"
assert_file_contains "bound task prints its request" "self.request -> <Context: {" "$T/w1@e2e.log"
assert_file_contains "request names the task" "'task': 'tasks.add_when_binded'" "$T/w1@e2e.log"
assert_eq "div" "2" "$(ctl call tasks.div 4 2 --wait --timeout 10)"
assert_eq "sleep" "0.2" "$(ctl call tasks.sleep 0.2 --wait --timeout 10)"
out=$(ctl call tasks.fail boom --wait --timeout 10 2>&1); rc=$?
assert_eq "fail exits 1" 1 "$rc"
assert_contains "fail message" "boom" "$out"
fid=$(ctl call tasks.fail boom)
ctl --timeout 10 result "$fid" >/dev/null 2>&1
j=$(ctl --json result "$fid")
assert_contains "fail state" '"state":"FAILURE"' "$j"
assert_contains "fail exception" '"message":"boom"' "$j"
rid=$(ctl call tasks.request)
r=$(ctl --timeout 10 result "$rid")
assert_contains "request id" "\"id\":\"$rid\"" "$r"
assert_contains "request root_id" "\"root_id\":\"$rid\"" "$r"
assert_contains "request hostname" '"hostname":"w1@e2e"' "$r"
assert_contains "request delivery_info" '"routing_key":"celery"' "$r"
assert_contains "request retries" '"retries":0' "$r"
fl=$(ctl call tasks.flaky 2)
assert_eq "flaky(2) succeeds" "2" "$(ctl --timeout 20 result "$fl")"
assert_contains "flaky retried twice" '"retries":2' "$(ctl --json result "$fl")"
dv=$(ctl call tasks.div 4 0 --kwargs '{"countdown": 0.1}')
ctl --timeout 20 result "$dv" >/dev/null 2>&1
j=$(ctl --json result "$dv")
assert_contains "div(4,0) fails" '"state":"FAILURE"' "$j"
assert_contains "div(4,0) max retries" "MaxRetriesExceededError" "$j"
assert_contains "div(4,0) message" "Can't retry tasks.div[$dv] args:(4, 0) kwargs:{'countdown': 0.1}" "$j"
assert_contains "div(4,0) retried once" '"retries":1' "$j"
assert_file_contains "div logs the error" "Error ZeroDivisionError" "$T/w1@e2e.log"
cr=$(ctl call tasks.crash)
ctl --timeout 20 result "$cr" >/dev/null 2>&1
j=$(ctl --json result "$cr")
assert_contains "crash fails" '"state":"FAILURE"' "$j"
assert_contains "crash is WorkerLostError" "WorkerLostError" "$j"
assert_eq "worker survives a crash" "3" "$(ctl call tasks.add 1 2 --wait --timeout 10)"

section "bad input"
out=$(ctl call tasks.add --args '[1,' 2>&1); rc=$?
assert_eq "bad --args exits 2" 2 "$rc"
assert_contains "bad --args message" "--args" "$out"
out=$(ctl call tasks.add --kwargs '[1]' 2>&1); rc=$?
assert_eq "non-object --kwargs exits 2" 2 "$rc"
out=$(ctl call tasks.nope 1 --wait --timeout 10 2>&1); rc=$?
assert_eq "unknown task exits 1" 1 "$rc"
assert_contains "unknown task is NotRegistered" "NotRegistered" "$out"
assert_contains "its traceback shows the call" "tasks.nope(1)" "$out"
assert_file_contains "unregistered log line" "Received unregistered task of type 'tasks.nope'" "$T/w1@e2e.log"
out=$(ctl result 00000000-0000-4000-8000-000000000000 2>&1); rc=$?
assert_eq "unknown id exits 1" 1 "$rc"
assert_contains "unknown id is said" "unknown task id" "$out"
assert_contains "unknown id json" '"known":false' "$(ctl --json result 00000000-0000-4000-8000-000000000000 2>/dev/null)"
out=$(ctl frobnicate 2>&1); rc=$?
assert_eq "unknown command exits 2" 2 "$rc"

section "client API"
if "$B/tests/e2e/client_api" "$URL" >"$T/client_api.log" 2>&1; then ok "client_api program"; else bad "client_api program: $(tail -5 "$T/client_api.log")"; fi

section "pools"
stop_pid "$WORKER_PID"
for pool in threads solo prefork; do
    start_worker "p-$pool@e2e" --plugins "$PLUGINS" -c 2 -P "$pool" || continue
    assert_file_contains "$pool banner" "($pool)" "$T/p-$pool@e2e.log"
    assert_eq "$pool add" "4" "$(ctl call tasks.add 2 2 --wait --timeout 10)"
    assert_eq "$pool bound" "10" "$(ctl call tasks.add_when_binded 5 5 --wait --timeout 10)"
    out=$(ctl call tasks.fail boom --wait --timeout 10 2>&1)
    assert_contains "$pool fail" "boom" "$out"
    assert_eq "$pool flaky" "1" "$(ctl call tasks.flaky 1 --wait --timeout 20)"
    stop_pid "$WORKER_PID"
done

section "plugins with a wrong ABI or no entry point are refused"
mkdir -p "$T/plugins"
cp "$PLUGINS/tasks.so" "$FIXTURES/badabi.so" "$FIXTURES/nosym.so" "$T/plugins/"
start_worker abi@e2e --plugins "$T/plugins" -c 1 || true
assert_file_contains "badabi named" "badabi.so" "$T/abi@e2e.log"
if grep -q "badabi.so.*ABI\|ABI.*badabi.so" "$T/abi@e2e.log"; then ok "ABI mismatch said"; else bad "no ABI line"; fi
assert_file_contains "nosym named" "nosym.so" "$T/abi@e2e.log"
assert_eq "good plugin still loads" "4" "$(ctl call tasks.add 2 2 --wait --timeout 10)"
stop_pid "$WORKER_PID"

section "broker restart with tasks queued: none lost"
ids=()
for i in $(seq 1 30); do ids+=("$(ctl call tasks.add "$i" "$i")"); done
assert_eq "30 tasks accepted" 30 "$(printf '%s\n' "${ids[@]}" | grep -c .)"
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
restart_broker b1
start_worker r@e2e --plugins "$PLUGINS" -c 2 || true
good=0
for i in $(seq 1 30); do
    v=$(ctl --timeout 20 result "${ids[$((i - 1))]}")
    [ "$v" == "$((2 * i))" ] && good=$((good + 1))
done
assert_eq "all 30 ran after the restart" 30 "$good"

section "a result the broker never stored is sent again (upstream acknowledgement)"
# The broker is frozen while the task ends, so the worker's BATCH with the SUCCESS sits in
# its socket buffer and dies with it: only the worker's copy, kept until ACK, survives.
start_worker ack@e2e --plugins "$PLUGINS" -c 1 -Q ackq -l INFO || true
sid=$(ctl call tasks.sleep 1 -Q ackq)
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' --json result '$sid' | grep -q '\"state\":\"STARTED\"'" &&
    ok "sleep(1) started" || bad "sleep(1) never started"
kill -STOP "$BROKER_PID"
wait_for 10 grep -q "tasks.sleep\[$sid\] succeeded" "$T/ack@e2e.log" &&
    ok "it ended while the broker was frozen" || bad "it did not end"
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
restart_broker b1
j=$(ctl --timeout 30 --json result --timeout 30 "$sid")
assert_contains "recorded SUCCESS after the restart" '"state":"SUCCESS"' "$j"
assert_contains "with its result" '"result":1' "$j"
assert_not_contains "not WorkerLostError" 'WorkerLostError' "$j"

e2e_finish
