#!/usr/bin/env bash
# Install the Debian 12 packages zq needs to build, test and run, if any is missing.
# Usage: scripts/install-deps.sh [--with-test-tools]
set -euo pipefail
pkgs=(build-essential autoconf automake libtool pkg-config
      libzmq3-dev libcjson-dev libsqlite3-dev check libedit-dev iproute2
      libmicrohttpd-dev)
if [ "${1:-}" = "--with-test-tools" ]; then
    pkgs+=(valgrind)
    # the web monitor's tests: curl for the shell test, headless Chromium driven by
    # playwright-core (tests/browser, installed there with npm ci) for the browser test
    pkgs+=(curl chromium)
    # `make fuzz` (tests/fuzz/README.md): clang with libFuzzer and the sanitizer runtimes
    # (libclang_rt.fuzzer-x86_64.a comes with libclang-rt-14-dev on Debian 12)
    pkgs+=(clang libclang-rt-14-dev)
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "zq: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
