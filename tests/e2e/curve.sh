#!/usr/bin/env bash
# End-to-end: CurveZMQ (docs/protocol.md §13, docs/management.md "Security"). A broker and a
# worker with keys run a task for zq-ctl with keys; an unauthorised client key, a client
# without keys and a client with the wrong server key are refused at once with a clear
# error (not a timeout); a key the broker lets in but the worker does not cannot inspect
# that worker; a worker with an unauthorised key never gets a task (until its key file is
# copied in: the directories are read at every connection); every socket listens on
# 127.0.0.1 by default; a non-loopback endpoint without keys is warned about.
. "$(dirname "$0")/lib.sh"

ms() { date +%s%3N; }

K=$T/keys
if "$ZQ_CTL_BIN" keygen --dir "$T/probe" 2>&1 >/dev/null | grep -q "without CURVE"; then
    echo "SKIP: this libzmq has no CURVE (zmq_has(\"curve\") is 0)"
    exit 77
fi
section "keygen"
made=0
for n in broker worker client ctl2 intruder; do
    pub=$("$ZQ_CTL_BIN" keygen --dir "$K" --name "$n" 2>"$T/keygen.err")
    if [ $? -eq 0 ] && [ ${#pub} -eq 40 ] && grep -qF "public-key = \"$pub\"" "$K/$n.key"; then
        made=$((made + 1))
    else
        echo "keygen $n: '$pub' $(cat "$T/keygen.err")"
    fi
done
assert_eq "5 key pairs written, each public key printed" 5 "$made"
assert_eq "secret file is 0600" 600 "$(stat -c %a "$K/client.key_secret")"
assert_eq "public file is 0644" 644 "$(stat -c %a "$K/client.key")"
assert_eq "key dir is 0700" 700 "$(stat -c %a "$K")"
out=$("$ZQ_CTL_BIN" keygen --dir "$K" --name client 2>&1); rc=$?
assert_eq "keygen never overwrites (exit 1)" 1 "$rc"
assert_contains "keygen says why" "never overwritten" "$out"
out=$("$ZQ_CTL_BIN" --json keygen --dir "$K" --name j)
assert_contains "keygen --json" "\"secret_file\":\"$K/j.key_secret\"" "$out"

# who is let in where: the broker knows the worker, the client and ctl2; the worker's
# control socket only the client
mkdir -p "$T/auth" "$T/wauth"
cp "$K/worker.key" "$K/client.key" "$K/ctl2.key" "$T/auth/"
cp "$K/client.key" "$T/wauth/"

section "a keyed broker and worker run a task for a keyed client"
start_broker b --curve-secret "$K/broker.key_secret" --curve-authorized "$T/auth" || exit 1
assert_file_contains "broker says CURVE is on" "CURVE on; 3 authorized keys" "$T/b.log"
assert_file_contains "broker logs its public key" "public key $(grep -o 'public-key = "[^"]*"' "$K/broker.key" | cut -d'"' -f2)" "$T/b.log"
export ZQ_CURVE_SECRET=$K/client.key_secret ZQ_CURVE_SERVER_KEY=$K/broker.key
start_worker w1@curve --plugins "$PLUGINS" -c 1 -l INFO --curve-secret "$K/worker.key_secret" \
    --curve-server-key "$K/broker.key" --curve-authorized "$T/wauth" || exit 1
w1=$WORKER_PID
assert_eq "call --wait through CURVE" 5 "$(ctl call tasks.add 2 3 --wait --timeout 20)"
assert_eq "status through CURVE (the worker's control socket)" "$(printf -- '->  w1@curve: OK\n\n1 node online.')" "$(ctl status)"
assert_contains "inspect registered through CURVE" "tasks.add" "$(ctl inspect registered)"
# the options instead of the environment
out=$(env -u ZQ_CURVE_SECRET -u ZQ_CURVE_SERVER_KEY "$ZQ_CTL_BIN" --broker "$URL" \
    --curve-secret "$K/client.key_secret" --curve-server-key "$K/broker.key" call tasks.add 1 1 --wait --timeout 20)
assert_eq "--curve-secret/--curve-server-key work too" 2 "$out"
# the events socket is a CURVE server too
timeout 20 "$ZQ_CTL_BIN" --broker "$URL" events --json --limit 1 >"$T/events.out" 2>&1 &
EV=$!
PIDS+=("$EV")
wait_for 10 sh -c "'$ZQ_CTL_BIN' --broker '$URL' call tasks.add 0 0 >/dev/null; test -s '$T/events.out'" ||
    bad "no event through CURVE"
wait "$EV" 2>/dev/null
assert_contains "an event through CURVE" '"type":"task-' "$(cat "$T/events.out")"

section "an unauthorised client key is refused at once"
t0=$(ms)
out=$(ZQ_CURVE_SECRET=$K/intruder.key_secret ctl --timeout 20 call tasks.add 1 1 2>&1); rc=$?
t1=$(ms)
assert_eq "call exits 1" 1 "$rc"
assert_contains "the error names the refusal" "refused this client's CURVE key (ZAP status 400)" "$out"
[ $((t1 - t0)) -lt 5000 ] && ok "refused in $((t1 - t0)) ms, not after --timeout 20" || bad "took $((t1 - t0)) ms"
out=$(ZQ_CURVE_SECRET=$K/intruder.key_secret ctl --timeout 20 inspect ping 2>&1); rc=$?
assert_eq "nor can it inspect (exit 1)" 1 "$rc"
assert_contains "inspect says why" "refused this client's CURVE key" "$out"
wait_for 10 grep -q "refused key $(grep -o 'public-key = "[^"]*"' "$K/intruder.key" | cut -d'"' -f2 | sed 's/[][\.*^$]/\\&/g')" "$T/b.log" &&
    ok "the broker logs the refused key" || bad "no refusal in the broker log"

section "a client without keys, or with the wrong server key"
t0=$(ms)
out=$(env -u ZQ_CURVE_SECRET -u ZQ_CURVE_SERVER_KEY "$ZQ_CTL_BIN" --broker "$URL" --timeout 20 call tasks.add 1 1 2>&1); rc=$?
t1=$(ms)
assert_eq "no-key call exits 1" 1 "$rc"
assert_contains "no-key client told CURVE is required" "requires CURVE authentication" "$out"
[ $((t1 - t0)) -lt 5000 ] && ok "no-key client refused in $((t1 - t0)) ms" || bad "took $((t1 - t0)) ms"
out=$(ZQ_CURVE_SERVER_KEY=$K/worker.key ctl --timeout 20 queues 2>&1); rc=$?
assert_eq "wrong server key exits 1" 1 "$rc"
assert_contains "wrong server key is said" "closed the connection during the CURVE handshake: does it use CURVE, and is the server key (ZQ_CURVE_SERVER_KEY) its public key?" "$out"
out=$(env -u ZQ_CURVE_SERVER_KEY "$ZQ_CTL_BIN" --broker "$URL" queues 2>&1); rc=$?
assert_eq "half a configuration is a usage error" 2 "$rc"
assert_contains "and says so" "CURVE needs both keys" "$out"

section "a key the broker lets in but the worker does not"
out=$(ZQ_CURVE_SECRET=$K/ctl2.key_secret ctl queues 2>&1); rc=$?
assert_eq "ctl2 may talk to the broker" 0 "$rc"
out=$(ZQ_CURVE_SECRET=$K/ctl2.key_secret ctl inspect ping -t 5 2>&1); rc=$?
assert_eq "inspect ping exits 1" 1 "$rc"
assert_contains "the worker is shown as an ERROR" "w1@curve: ERROR" "$out"
assert_contains "the worker's control socket refused the key" "the control socket of w1@curve refused this client's CURVE key" "$out"
wait_for 10 grep -q "control: refused key" "$T/w1@curve.log" && ok "the worker logs the refusal" || bad "no refusal in the worker log"
# authorising it is a file copy, read at the next connection
cp "$K/ctl2.key" "$T/wauth/"
assert_eq "after cp ctl2.key: inspect ping works" "$(printf -- '->  w1@curve: OK\n        pong\n\n1 node online.')" "$(ZQ_CURVE_SECRET=$K/ctl2.key_secret ctl inspect ping)"

section "a worker with an unauthorised key never gets a task"
"$ZQ_WORKER_BIN" --broker "$URL" -n w2@curve --plugins "$PLUGINS" -c 1 -l INFO -Q only2 \
    --curve-secret "$K/intruder.key_secret" --curve-server-key "$K/broker.key" \
    --curve-authorized "$T/wauth" >"$T/w2.log" 2>&1 &
w2=$!
PIDS+=("$w2")
wait_for 20 grep -q "cannot join: the broker at $URL refused this client's CURVE key" "$T/w2.log" &&
    ok "the worker says the broker refused its key" || bad "no refusal in the worker's log"
id=$(ctl call tasks.add 7 7 -Q only2)
assert_contains "only2 has its task, no consumer" "only2           1          0          0          0" "$(ctl queues)"
assert_eq "status lists w1 only" "$(printf -- '->  w1@curve: OK\n\n1 node online.')" "$(ctl status)"
if grep -q "received" "$T/w2.log"; then bad "w2 received a task"; else ok "w2 received nothing"; fi
assert_contains "the task is still PENDING" '"state":"PENDING"' "$(ctl --json result "$id")"
# authorised while it runs: it joins at its next try, and gets the task
cp "$K/intruder.key" "$T/auth/"
assert_eq "once its key is authorised, it joins and runs the task" 14 "$(ctl result "$id" --timeout 20)"
stop_pid "$w2"

section "every socket listens on 127.0.0.1 by default"
addrs=$(ss -ltnpH 2>/dev/null | grep -E "pid=($BROKER_PID|$w1)," | awk '{print $4}' | sed 's/:[0-9]*$//' | sort -u)
n=$(ss -ltnpH 2>/dev/null | grep -cE "pid=($BROKER_PID|$w1),")
assert_eq "broker and worker listen on loopback only ($n sockets: frontend, upstream, events, dispatch, control)" "127.0.0.1" "$addrs"
[ "$n" -ge 5 ] && ok "$n listening sockets seen" || bad "only $n listening sockets seen"

section "a public endpoint without keys is warned about"
# 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails after the warning,
# so nothing is ever exposed
"$ZQ_BROKER_BIN" --listen tcp://192.0.2.1:7460 --data-dir "$T/pub-data" >"$T/pub.log" 2>&1
assert_eq "broker exits 3 (cannot bind)" 3 "$?"
assert_file_contains "broker warns" "WARNING/MainProcess] zq-broker: the frontend endpoint tcp://192.0.2.1:7460 is reachable from other hosts and has no authentication" "$T/pub.log"
"$ZQ_WORKER_BIN" --broker "$URL" -n w3@curve --plugins "$PLUGINS" -c 1 --control 'tcp://192.0.2.1:*' >"$T/w3.log" 2>&1
assert_eq "worker exits 1 (cannot bind)" 1 "$?"
assert_file_contains "worker warns" "WARNING/MainProcess] the control socket tcp://192.0.2.1:* is reachable from other hosts and has no authentication" "$T/w3.log"
if grep -q "reachable from other hosts" "$T/b.log" "$T/w1@curve.log"; then bad "warned about a loopback endpoint"; else ok "no warning for loopback endpoints"; fi

section "rejections are logged (at most one line a second) and counted"
plain_try() {
    env -u ZQ_CURVE_SECRET -u ZQ_CURVE_SERVER_KEY "$ZQ_CTL_BIN" --broker "$URL" --timeout 5 queues >/dev/null 2>&1
    grep -q "the client does not use CURVE\|closed during the CURVE handshake" "$T/b.log"
}
wait_for 10 plain_try && ok "a plain connection is logged as rejected" || bad "no rejection of a plain connection logged"
assert_file_contains "with the running count" "refused in all" "$T/b.log"

e2e_finish
