#!/usr/bin/env bash
# tests/e2e/browser.sh - the web monitor in a real browser: headless Chromium (Debian's
# /usr/bin/chromium) driven by playwright-core (pinned in tests/browser/package-lock.json,
# installed with `npm ci` into the build directory). Starts a broker and `zq-ctl flower`;
# tests/browser/flower.test.js starts a worker while the dashboard is open, sends tasks and
# checks they appear without a reload, opens a task page, and saves screenshots under
# tests/browser/artifacts/ (override with ZQ_BROWSER_ARTIFACTS). Skips (exit 77) only when
# chromium or node/npm is missing.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${ZQ_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ ! -x /usr/bin/chromium ]; then
    echo "SKIP: /usr/bin/chromium is not installed (scripts/install-deps.sh --with-test-tools installs it)"
    exit 77
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node/npm are not installed (scripts/install-deps.sh --with-test-tools installs them)"
    exit 77
fi

section "playwright-core"
# npm ci into the build tree (the source tree stays clean); again only when the lock changed
NODE_DIR=$B/tests/browser-node
mkdir -p "$NODE_DIR"
if ! cmp -s "$SRC/tests/browser/package-lock.json" "$NODE_DIR/package-lock.json" ||
    [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
    cp "$SRC/tests/browser/package.json" "$SRC/tests/browser/package-lock.json" "$NODE_DIR/"
    if (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund >"$T/npm.log" 2>&1); then
        ok "npm ci installed playwright-core"
    else
        rm -f "$NODE_DIR/package-lock.json"
        bad "npm ci failed: $(tail -n 3 "$T/npm.log")"
        e2e_finish
        exit 1
    fi
else
    ok "playwright-core already installed from the same lock"
fi
cp "$SRC/tests/browser/flower.test.js" "$NODE_DIR/"

section "browser"
start_broker bb || exit 1
"$ZQ_CTL_BIN" flower --broker "$URL" --port 0 >"$T/flower.log" 2>&1 &
FLOWER_PID=$!
PIDS+=("$FLOWER_PID")
wait_for 20 grep -q "Visit me at" "$T/flower.log" || bad "flower did not start"
FPORT=$(grep -o 'Visit me at http://127.0.0.1:[0-9]*' "$T/flower.log" | grep -o '[0-9]*$')

ART=${ZQ_BROWSER_ARTIFACTS:-$SRC/tests/browser/artifacts}
rm -rf "$ART"
while IFS= read -r line; do
    case $line in
    "ok - "*) ok "${line#ok - }" ;;
    "FAIL - "*) bad "${line#FAIL - }" ;;
    *) echo "$line" ;;
    esac
done < <(cd "$NODE_DIR" && FLOWER_URL="http://127.0.0.1:$FPORT" BROKER_URL="$URL" \
    ZQ_CTL="$ZQ_CTL_BIN" ZQ_WORKER="$ZQ_WORKER_BIN" PLUGINS="$PLUGINS" ARTIFACTS="$ART" \
    WORKER_PIDFILE="$T/worker.pid" timeout 300 node flower.test.js 2>&1)
# the worker the test started is stopped by PID, whatever happened to the test
[ -f "$T/worker.pid" ] && stop_pid "$(cat "$T/worker.pid")"
shots=$(ls "$ART"/*.png 2>/dev/null | wc -l)
[ "$shots" -ge 8 ] && ok "$shots screenshots in $ART" || bad "only $shots screenshots in $ART"

e2e_finish
