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

# The two builds' suites run at once, two tests each: their integration
# tests mostly wait for reflex's timers, so four at a time fit on two
# CPUs and the run takes about half as long. The normal build's output
# comes as it runs, the sanitized build's after it (each has its own
# meson-logs/testlog.json, counted below).
asan_out=build-asan/meson-logs/run-output.txt
mkdir -p build-asan/meson-logs
rm -f "$asan_out" "$asan_out.rc"
( meson test -C build-asan --num-processes 2 --print-errorlogs \
    >"$asan_out" 2>&1; echo $? >"$asan_out.rc" ) &
asan_pid=$!
echo "== meson test (build; build-asan runs beside it, its output follows)"
meson test -C build --num-processes 2 --print-errorlogs || status=1
wait "$asan_pid"
echo "== meson test (build-asan)"
cat "$asan_out"
[ "$(cat "$asan_out.rc" 2>/dev/null)" = 0 ] || status=1

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
