#!/usr/bin/env bash
# Build zq in the source tree (so that ./zq-broker, ./zq-worker, ./zq-ctl and ./plugins/ are
# where the README says). Extra arguments go to configure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || ./autogen.sh >/dev/null
if [ ! -f config.status ] || [ $# -gt 0 ]; then ./configure -q "$@"; fi
make -j"$(nproc)" -s
