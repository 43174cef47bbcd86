#!/usr/bin/env bash
# README command 1: install what is missing, build, then run the demo: a broker, a worker with
# the example plugin, and a few tasks sent with zq-ctl. Everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
demo=$(mktemp -d /tmp/zq-demo.XXXXXX)
export ZQ_BROKER=ipc://$demo/broker
./zq-broker --data-dir "$demo/data" >"$demo/broker.log" 2>&1 & bp=$!
./zq-worker --plugins ./plugins -c 2 -l INFO >"$demo/worker.log" 2>&1 & wp=$!
trap 'kill $wp 2>/dev/null; wait $wp 2>/dev/null; kill $bp 2>/dev/null; wait $bp 2>/dev/null; rm -rf "$demo"' EXIT
for _ in $(seq 100); do ./zq-ctl status >/dev/null 2>&1 && break; sleep 0.1; done
run() { echo "\$ $*"; "$@" || true; }
run ./zq-ctl status
run ./zq-ctl call tasks.add 2 2 --wait --timeout 10
id=$(./zq-ctl call tasks.add_when_binded 5 5)
echo "\$ zq-ctl call tasks.add_when_binded 5 5"; echo "$id"
run ./zq-ctl result --timeout 10 "$id"
run ./zq-ctl --json result "$id"
run ./zq-ctl call tasks.add 2 2 --countdown 1 --wait --timeout 10
run ./zq-ctl call tasks.div 4 0 --kwargs '{"countdown": 0.5}' --wait --timeout 10
echo; echo "--- worker log ---"; cat "$demo/worker.log"
