#!/usr/bin/env bash
# bench/run.sh - the zq benchmark (issue 7), optionally side by side with Celery + Redis.
#
#   bench/run.sh                     # build, every scenario, 3 repetitions (see bench/README.md)
#   bench/run.sh --quick             # smoke run: small N, 1 repetition (< 2 min)
#   bench/run.sh --scenario latency  # one scenario (repeatable, or a comma list)
#   bench/run.sh --compare celery    # the same scenarios through Celery 5 + Redis too (apt-get
#                                    # installs python3-celery python3-redis redis-server if missing)
#
# Starts its own broker(s), workers and redis-server on free loopback ports (or ipc:// in a
# temp dir with --ipc), stops every one of them by PID on exit (also on failure or Ctrl-C),
# prints a table (median [min-max] of the repetitions) and writes bench/results/latest.json.
# What each figure means: bench/README.md.
# The whole script is one { } block: bash parses it completely before running any of it, so
# editing this file during a run cannot change the run.
{
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --quick               N=5000, latency 500, countdown 200, scale 50000, 1 repetition
  --scenario NAME       throughput | latency | countdown | scale | memory | durability (default: all)
  --compare celery      also run every selected scenario through Celery + Redis, print zq/Celery
  --reps R              repetitions (default 3)
  --n N                 tasks per throughput run (default 100000)
  --scale-n N           queued tasks for the scale and memory scenarios (default 1000000)
  --ipc                 ipc:// endpoints in a temp dir instead of tcp://127.0.0.1:PORT
  --builddir DIR        use an existing (out-of-tree) build there instead of scripts/build.sh
                        (also: $ZQ_BUILDDIR); --no-build to skip make entirely
  --results DIR         where results go (default bench/results)
  --perf                perf record -g the broker and the worker during the first throughput run
  --malloc thp|default  thp (default): every process of the run, zq's and Celery's alike,
                        starts with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc's malloc asks
                        for transparent huge pages: ~1 page fault per 2 MiB of fresh heap
                        instead of per 4 KiB); the throughput scenario then also runs once
                        per repetition with glibc's defaults ("prefork, results, default
                        malloc"). default: no tunable anywhere (bench/README.md)
EOF
}

QUICK=0 REPS="" N="" SCALE_N="" TRANSPORT=tcp COMPARE="" PERF=0 NO_BUILD=0 MALLOC=thp
BUILDDIR=${ZQ_BUILDDIR:-}
RESDIR=$here/results
SCENARIOS=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --scenario) [ $# -ge 2 ] || { echo "run.sh: --scenario needs a name" >&2; exit 2; }
        IFS=, read -ra s <<<"$2"; SCENARIOS+=("${s[@]}"); shift ;;
    --compare) [ "${2:-}" = celery ] || { echo "run.sh: --compare takes 'celery'" >&2; exit 2; }
        COMPARE=celery; shift ;;
    --reps) REPS=${2:-}; shift ;;
    --n) N=${2:-}; shift ;;
    --scale-n) SCALE_N=${2:-}; shift ;;
    --ipc) TRANSPORT=ipc ;;
    --builddir) BUILDDIR=${2:-}; shift ;;
    --no-build) NO_BUILD=1 ;;
    --results) RESDIR=${2:-}; shift ;;
    --perf) PERF=1 ;;
    --malloc) [[ ${2:-} =~ ^(thp|default)$ ]] || { echo "run.sh: --malloc takes thp or default" >&2; exit 2; }
        MALLOC=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in "$REPS" "$N" "$SCALE_N"; do
    [[ -z $v || $v =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: '$v' is not a positive integer" >&2; exit 2; }
done
ALL=(throughput latency countdown scale memory durability)
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=("${ALL[@]}")
for s in "${SCENARIOS[@]}"; do
    [[ " ${ALL[*]} " == *" $s "* ]] || { echo "run.sh: unknown scenario '$s' (${ALL[*]})" >&2; exit 2; }
done
if [ $QUICK = 1 ]; then
    : "${REPS:=1}" "${N:=5000}" "${SCALE_N:=50000}"
    LAT_N=500 CD_N=200
else
    : "${REPS:=3}" "${N:=100000}" "${SCALE_N:=1000000}"
    LAT_N=5000 CD_N=1000
fi

# glibc's malloc with transparent huge pages, for every process started from here on (both
# systems): the tunable is read at each process's start
if [ "$MALLOC" = thp ]; then
    export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
fi

# 1000000 -> 1M, 50000 -> 50k (case labels)
label() {
    local n=$1
    if ((n >= 1000000 && n % 1000000 == 0)); then echo "$((n / 1000000))M"
    elif ((n >= 1000 && n % 1000 == 0)); then echo "$((n / 1000))k"
    else echo "$n"; fi
}
NL=$(label "$N") SL=$(label "$SCALE_N")

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
RES=""
die() {
    log "ERROR: $*"
    [ -n "$RES" ] && [ -s "$RES" ] && { log "what was measured so far:"; report; }
    exit 1
}

# ---------------------------------------------------------------------------- build
if [ $NO_BUILD = 0 ]; then
    if [ -n "$BUILDDIR" ]; then
        log "building in $BUILDDIR"
        make -C "$BUILDDIR" -s -j"$(nproc)" zq-broker zq-worker zq-ctl zq-bench plugins/tasks.so ||
            die "build failed"
    else
        log "building (scripts/build.sh)"
        "$root/scripts/install-deps.sh" || die "installing dependencies failed"
        "$root/scripts/build.sh" || die "build failed"
    fi
fi
B=${BUILDDIR:-$root}
for f in zq-broker zq-worker zq-bench plugins/tasks.so; do
    [ -e "$B/$f" ] || die "$B/$f is missing: build first (or --builddir DIR)"
done

PY=/usr/bin/python3 # Debian's python: the one python3-celery installs into
if [ "$COMPARE" = celery ]; then
    missing=()
    for p in python3-celery python3-redis redis-server; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (apt-get)"
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    fi
    $PY -c 'import celery, redis' 2>/dev/null || die "$PY cannot import celery and redis"
fi

# ---------------------------------------------------------------------------- processes
T=$(mktemp -d "${TMPDIR:-/tmp}/zq-bench.XXXXXX")
PIDS=()        # every process we started, stopped by PID in cleanup
BROKER_PID="" WORKER_PID="" SEQ=0

# Children of a process (prefork pool processes), by parent PID.
child_pids() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }

# A PID leaves the list once it has been waited for, so that a recycled PID is never signalled.
untrack() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL; the same for children it leaves behind.
stop_pid() {
    local p=$1 kids k
    if kill -0 "$p" 2>/dev/null; then
        kids=$(child_pids "$p")
        kill -TERM "$p" 2>/dev/null
        for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && { log "pid $p did not stop in 15 s: SIGKILL"; kill -KILL "$p" 2>/dev/null; }
        for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
    fi
    wait "$p" 2>/dev/null
    untrack "$p"
    return 0
}

# fg CMD...: run CMD in the background and wait for it. bash runs a trap only after the
# foreground command has finished, but `wait` returns at once on a signal, so Ctrl-C or a
# SIGTERM to this script stops a long measurement right away (cleanup stops CMD by PID).
fg() {
    local p rc
    "$@" &
    p=$!
    PIDS+=("$p")
    wait "$p"
    rc=$?
    untrack "$p"
    return $rc
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    PIDS=()
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# A TCP port whose +1 and +2 neighbours are free too (the broker derives them).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qE ":($p|$((p + 1))|$((p + 2)))$" || { echo "$p"; return; }
    done
    die "no free port"
}

# VmRSS in KiB of a process plus its direct children.
rss_kib() {
    local total=0 p r
    for p in "$1" $(child_pids "$1"); do
        r=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${r:-0}))
    done
    echo "$total"
}

# CPU time (utime + stime, clock ticks) of a process plus its direct children.
cpu_ticks() {
    local total=0 p t
    for p in "$1" $(child_pids "$1"); do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# Samples rss_kib PID every 0.2 s into FILE as the maximum seen, while PID lives.
rss_sampler() {
    local max=0 v
    while kill -0 "$1" 2>/dev/null; do
        v=$(rss_kib "$1")
        ((v > max)) && { max=$v; echo "$max" >"$2"; }
        sleep 0.2
    done
}

# --- zq
zq_broker_up() { # [--sync MODE]
    local try log
    for try in 1 2 3 4 5; do
        SEQ=$((SEQ + 1))
        if [ $TRANSPORT = ipc ]; then URL=ipc://$T/b$SEQ; else URL=tcp://127.0.0.1:$(free_port); fi
        DATA=$T/data$SEQ log=$T/broker$SEQ.log
        "$B/zq-broker" --listen "$URL" --data-dir "$DATA" "$@" >"$log" 2>&1 &
        BROKER_PID=$!
        PIDS+=("$BROKER_PID")
        for _ in $(seq 200); do
            grep -q " ready: frontend" "$log" 2>/dev/null && return 0
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$BROKER_PID" 2>/dev/null && break # alive but never ready
        stop_pid "$BROKER_PID"
        log "broker did not start (try $try): $(tail -n 2 "$log")"
    done
    die "zq-broker did not start: $(tail -n 5 "$log")"
}
zq_broker_down() { [ -n "$BROKER_PID" ] && stop_pid "$BROKER_PID"; BROKER_PID=""; rm -rf "$DATA"; }
zq_worker_up() { # POOL
    SEQ=$((SEQ + 1))
    "$B/zq-worker" --broker "$URL" --plugins "$B/plugins" -c 2 -P "$1" -n "bench$SEQ@%h" -l WARNING \
        >"$T/worker$SEQ.log" 2>&1 &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
}
zq_worker_down() { [ -n "$WORKER_PID" ] && stop_pid "$WORKER_PID"; WORKER_PID=""; }
zq_cmd() { CMD=("$B/zq-bench" --broker "$URL"); }

# --- Celery + Redis (broker and result backend)
celery_broker_up() { # [--sync full]: AOF with fsync on every write; default: no persistence
    local persist=(--save '' --appendonly no)
    [ "${2:-}" = full ] && persist=(--save '' --appendonly yes --appendfsync always)
    SEQ=$((SEQ + 1))
    DATA=$T/redis$SEQ
    mkdir -p "$DATA"
    local port
    port=$(free_port)
    URL=redis://127.0.0.1:$port/0
    redis-server --bind 127.0.0.1 --port "$port" --dir "$DATA" "${persist[@]}" \
        --logfile "$T/redis$SEQ.log" &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    for _ in $(seq 100); do
        redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    die "redis-server did not start: $(tail -n 5 "$T/redis$SEQ.log")"
}
celery_broker_down() { zq_broker_down; }
celery_worker_up() { # POOL
    SEQ=$((SEQ + 1))
    (cd "$here/celery" && ZQBENCH_REDIS_URL=$URL exec $PY -m celery -A zqbench_tasks worker \
        -l WARNING -c 2 -P "$1" -n "bench$SEQ@%h" >"$T/worker$SEQ.log" 2>&1) &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
}
celery_worker_down() { zq_worker_down; }
celery_cmd() { CMD=("$PY" "$here/celery/client.py" --broker "$URL"); }

# ---------------------------------------------------------------------------- measuring
mkdir -p "$RESDIR" || die "cannot create $RESDIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$RESDIR/run-$STAMP.jsonl
: >"$RES"
FAILS=0

# measure TIMEOUT_S ARGS...: one measurement through the current system's client (zq-bench or
# celery/client.py); its JSON line goes to $RES (unless RECORD=0).
measure() {
    local limit=$1 out rc
    shift
    "${SYS}_cmd"
    fg timeout "$limit" "${CMD[@]}" "$@" --rep "$REP" >"$T/out"
    rc=$?
    out=$(cat "$T/out")
    [ -n "$out" ] && [ "${RECORD:-1}" = 1 ] && printf '%s\n' "$out" | grep '^{' >>"$RES"
    if [ $rc -ne 0 ]; then
        FAILS=$((FAILS + 1))
        log "$SYS $* -> exit $rc$([ $rc = 124 ] && echo ' (timed out)')"
    fi
    return $rc
}

# figure SCENARIO CASE NAME VALUE: a figure measured here (RSS) as a JSON line.
figure() {
    printf '{"system":"%s","scenario":"%s","case":"%s","rep":%d,"figures":{"%s":%s},"detail":{}}\n' \
        "$SYS" "$1" "$2" "$REP" "$3" "$4" >>"$RES"
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }

# cpu_begin / cpu_end SCENARIO CASE N: CPU microseconds per task spent by the broker and by the
# worker (main + pool processes) during a measurement. Unlike tasks/s this does not depend on
# what else runs on the machine, and 2 cores / (sum of the costs) is the throughput ceiling.
cpu_begin() { CPU_B=$(cpu_ticks "$BROKER_PID") CPU_W=$(cpu_ticks "$WORKER_PID"); }
cpu_end() {
    local b w
    b=$(($(cpu_ticks "$BROKER_PID") - CPU_B)) w=$(($(cpu_ticks "$WORKER_PID") - CPU_W))
    figure "$1" "$2" broker_cpu_us_per_task "$(awk -v t="$b" -v n="$3" -v hz="$HZ" 'BEGIN{printf "%.2f", t * 1e6 / hz / n}')"
    figure "$1" "$2" worker_cpu_us_per_task "$(awk -v t="$w" -v n="$3" -v hz="$HZ" 'BEGIN{printf "%.2f", t * 1e6 / hz / n}')"
}

ready() { # [SECONDS]: a worker serves the broker: one real round trip
    local limit=${1:-60}
    "${SYS}_cmd"
    fg timeout $((limit + 30)) "${CMD[@]}" ping --timeout "$limit" >/dev/null ||
        die "$SYS worker did not come up within ${limit}s (KEEP_TMP=1 keeps the logs)"
}

up() { # POOL [broker args]
    local pool=$1
    shift
    "${SYS}_broker_up" "$@"
    "${SYS}_worker_up" "$pool"
    ready
}
down() { "${SYS}_worker_down"; "${SYS}_broker_down"; }

perf_start() {
    PERF_PIDS=()
    [ $PERF = 1 ] && [ "$SYS" = zq ] && [ "$REP" = 1 ] || return 0
    command -v perf >/dev/null || { log "perf not found"; return 0; }
    local w
    w=$(echo "$WORKER_PID" $(child_pids "$WORKER_PID") | tr ' ' ,)
    perf record -g -q -o "$RESDIR/perf-broker.data" -p "$BROKER_PID" 2>"$T/perf-b.log" &
    PERF_PIDS+=($!)
    perf record -g -q -o "$RESDIR/perf-worker.data" -p "$w" 2>"$T/perf-w.log" &
    PERF_PIDS+=($!)
    PIDS+=("${PERF_PIDS[@]}")
    sleep 0.5
}
perf_stop() {
    local p
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; untrack "$p"; done
    for p in broker worker; do
        [ -f "$RESDIR/perf-$p.data" ] && [ ${#PERF_PIDS[@]} -gt 0 ] || continue
        { # flat (self time), then inclusive as far as frame pointers allow
            perf report --stdio --no-children -g none --percent-limit 0.5 \
                --sort comm,dso,sym -i "$RESDIR/perf-$p.data"
            perf report --stdio --children -g none --percent-limit 2 --sort sym \
                -i "$RESDIR/perf-$p.data"
        } 2>/dev/null | grep -v '^$' >"$RESDIR/perf-$p.txt"
    done
    PERF_PIDS=()
}

# --- scenarios: each runs for the current $SYS and repetition $REP
sc_throughput() {
    local pool
    for pool in prefork threads; do
        up "$pool"
        [ "$pool" = prefork ] && perf_start
        cpu_begin
        measure 900 throughput --scenario throughput --case "$pool, results" --n "$N"
        cpu_end throughput "$pool, results" "$N"
        [ "$pool" = prefork ] && perf_stop
        cpu_begin
        measure 900 throughput --scenario throughput --case "$pool, ignore_result" --n "$N" --ignore-result
        cpu_end throughput "$pool, ignore_result" "$N"
        down
    done
    if [ "$MALLOC" = thp ]; then
        # the same without the tunable, for broker, worker and client alike
        local saved=$GLIBC_TUNABLES
        unset GLIBC_TUNABLES
        up prefork
        cpu_begin
        measure 900 throughput --scenario throughput --case "prefork, results, default malloc" --n "$N"
        cpu_end throughput "prefork, results, default malloc" "$N"
        down
        export GLIBC_TUNABLES=$saved
    fi
}

sc_latency() {
    up prefork
    measure 900 latency --scenario latency --case prefork --n "$LAT_N"
    down
}

sc_countdown() {
    up prefork
    measure 300 countdown --scenario countdown --case "prefork, burst" --n "$CD_N" --countdown 1
    measure 300 countdown --scenario countdown --case "prefork, 1 ms apart" --n "$CD_N" --countdown 1 --gap-ms 1
    down
}

# drain CASE N: pre-fill N tasks with no worker running, start the worker, time until done.
drain() {
    local case=$1 n=$2 t0 state=$T/prefill.state
    "${SYS}_broker_up"
    measure 3600 prefill --scenario scale --case "$case" --n "$n" --state "$state"
    figure scale "$case" broker_rss_before_mib "$(mib "$(rss_kib "$BROKER_PID")")"
    t0=$(date +%s.%N)
    "${SYS}_worker_up" prefork
    rss_sampler "$BROKER_PID" "$T/peak-broker" &
    PIDS+=($!)
    local sampler=$!
    rss_sampler "$WORKER_PID" "$T/peak-worker" &
    PIDS+=($!)
    local sampler2=$!
    measure 7200 drain --scenario scale --case "$case" --state "$state" --t0 "$t0"
    figure scale "$case" worker_rss_mib "$(mib "$(rss_kib "$WORKER_PID")")"
    stop_pid "$sampler"
    stop_pid "$sampler2"
    figure scale "$case" broker_rss_peak_mib "$(mib "$(cat "$T/peak-broker" 2>/dev/null || echo 0)")"
    figure scale "$case" worker_rss_peak_mib "$(mib "$(cat "$T/peak-worker" 2>/dev/null || echo 0)")"
    rm -f "$T/peak-broker" "$T/peak-worker" "$state"
    down
}

sc_scale() {
    up prefork
    measure 900 throughput --scenario scale --case empty --n "$N"
    figure scale empty broker_rss_mib "$(mib "$(rss_kib "$BROKER_PID")")"
    figure scale empty worker_rss_mib "$(mib "$(rss_kib "$WORKER_PID")")"
    down

    drain "$NL queued" "$N"
    drain "$SL queued" "$SCALE_N"

    local case="$SL ETA pending"
    "${SYS}_broker_up"
    measure 3600 prefill --scenario scale --case "$case" --n "$SCALE_N" --countdown 86400 --state "$T/eta.state"
    "${SYS}_worker_up" prefork
    ready 3600 # Celery's worker first loads every ETA message into its memory
    measure 3600 throughput --scenario scale --case "$case" --n "$N"
    figure scale "$case" broker_rss_mib "$(mib "$(rss_kib "$BROKER_PID")")"
    figure scale "$case" worker_rss_mib "$(mib "$(rss_kib "$WORKER_PID")")"
    down
}

sc_memory() {
    local pool
    for pool in prefork threads; do
        up "$pool"
        sleep 2
        figure memory "$pool, idle" worker_rss_mib "$(mib "$(rss_kib "$WORKER_PID")")"
        if [ "$pool" = prefork ]; then
            figure memory "broker, idle" broker_rss_mib "$(mib "$(rss_kib "$BROKER_PID")")"
            RECORD=0 measure 900 throughput --scenario memory-load --case prefork --n "$N"
            figure memory "prefork, after $NL tasks" worker_rss_mib "$(mib "$(rss_kib "$WORKER_PID")")"
            figure memory "broker, after $NL tasks" broker_rss_mib "$(mib "$(rss_kib "$BROKER_PID")")"
        fi
        down
    done
    "${SYS}_broker_up"
    RECORD=0 measure 3600 prefill --scenario memory-load --case prefill --n "$SCALE_N" --state "$T/mem.state"
    figure memory "broker, $SL queued" broker_rss_mib "$(mib "$(rss_kib "$BROKER_PID")")"
    "${SYS}_broker_down"
}

sc_durability() {
    local mode
    for mode in normal full; do
        "${SYS}_broker_up" --sync "$mode"
        "${SYS}_worker_up" prefork
        ready
        local case=default
        [ $mode = full ] && case=safest
        cpu_begin
        measure 900 throughput --scenario durability --case "$case" --n "$N"
        cpu_end durability "$case" "$N"
        down
    done
}

report() {
    "$B/zq-bench" report --meta "$META" --out "$RESDIR/latest.json" "$RES" | tee "$RESDIR/latest.txt"
    log "results: $RESDIR/latest.json (raw lines: $RES)"
}

# ---------------------------------------------------------------------------- run
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n')"; }
META=$RESDIR/meta-$STAMP.json
{
    printf '{"date":%s,' "$(json_str "$(date -u +%FT%TZ)")"
    printf '"machine":{"loadavg_at_start":%s,"nproc":%s,"cpu":%s,"mem_kib":%s,"kernel":%s,"os":%s},' \
        "$(json_str "$(cut -d' ' -f1-3 /proc/loadavg)")" "$(nproc)" \
        "$(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')")" \
        "$(awk '/MemTotal/{print $2}' /proc/meminfo)" "$(json_str "$(uname -r)")" \
        "$(json_str "Debian $(cat /etc/debian_version 2>/dev/null)")"
    printf '"versions":{"zq":%s,"libzmq":%s,"sqlite":%s,"cjson":%s' \
        "$(json_str "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)")" \
        "$(json_str "$(pkg-config --modversion libzmq 2>/dev/null)")" \
        "$(json_str "$(pkg-config --modversion sqlite3 2>/dev/null)")" \
        "$(json_str "$(pkg-config --modversion libcjson 2>/dev/null)")"
    if [ "$COMPARE" = celery ]; then
        printf ',"celery":%s,"redis":%s' \
            "$(json_str "$($PY -c 'import celery,kombu,redis;print(celery.__version__,"kombu",kombu.__version__,"redis-py",redis.__version__)')")" \
            "$(json_str "$(redis-server --version)")"
    fi
    printf '},"config":{"reps":%s,"n":%s,"latency_n":%s,"countdown_n":%s,"scale_n":%s,"transport":"%s","quick":%s,"scenarios":%s,"concurrency":2,"malloc":"%s"}}\n' \
        "$REPS" "$N" "$LAT_N" "$CD_N" "$SCALE_N" "$TRANSPORT" "$QUICK" \
        "$(json_str "${SCENARIOS[*]}")" "$MALLOC"
} >"$META"

others=$(ps -eo comm= | grep -cE '^(zq-broker|zq-worker|zq-bench|redis-server|celery)$')
[ "$others" -gt 0 ] && log "WARNING: $others other zq/Celery/redis process(es) already run on this machine: the figures will be disturbed (load: $(cut -d' ' -f1-3 /proc/loadavg))"
SYSTEMS=(zq)
[ "$COMPARE" = celery ] && SYSTEMS+=(celery)
log "scenarios: ${SCENARIOS[*]}; systems: ${SYSTEMS[*]}; N=$N reps=$REPS scale=$SCALE_N; malloc: $MALLOC${GLIBC_TUNABLES:+ (GLIBC_TUNABLES=$GLIBC_TUNABLES)}; logs in $T"
for sc in "${SCENARIOS[@]}"; do
    for SYS in "${SYSTEMS[@]}"; do
        for REP in $(seq "$REPS"); do
            log "$SYS: $sc, repetition $REP/$REPS"
            "sc_$sc"
        done
    done
done
SYS=zq REP=0

report
[ $FAILS -eq 0 ] || { log "$FAILS measurement(s) failed; worker and broker logs: KEEP_TMP=1 keeps $T"; exit 1; }
exit $?
}
