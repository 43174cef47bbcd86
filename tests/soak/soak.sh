#!/usr/bin/env bash
# tests/soak/soak.sh - `make soak` (docs/reliability.md "Soak"; not part of `make check`).
#
# One broker, two workers (w1, w2) and the zq-soak client: SOAK_N tasks.add(i, i) are sent
# through the public client API (pipelined, at most SOAK_BACKLOG unfinished at a time; every
# SOAK_SLOW_EVERY-th is tasks.sleep(SOAK_SLOW_SECONDS) instead, so that a SIGKILL also finds
# tasks running, not only tasks waiting: see tests/soak/zq_soak.c), while
# w2 is SIGKILLed every SOAK_KILL_EVERY seconds and restarted under the same name once the
# broker has declared it lost. Every SOAK_SAMPLE_EVERY seconds the VmRSS of the broker, of w1
# (main process and its pool children) and of w2 is sampled and printed.
# It passes when:
#   - the broker counts SOAK_N tasks, all terminal: none PENDING/RECEIVED/STARTED/RETRY, none
#     REVOKED, and every FAILURE is WorkerLostError (a task that ran on the SIGKILLed w2);
#   - sampled records are right (SUCCESS 2i, or FAILURE WorkerLostError; zq-soak checks them);
#   - the RSS of the broker, of w1 and of w1's children is flat: the median of the last quarter
#     of the samples exceeds the peak of the first quarter by at most SOAK_RSS_TOL_PCT percent
#     or SOAK_RSS_TOL_KB KiB, whichever is larger (w2 restarts, so it is reported, not checked).
#     The peak, not the median, of the first quarter: the broker's RSS climbs during the first
#     ~200,000 tasks while SQLite's page cache (64 MiB) fills, and must have levelled off by
#     the end of the first quarter. So it is only checked from SOAK_N >= SOAK_RSS_MIN_N
#     (1000000); shorter runs print the figures only;
#   - broker and workers stop with exit status 0 on SIGTERM at the end.
# Tunables (environment): SOAK_N (1000000), SOAK_KILL_EVERY (15 s; 0: no faults),
# SOAK_SAMPLE_EVERY (2 s), SOAK_BACKLOG (20000), SOAK_SLOW_EVERY (1000; 0: none),
# SOAK_SLOW_SECONDS (0.25), SOAK_POOL (prefork), SOAK_CONCURRENCY (2),
# SOAK_RSS_TOL_PCT (10), SOAK_RSS_TOL_KB (2048), SOAK_STALL (120 s without any task ending
# fails the run). The whole script is one { } block so that editing it cannot change a run.
{
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../e2e/lib.sh
. "$here/../e2e/lib.sh"
SOAK_BIN=$B/tests/soak/zq-soak

N=${SOAK_N:-1000000}
KILL_EVERY=${SOAK_KILL_EVERY:-15}
SAMPLE_EVERY=${SOAK_SAMPLE_EVERY:-2}
BACKLOG=${SOAK_BACKLOG:-20000}
POOL=${SOAK_POOL:-prefork}
CONC=${SOAK_CONCURRENCY:-2}
TOL_PCT=${SOAK_RSS_TOL_PCT:-10}
TOL_KB=${SOAK_RSS_TOL_KB:-2048}
STALL=${SOAK_STALL:-120}
RSS_MIN_N=${SOAK_RSS_MIN_N:-1000000}
SLOW_EVERY=${SOAK_SLOW_EVERY:-1000}
SLOW_SECONDS=${SOAK_SLOW_SECONDS:-0.25}
for v in "$N" "$KILL_EVERY" "$SAMPLE_EVERY" "$BACKLOG" "$CONC" "$TOL_PCT" "$TOL_KB" "$STALL" "$SLOW_EVERY" "$RSS_MIN_N"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "soak: '$v' is not a non-negative integer" >&2; exit 2; }
done
[ -x "$SOAK_BIN" ] || { echo "soak: $SOAK_BIN not built (make soak builds it)" >&2; exit 2; }

# VmRSS of a process in KiB (0 when it is gone); the sum over its children.
rss() { awk '/^VmRSS:/ {print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }
children_rss() {
    local sum=0 c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do sum=$((sum + $(rss "$c"))); done
    echo "$sum"
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

section "soak: $N tasks, w2 SIGKILLed every ${KILL_EVERY}s, pool $POOL -c $CONC"
start_broker b || exit 1
start_worker w1 --plugins "$PLUGINS" -P "$POOL" -c "$CONC" || exit 1
W1=$WORKER_PID
start_worker w2 --plugins "$PLUGINS" -P "$POOL" -c "$CONC" || exit 1
W2=$WORKER_PID

"$SOAK_BIN" --broker "$URL" run --n "$N" --backlog "$BACKLOG" --stall "$STALL" \
    --slow-every "$SLOW_EVERY" --slow-seconds "$SLOW_SECONDS" \
    >"$T/driver.out" 2>"$T/driver.log" &
DRIVER=$!
PIDS+=("$DRIVER")
t0=$SECONDS
S_T=() S_DONE=() S_B=() S_W1=() S_W1C=() S_W2=()
sample() {
    local done
    "$SOAK_BIN" --broker "$URL" stats >"$T/stats.now" 2>/dev/null && done=$(stat_of terminal "$T/stats.now")
    S_T+=($((SECONDS - t0))) S_DONE+=("${done:-?}") S_B+=("$(rss "$BROKER_PID")")
    S_W1+=("$(rss "$W1")") S_W1C+=("$(children_rss "$W1")") S_W2+=("$(rss "$W2")")
    local i=$((${#S_T[@]} - 1))
    printf '%8s %10s %12s %12s %14s %12s\n' "${S_T[i]}" "${S_DONE[i]}" "${S_B[i]}" "${S_W1[i]}" \
        "${S_W1C[i]}" "${S_W2[i]}"
}
printf '%8s %10s %12s %12s %14s %12s\n' "t (s)" terminal "broker KiB" "w1 KiB" "w1 pool KiB" "w2 KiB"

kills=0 w2_down=0 next_sample=$SECONDS last_kill=$SECONDS
while kill -0 "$DRIVER" 2>/dev/null; do
    if [ $SECONDS -ge $next_sample ]; then
        sample
        next_sample=$((next_sample + SAMPLE_EVERY))
        [ $next_sample -le $SECONDS ] && next_sample=$((SECONDS + SAMPLE_EVERY)) # no bursts after a stall
    fi
    if [ "$KILL_EVERY" -gt 0 ]; then
        if [ $w2_down = 0 ] && [ $((SECONDS - last_kill)) -ge "$KILL_EVERY" ]; then
            kill -KILL "$W2" 2>/dev/null
            wait "$W2" 2>/dev/null
            kills=$((kills + 1)) w2_down=1 last_kill=$SECONDS
        elif [ $w2_down = 1 ] && ! ctl status 2>/dev/null | grep -qF 'zq@w2:'; then
            # the broker has declared it lost (heartbeats): the same name is free again
            start_worker w2 --plugins "$PLUGINS" -P "$POOL" -c "$CONC" || break
            W2=$WORKER_PID w2_down=0
        fi
    fi
    sleep 0.5 # the loop's tick: sampling and fault injection are paced by the clock
done
wait "$DRIVER"
driver_rc=$?
sample
elapsed=$((SECONDS - t0))
cat "$T/driver.log" "$T/driver.out"
assert_eq "zq-soak run: everything sent, acknowledged, terminal, samples right" 0 "$driver_rc"

section "soak: final counts"
"$SOAK_BIN" --broker "$URL" stats --worker-lost >"$T/stats.end" || bad "zq-soak stats failed"
cat "$T/stats.end"
assert_eq "tasks in the store" "$N" "$(stat_of total "$T/stats.end")"
assert_eq "terminal tasks" "$N" "$(stat_of terminal "$T/stats.end")"
for s in PENDING RECEIVED STARTED RETRY REVOKED; do
    assert_eq "$s tasks" 0 "$(stat_of $s "$T/stats.end")"
done
assert_eq "every FAILURE is WorkerLostError" "$(stat_of FAILURE "$T/stats.end")" \
    "$(stat_of worker_lost "$T/stats.end")"
# the broker's own account of each loss: "worker zq@w2 offline (heartbeat lost): R tasks
# requeued, L lost" (requeued: not started yet; lost: FAILURE WorkerLostError)
awk '/zq@w2 offline \(heartbeat lost\)/ {n++; r += $(NF - 4); l += $(NF - 1)}
     END {printf "# broker: w2 declared lost %d times; %d tasks requeued, %d lost\n", n, r, l}' "$T/b.log"
[ "$KILL_EVERY" -gt 0 ] && [ "$elapsed" -gt $((KILL_EVERY + 10)) ] &&
    { [ "$kills" -gt 0 ] && ok "w2 SIGKILLed $kills times" || bad "w2 never SIGKILLed"; }

section "soak: RSS (KiB, peak of the first vs median of the last quarter of ${#S_T[@]} samples)"
flat() { # NAME VALUES...
    local name=$1
    shift
    local v=("$@") n=$#
    local q=$((n / 4))
    if [ "$q" -lt 2 ]; then
        echo "# $name: only $n samples, flatness not checked (run longer or sample more often)"
        return
    fi
    local first last allowed
    first=$(printf '%s\n' "${v[@]:0:q}" | sort -n | tail -1)
    last=$(median "${v[@]:n-q:q}")
    allowed=$((first * TOL_PCT / 100))
    [ "$allowed" -lt "$TOL_KB" ] && allowed=$TOL_KB
    echo "# $name: first quarter peak $first, last quarter median $last, growth $((last - first)) (allowed $allowed)"
    if [ "$N" -lt "$RSS_MIN_N" ]; then
        echo "# $name: not checked: SOAK_N < $RSS_MIN_N (too short: the first quarter is still the warm-up)"
    elif [ $((last - first)) -le "$allowed" ]; then ok "$name RSS flat"; else bad "$name RSS grew"; fi
}
flat broker "${S_B[@]}"
flat w1 "${S_W1[@]}"
flat "w1 pool" "${S_W1C[@]}"
echo "# w2 (restarted $kills times): max $(printf '%s\n' "${S_W2[@]}" | sort -n | tail -1)"

section "soak: graceful stop"
stop_rc() { # PID: SIGTERM, wait at most 60 s; sets RC to its exit status
    kill -TERM "$1" 2>/dev/null
    wait_for 60 sh -c "! kill -0 $1" || kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    RC=$?
}
if [ $w2_down = 0 ]; then stop_rc "$W2"; assert_eq "w2 exits 0 on SIGTERM" 0 "$RC"; fi
stop_rc "$W1"
assert_eq "w1 exits 0 on SIGTERM" 0 "$RC"
stop_rc "$BROKER_PID"
assert_eq "broker exits 0 on SIGTERM" 0 "$RC"
echo "# soak: N=$N, $elapsed s, w2 SIGKILLed $kills times, $(sed -n 's/.*s: \([0-9]*\) tasks\/s.*/\1/p' "$T/driver.out") tasks/s"
e2e_finish
exit
}
