#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs, builds and runs every reflex test: once in a normal build and
# once under AddressSanitizer + UndefinedBehaviorSanitizer. Ends with
# "N passed, N failed" (counted over the TAP cases of every test program).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0

# clang and libFuzzer for the fuzz targets, valgrind for its scenario
# (both suites skip, and say so, where these are missing).
export REFLEX_EXTRA_PACKAGES="clang libclang-rt-14-dev valgrind"
"$top/deploy/bootstrap.sh" build || exit 1
"$top/deploy/bootstrap.sh" build-asan -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbuildtype=debug || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for b in build build-asan; do
    echo "== meson test ($b)"
    meson test -C "$b" --num-processes 2 --print-errorlogs || status=1
done

python3 "$top/tests/lib/tapsum.py" build/meson-logs/testlog.json \
    build-asan/meson-logs/testlog.json || status=1
exit $status
