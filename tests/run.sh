#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs, builds and runs every reflex test: once in a normal build and
# once under AddressSanitizer + UndefinedBehaviorSanitizer; then, in the
# normal build, every integration test again with reflex-coordinator and
# reflex-agent under valgrind (meson test setup "valgrind", see
# tests/lib/reflexlab.py). Ends with "N passed, N failed" (counted over
# the TAP cases of every test program of the three runs).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0

# clang and libFuzzer for the fuzz targets, valgrind for its scenario
# (both suites skip, and say so, where these are missing); openssl makes
# the certificates of the fake Kubernetes API server and the HTTPS tests
# (a minimal Debian has it only through ca-certificates, a recommends).
export REFLEX_EXTRA_PACKAGES="clang libclang-rt-14-dev valgrind openssl"
"$top/deploy/bootstrap.sh" build || exit 1
"$top/deploy/bootstrap.sh" build-asan -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbuildtype=debug || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for b in build build-asan; do
    echo "== meson test ($b)"
    meson test -C "$b" --num-processes 2 --print-errorlogs || status=1
done

# Valgrind slows reflex 20-50x, but the integration tests mostly wait for
# it, so 4 at once fit on 2 CPUs; their waits are stretched
# (REFLEX_TIME_FACTOR x20, meson's timeouts x5).
logs="build/meson-logs/testlog.json build-asan/meson-logs/testlog.json"
if command -v valgrind >/dev/null 2>&1; then
    echo "== meson test (build, integration tests under valgrind)"
    # no stale log counted should this run not start
    rm -rf build/meson-logs/valgrind build/meson-logs/testlog-valgrind.json
    meson test -C build --setup valgrind --suite integration \
        --num-processes 4 --print-errorlogs || status=1
    logs="$logs build/meson-logs/testlog-valgrind.json"
else
    echo "== valgrind not installed: integration tests under valgrind skipped"
fi

python3 "$top/tests/lib/tapsum.py" $logs || status=1
exit $status
