#!/usr/bin/env bash
# tests/soak/valgrind.sh - `make check-valgrind` (docs/reliability.md "valgrind"; CI runs it
# from scripts/test.sh as its own step).
#
# The broker, worker w1 and the zq-soak client all run under valgrind memcheck:
#   valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
#            --error-exitcode=99 --suppressions=tests/soak/valgrind.supp
# (the suppressions are for third-party noise only, each entry justified there).
# VALGRIND_N tasks.add (default 10,000) go through them (pipelined, zq-soak run). A second
# worker w2 (not under memcheck) takes its share until a quarter of the tasks is done, then
# is SIGKILLed, so the broker's lost-worker path (requeue, WorkerLostError) runs under
# memcheck too. Then w1 and the broker are stopped gracefully (SIGTERM), so that their leak
# checks run at exit. It passes when every task is terminal (SUCCESS with the right value, or
# FAILURE WorkerLostError from w2; sampled records checked) and the three processes under
# memcheck exit 0 (any memcheck error or definite leak makes valgrind exit 99) and no report
# holds an error or a leak (prefork children write their own reports).
# Tunables: VALGRIND_N, VALGRIND_POOL (threads; prefork works too: its children are forked,
# not exec'd, so they run under memcheck and log to their own file), VALGRIND_EXTRA (more
# valgrind options, e.g. --trace-children=yes). Each process's report is vg-NAME.PID.log in
# the test's temp dir, printed when non-empty.
{
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../e2e/lib.sh
. "$here/../e2e/lib.sh"
SOAK_BIN=$B/tests/soak/zq-soak
N=${VALGRIND_N:-10000}
POOL=${VALGRIND_POOL:-threads}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "valgrind: VALGRIND_N '$N' is not a positive integer" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/install-deps.sh --with-test-tools)" >&2; exit 2; }
[ -x "$SOAK_BIN" ] || { echo "valgrind: $SOAK_BIN not built (make check-valgrind builds it)" >&2; exit 2; }

# shellcheck disable=SC2206 # VALGRIND_EXTRA is a list of options
VG=(valgrind -q --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
    --error-exitcode=99 --num-callers=30 --suppressions="$here/valgrind.supp" ${VALGRIND_EXTRA:-})

section "valgrind: broker, worker (-P $POOL) and client over $N tasks"
t_start=$SECONDS
ZQ_WRAP="${VG[*]} --log-file=$T/vg-broker.%p.log" start_broker b || exit 1
ZQ_WRAP="${VG[*]} --log-file=$T/vg-worker.%p.log" start_worker w1 --plugins "$PLUGINS" \
    -P "$POOL" -c 2 || exit 1
W1=$WORKER_PID
start_worker w2 --plugins "$PLUGINS" -P prefork -c 2 || exit 1
W2=$WORKER_PID
"${VG[@]}" --log-file="$T/vg-client.%p.log" "$SOAK_BIN" --broker "$URL" run --n "$N" \
    --backlog 2000 --stall 120 --slow-every 0 >"$T/client.out" 2>"$T/client.log" &
CLIENT=$!
PIDS+=("$CLIENT")
stat_of() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
quarter_done() {
    "$SOAK_BIN" --broker "$URL" stats >"$T/stats.now" 2>/dev/null &&
        [ "$(stat_of terminal "$T/stats.now")" -ge $((N / 4)) ]
}
if wait_for 600 quarter_done; then
    kill -KILL "$W2"
    wait "$W2" 2>/dev/null
    ok "w2 SIGKILLed with $(stat_of terminal "$T/stats.now") tasks terminal"
else
    bad "a quarter of the tasks did not end within 600 s"
fi
wait "$CLIENT"
client_rc=$?
cat "$T/client.log" "$T/client.out"
assert_eq "client (under memcheck): $N tasks sent, all terminal, sampled records right, exit 0" \
    0 "$client_rc"
"$SOAK_BIN" --broker "$URL" stats --worker-lost >"$T/stats.end" 2>&1
cat "$T/stats.end"
assert_eq "terminal tasks" "$N" "$(stat_of terminal "$T/stats.end")"
assert_eq "every FAILURE is WorkerLostError" "$(stat_of FAILURE "$T/stats.end")" \
    "$(stat_of worker_lost "$T/stats.end")"
# a short run can end before the broker's heartbeat check (3 intervals) noticed the loss
wait_for 30 grep -qF "worker zq@w2 offline (heartbeat lost)" "$T/b.log"
assert_file_contains "the broker handled w2 as lost" "worker zq@w2 offline (heartbeat lost)" "$T/b.log"
t_run=$((SECONDS - t_start))

stop_rc() { # PID: SIGTERM, wait at most 180 s (memcheck's leak check runs at exit); sets RC
    kill -TERM "$1" 2>/dev/null
    wait_for 180 sh -c "! kill -0 $1" || kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    RC=$?
}
stop_rc "$W1"
assert_eq "worker: graceful stop, no memcheck error, no definite leak (exit 0)" 0 "$RC"
stop_rc "$BROKER_PID"
assert_eq "broker: graceful stop, no memcheck error, no definite leak (exit 0)" 0 "$RC"

for f in "$T"/vg-*.log; do
    [ -s "$f" ] && { echo "=== $(basename "$f")"; cat "$f"; }
done
# a prefork child's report does not reach its parent's exit status: every error and leak
# record has a stack trace, so a report with one fails the run
with_stack=$(grep -lE '^==[0-9]+== +(at|by) 0x' "$T"/vg-*.log 2>/dev/null | wc -l)
assert_eq "memcheck reports with an error or a definite leak" 0 "$with_stack"
n_logs=$(find "$T" -name 'vg-*.log' | wc -l)
[ "$n_logs" -ge 3 ] && ok "memcheck ran on broker, worker and client ($n_logs reports)" ||
    bad "only $n_logs memcheck reports (valgrind did not run?)"
echo "# valgrind: $N tasks in $t_run s under memcheck, $((SECONDS - t_start)) s with the leak checks"
e2e_finish
exit
}
