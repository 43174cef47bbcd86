#!/usr/bin/env bash
# End-to-end: management (issue 4): status, inspect *, purge, revoke, result, events and
# shell, human and --json, against a real broker and real workers. Waits on conditions,
# never on fixed sleeps. The broker runs with --heartbeat 0.5 (a dead worker is dropped after
# 1.5 s; 6 s with the default 2 s) and --lookahead 60 (ETA tasks due within a minute go to
# the workers, so that workers hold scheduled tasks while later ones stay with the broker).
. "$(dirname "$0")/lib.sh"

ms() { date +%s%3N; }
# Sum of every "KEY":N in a JSON text.
jsum() { grep -o "\"$1\":[0-9]*" <<<"$2" | cut -d: -f2 | awk '{s += $1} END {print s + 0}'; }
state_is() { "$ZQ_CTL_BIN" --broker "$URL" --json result "$1" 2>/dev/null | grep -q "\"state\":\"$2\""; }

section "no worker"
start_broker b --heartbeat 0.5 --lookahead 60 || exit 1
out=$(ctl status 2>&1); rc=$?
assert_eq "status with 0 workers exits 1" 1 "$rc"
assert_eq "status with 0 workers says so" "Error: No nodes replied within time constraint" "$out"
out=$(ctl status --json 2>&1); rc=$?
assert_eq "status --json with 0 workers exits 1" 1 "$rc"
out=$(ctl inspect ping 2>&1); rc=$?
assert_eq "inspect ping with 0 workers exits 1" 1 "$rc"
assert_contains "inspect ping with 0 workers says so" "No nodes replied" "$out"
out=$(ctl inspect scheduled 2>&1); rc=$?
assert_eq "inspect scheduled shows the broker even without workers" 0 "$rc"
assert_eq "broker entry, empty" "$(printf -- '->  broker: OK\n    - empty -\n\n0 nodes online.')" "$out"

section "purge with no worker running"
pids=()
for i in 1 2 3 4 5; do pids+=("$(ctl call tasks.add "$i" "$i")"); done
other=$(ctl call tasks.add 9 9 --queue other)
assert_contains "5 queued" "celery          5" "$(ctl queues)"
out=$(echo n | ctl purge 2>&1); rc=$?
assert_eq "purge answered n exits 1" 1 "$rc"
assert_contains "purge asks first" "WARNING:This will remove all tasks from queues: celery, other." "$out"
assert_contains "purge says Aborted!" "Are you sure you want to delete all tasks? [y/N]: Aborted!" "$out"
assert_contains "nothing purged after n" "celery          5" "$(ctl queues)"
out=$(ctl purge -f -Q other); rc=$?
assert_eq "purge -Q other" "Purged 1 message from 1 known task queue." "$out"
out=$(echo y | ctl purge 2>&1); rc=$?
assert_eq "purge answered y exits 0" 0 "$rc"
assert_contains "purged exactly the queued count" "Purged 5 messages from 2 known task queues." "$out"
assert_eq "purge again" "No messages purged from 2 queues." "$(ctl purge -f)"
assert_eq "purge --json" '{"queues":["celery","other"],"purged":0}' "$(ctl purge -f --json)"

section "status with 1 and 2 workers"
start_worker w1@mgmt --plugins "$PLUGINS" -c 2 -l INFO || exit 1
w1=$WORKER_PID
assert_eq "status, 1 worker" "$(printf -- '->  w1@mgmt: OK\n\n1 node online.')" "$(ctl status)"
assert_eq "status --json, 1 worker" '{"w1@mgmt":{"ok":"pong"}}' "$(ctl status --json)"
start_worker w2@mgmt --plugins "$PLUGINS" -c 1 -l INFO || exit 1
w2=$WORKER_PID
assert_eq "status, 2 workers" "$(printf -- '->  w1@mgmt: OK\n->  w2@mgmt: OK\n\n2 nodes online.')" "$(ctl status)"
assert_eq "status --json, 2 workers" '{"w1@mgmt":{"ok":"pong"},"w2@mgmt":{"ok":"pong"}}' "$(ctl status --json)"
assert_eq "status -d" "$(printf -- '->  w2@mgmt: OK\n\n1 node online.')" "$(ctl status -d w2@mgmt)"
out=$(ctl status -d nobody@x 2>&1); rc=$?
assert_eq "status -d unknown exits 1" 1 "$rc"
assert_contains "status -d unknown is said" "nobody@x: ERROR" "$out"
assert_contains "status -d unknown why" "not online" "$out"

section "purged tasks never ran"
ctl call tasks.add 0 0 --wait --timeout 10 >/dev/null # the workers are consuming by now
good=0
for id in "${pids[@]}" "$other"; do
    j=$(ctl --json result "$id")
    [[ $j == *'"state":"REVOKED"'* && $j == *'"message":"purged"'* && $j == *'"date_started":null'* ]] && good=$((good + 1))
done
assert_eq "all 6 purged REVOKED, never started" 6 "$good"
if grep -qF "${pids[0]}" "$T/w1@mgmt.log" "$T/w2@mgmt.log"; then bad "a purged task reached a worker"; else ok "no purged task reached a worker"; fi

section "two workers with the same name"
timeout 20 "$ZQ_WORKER_BIN" --broker "$URL" -n w1@mgmt --plugins "$PLUGINS" -c 1 >"$T/dup.log" 2>&1
rc=$?
assert_eq "the second one exits 1" 1 "$rc"
assert_file_contains "clear error" "a worker named w1@mgmt is already connected" "$T/dup.log"

section "ping, registered, conf, active_queues, stats"
# returns as soon as both workers answered: far below a generous timeout (tens of ms on an
# idle machine; the bound leaves room for a loaded CI box)
t0=$(ms); out=$(ctl inspect stats -t 5); t1=$(ms)
[ $((t1 - t0)) -lt 2500 ] && ok "inspect stats, 2 workers: $((t1 - t0)) ms" || bad "inspect stats took $((t1 - t0)) ms"
t0=$(ms); ctl inspect stats --json -t 5 >/dev/null; t1=$(ms)
[ $((t1 - t0)) -lt 2500 ] && ok "inspect stats --json, 2 workers: $((t1 - t0)) ms" || bad "took $((t1 - t0)) ms"
assert_contains "stats human" "$(printf -- '->  w1@mgmt: OK\n    {\n        "bad_messages": 0,\n        "broker": {')" "$out"
assert_contains "stats pool" '"implementation": "prefork"' "$out"
assert_contains "stats ends like Celery" "$(printf -- '    }\n    \n\n2 nodes online.')" "$out"
j=$(ctl inspect stats --json -d w1@mgmt)
for k in '"total":{' '"pid":' '"uptime":' '"max-concurrency":2' '"processes":[' '"timeouts":[0,0]' \
    '"prefetch_count":4' '"rusage":{"utime":' '"maxrss":' '"succeeded":' '"failed":' '"retried":'; do
    assert_contains "stats --json has $k" "$k" "$j"
done
assert_eq "ping" "$(printf -- '->  w1@mgmt: OK\n        pong\n->  w2@mgmt: OK\n        pong\n\n2 nodes online.')" "$(ctl inspect ping)"
assert_eq "ping --json" '{"w1@mgmt":{"ok":"pong"},"w2@mgmt":{"ok":"pong"}}' "$(ctl inspect ping --json)"
out=$(ctl inspect registered -d w2@mgmt)
assert_contains "registered" "$(printf -- '->  w2@mgmt: OK\n    * tasks.add\n    * tasks.add_when_binded')" "$out"
assert_contains "registered --json" '{"w2@mgmt":["tasks.add","tasks.add_when_binded",' "$(ctl inspect registered --json -d w2@mgmt)"
out=$(ctl inspect conf -d w1@mgmt)
assert_contains "conf" '"worker_concurrency": 2,' "$out"
assert_contains "conf --json" '"worker_name":"w2@mgmt"' "$(ctl inspect conf --json -d w2@mgmt)"
assert_contains "active_queues" "* {'name': 'celery', 'exchange': {'name': 'celery', 'type': 'direct'}, 'routing_key': 'celery'}" "$(ctl inspect active_queues)"
assert_contains "active_queues --json" '"routing_key":"celery"' "$(ctl inspect active_queues --json)"
assert_eq "idle active" "$(printf -- '->  w1@mgmt: OK\n    - empty -\n->  w2@mgmt: OK\n    - empty -\n\n2 nodes online.')" "$(ctl inspect active)"
assert_eq "idle reserved --json" '{"w1@mgmt":[],"w2@mgmt":[]}' "$(ctl inspect reserved --json)"

section "active, reserved, scheduled, query_task"
sleeps=()
for i in 1 2 3; do sleeps+=("$(ctl call tasks.sleep 60)"); done # revoked --terminate below
for id in "${sleeps[@]}"; do
    wait_for 10 state_is "$id" STARTED || bad "sleep $id never started"
done
out=$(ctl inspect active)
good=0
for id in "${sleeps[@]}"; do [[ $out == *"'id': '$id', 'name': 'tasks.sleep', 'args': [60]"* ]] && good=$((good + 1)); done
assert_eq "active shows the 3 running sleeps" 3 "$good"
assert_contains "active has worker_pid" "'acknowledged': True" "$out"
j=$(ctl inspect active --json)
assert_contains "active --json" "\"id\":\"${sleeps[0]}\",\"name\":\"tasks.sleep\"" "$j"
assert_contains "active --json time_start" '"time_start":1' "$j"
adds=()
for i in 1 2 3; do adds+=("$(ctl call tasks.add "$i" 100)"); done # both pools are full now
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' inspect reserved --json | grep -q '${adds[2]}'"
j=$(ctl inspect reserved --json)
good=0
for id in "${adds[@]}"; do [[ $j == *"\"id\":\"$id\""* ]] && good=$((good + 1)); done
assert_eq "reserved shows the 3 waiting adds" 3 "$good"
assert_contains "reserved, human" "'name': 'tasks.add', 'args': [1, 100]" "$(ctl inspect reserved)"
assert_contains "reserved are not acknowledged" '"acknowledged":false' "$j"
soon=$(ctl call tasks.add 1 2 --countdown 50)   # within the look-ahead: held by a worker
late=$(ctl call tasks.add 3 4 --countdown 300)  # beyond it: still with the broker
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' inspect scheduled --json | grep -q '$soon'"
out=$(ctl inspect scheduled)
assert_contains "scheduled: a worker holds the countdown task" "'request': {'id': '$soon', 'name': 'tasks.add', 'args': [1, 2]" "$out"
assert_contains "scheduled: with its eta" "* {'eta': '20" "$out"
assert_contains "scheduled: the broker's entry" "->  broker: OK" "$out"
assert_contains "scheduled: the broker holds the later one" "'request': {'id': '$late'" "$out"
j=$(ctl inspect scheduled --json)
assert_contains "scheduled --json" "\"request\":{\"id\":\"$soon\"" "$j"
assert_contains "scheduled --json broker" "\"broker\":[{\"eta\":" "$j"
assert_not_contains "scheduled is not reserved" "$soon" "$(ctl inspect reserved --json)"
queued=$(ctl call tasks.add 5 5 --queue nobody)
out=$(ctl inspect query_task "${sleeps[0]}" "$queued" "${pids[0]}" "$late" 00000000-0000-4000-8000-00000000abcd)
assert_contains "query_task finds the running task" "$(printf -- '"%s": [\n            "active",' "${sleeps[0]}")" "$out"
assert_contains "query_task: queued at the broker" "$(printf -- '"%s": [\n            "queued",' "$queued")" "$out"
assert_contains "query_task: done" "$(printf -- '"%s": [\n            "revoked",' "${pids[0]}")" "$out"
assert_contains "query_task: scheduled at the broker" "$(printf -- '"%s": [\n            "scheduled",' "$late")" "$out"
assert_contains "query_task: unknown" '"unknown",' "$out"
j=$(ctl inspect query_task "${adds[0]}" --json)
assert_contains "query_task --json" "\"${adds[0]}\":[\"reserved\",{\"id\":\"${adds[0]}\"" "$j"
assert_not_contains "query_task: held ids are not asked of the broker" '"broker"' "$j"

section "revoke, revoked"
out=$(ctl revoke "$late" "$soon")
assert_eq "revoke" "tasks $late, $soon flagged as revoked" "$out"
out=$(ctl revoke --terminate "${sleeps[@]}")
assert_contains "revoke --terminate" "flagged as revoked (running ones terminated)" "$out"
wait_for 20 state_is "$soon" REVOKED && ok "the worker discarded the scheduled task" || bad "$soon not REVOKED"
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' inspect revoked --json -d w2@mgmt | grep -q '$late'" || bad "w2 never heard of the revoke"
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' inspect revoked --json -d w1@mgmt | grep -q '$late'" || bad "w1 never heard of the revoke"
assert_contains "revoked, human" "    * $late" "$(ctl inspect revoked)"
assert_contains "revoked --json" "\"$late\"" "$(ctl inspect revoked --json)"
assert_contains "revoked task is REVOKED" '"state":"REVOKED"' "$(ctl --json result "$late")"

section "result"
for id in "${adds[@]}"; do ctl --timeout 20 result "$id" >/dev/null; done
assert_eq "result" "101" "$(ctl result "${adds[0]}")"
assert_eq "result -t" "101" "$(ctl result -t tasks.add "${adds[0]}")"
out=$(ctl result -t tasks.div "${adds[0]}" 2>&1); rc=$?
assert_eq "result -t mismatch exits 1" 1 "$rc"
assert_contains "result -t mismatch" "is tasks.add, not tasks.div" "$out"
assert_contains "result --json" '"result":101' "$(ctl --json result "${adds[0]}")"

section "stats add up after N tasks"
for id in "${sleeps[@]}"; do
    wait_for 20 state_is "$id" REVOKED || bad "sleep $id was not terminated"
done
before=$(ctl inspect stats --json)
ids=()
for i in $(seq 1 20); do ids+=("$(ctl call tasks.add "$i" 1)"); done
for id in "${ids[@]}"; do ctl --timeout 20 result "$id" >/dev/null || bad "add $id"; done
f=$(ctl call tasks.fail boom)
ctl --timeout 20 result "$f" >/dev/null 2>&1
after=$(ctl inspect stats --json)
assert_eq "total tasks.add grew by 20" 20 $(($(jsum tasks.add "$after") - $(jsum tasks.add "$before")))
assert_eq "succeeded grew by 20" 20 $(($(jsum succeeded "$after") - $(jsum succeeded "$before")))
assert_eq "failed grew by 1" 1 $(($(jsum failed "$after") - $(jsum failed "$before")))
assert_eq "tasks.sleep ran 3 times" 3 "$(jsum tasks.sleep "$after")"
total=$(($(grep -o '"total":{[^}]*}' <<<"$after" | grep -o ':[0-9]*' | tr -d : | awk '{s += $1} END {print s + 0}')))
outcomes=$(($(jsum succeeded "$after") + $(jsum failed "$after") + $(jsum retried "$after") + $(jsum revoked "$after")))
assert_eq "every run started has ended" "$total" "$outcomes"

section "events"
# the binary itself in the background (not the ctl function: $! would be a subshell)
"$ZQ_CTL_BIN" --broker "$URL" events >"$T/events.txt" 2>&1 &
ev=$!
PIDS+=("$ev")
wait_for 10 grep -q "worker-heartbeat" "$T/events.txt" || bad "no events arrive"
eid=$(ctl call tasks.add 7 7)
wait_for 10 grep -q "task-succeeded uuid=$eid" "$T/events.txt" && ok "events: task-succeeded line" || bad "no task-succeeded for $eid"
assert_file_contains "events: task-sent" "task-sent uuid=$eid name=tasks.add" "$T/events.txt"
assert_file_contains "events: result" "result=14" "$T/events.txt"
stop_pid "$ev"
"$ZQ_CTL_BIN" --broker "$URL" events --json --limit 200 >"$T/events.json" 2>&1 &
ev=$!
PIDS+=("$ev")
wait_for 10 grep -q '"type":"worker-heartbeat"' "$T/events.json" || bad "no json events arrive"
eid=$(ctl call tasks.add 8 8)
wait_for 10 grep -q "\"type\":\"task-succeeded\",\"timestamp\":\"[^\"]*\",\"uuid\":\"$eid\"" "$T/events.json" && ok "events --json: task-succeeded" || bad "no json task-succeeded"
stop_pid "$ev"

section "shell"
out=$(ctl shell 2>&1 <<'EOF'
# a comment, then statements
tasks.add(2, 2)
.get(10)
r = tasks.add.apply_async([20, 22], countdown=1)
r.get(timeout=10)
r.state
r.ready()
tasks.add.delay(1, y=2).get(10)
tasks.add
status
inspect ping -d w1@mgmt
exit
tasks.add(1, 1)
EOF
); rc=$?
assert_eq "shell exits 0" 0 "$rc"
assert_contains "shell: sends" "<AsyncResult: " "$out"
assert_eq "shell: prints ids, values, states" "$(printf '4\n42\nSUCCESS\nTrue\n3\n<@task: tasks.add of tasks>')" "$(grep -v '^<AsyncResult\|^->\|^$\|online\|pong' <<<"$out")"
assert_contains "shell: zq-ctl commands" "$(printf -- '->  w1@mgmt: OK\n->  w2@mgmt: OK\n\n2 nodes online.')" "$out"
assert_contains "shell: inspect" "$(printf -- '->  w1@mgmt: OK\n        pong')" "$out"
assert_eq "shell: stops at exit" 2 "$(grep -c '^<AsyncResult' <<<"$out")"
id=$(grep -o '^<AsyncResult: [^>]*' <<<"$out" | head -1 | cut -d' ' -f2)
assert_eq "shell: the task really ran" "4" "$(ctl result "$id")"
out=$(printf 'tasks.add(1,\nget %s 5\nr.get()\n' "$id" | ctl shell 2>&1); rc=$?
assert_eq "shell: exit status of the last failed statement" 1 "$rc"
assert_contains "shell: syntax error" "Error: invalid syntax at column 13: unexpected end of line, expected a value" "$out"
assert_contains "shell: get ID" "$(printf '\n4\n')" "$(printf '\n%s\n' "$out")"
assert_contains "shell: undefined name" "Error: name 'r' is not defined" "$out"
echo 'tasks.add(' | ctl shell >/dev/null 2>&1; rc=$?
assert_eq "shell: a syntax error exits 2" 2 "$rc"
out=$(echo 'tasks.fail("boom").get(10)' | ctl shell 2>&1); rc=$?
assert_eq "shell: a failed task exits 1" 1 "$rc"
assert_contains "shell: the failure" "FAILURE: TaskError: boom" "$out"
assert_eq "shell --json commands" '{"w1@mgmt":{"ok":"pong"},"w2@mgmt":{"ok":"pong"}}' "$(echo status | ctl --json shell)"

section "a worker that does not answer"
kill -STOP "$w2"
t0=$(ms); out=$(ctl status -t 1 2>&1); rc=$?; t1=$(ms)
kill -CONT "$w2"
assert_eq "status still exits 0 (w1 answered)" 0 "$rc"
assert_contains "the silent one is reported" "$(printf -- '->  w2@mgmt: ERROR\n        no reply within 1s')" "$out"
assert_contains "the count is of those that answered" "1 node online." "$out"
[ $((t1 - t0)) -lt 3000 ] && ok "returned after the timeout: $((t1 - t0)) ms" || bad "took $((t1 - t0)) ms"
wait_for 20 sh -c "'$ZQ_CTL_BIN' --broker '$URL' status -d w2@mgmt 2>/dev/null | grep -q 'w2@mgmt: OK'" && ok "w2 answers again" || bad "w2 did not come back"

section "a SIGKILLed worker stops being listed within the heartbeat window"
kill -KILL "$w2"
wait "$w2" 2>/dev/null
t0=$(ms)
wait_for 10 sh -c "! '$ZQ_CTL_BIN' --broker '$URL' status 2>&1 | grep -q w2@mgmt"
t1=$(ms)
# 3 missed heartbeats of 0.5 s, plus the polling (room for a loaded machine)
[ $((t1 - t0)) -lt 5000 ] && ok "gone after $((t1 - t0)) ms (window 1.5 s at --heartbeat 0.5)" || bad "still listed after $((t1 - t0)) ms"
assert_eq "status after the kill" "$(printf -- '->  w1@mgmt: OK\n\n1 node online.')" "$(ctl status)"

e2e_finish
