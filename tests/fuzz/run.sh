#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets of tests/fuzz/ in their own clang build
# directory (ASan + UBSan, the libraries instrumented for coverage) and
# runs each for a bounded time on its committed seed corpus plus a
# scratch corpus kept in the build directory. Prints TAP: one case for
# the build, one per target; a crash, leak, timeout or out-of-memory in
# any target fails it, and the input that did it is kept under
# $FUZZ_BUILD/fuzz-artifacts/<target>/ (add it to the target's corpus as
# crash-<what> or oom-<what> once fixed, so every later run replays it;
# tests/fuzz/pending/ holds the ones still waiting for a fix, which this
# script does not load).
#
# Skips (TAP "1..0 # SKIP") when clang, its libFuzzer runtime, meson or
# ninja is missing. Environment:
#   FUZZ_TIME   seconds per target (default 15)
#   FUZZ_JOBS   targets run at once (default 1: meson test runs other
#               tests beside this one)
#   FUZZ_BUILD  build directory (default <source>/build-fuzz)
#   FUZZ_ONLY   space-separated subset of the targets
set -u

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
secs=${FUZZ_TIME:-15}
jobs=${FUZZ_JOBS:-1}
targets=${FUZZ_ONLY:-"webhook msg coord_conf agent_conf quantity prom k8s auth"}

max_len() {
	case $1 in
	quantity) echo 256 ;;
	msg|prom|auth) echo 4096 ;;
	webhook) echo 16384 ;;
	*) echo 8192 ;;
	esac
}

skip() {
	echo "1..0 # SKIP $1"
	exit 0
}

for tool in clang meson ninja; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed"
done
probe=$(mktemp -d "${TMPDIR:-/tmp}/reflex-fuzz-probe.XXXXXX") || exit 1
cat >"$probe/t.c" <<'PROBE'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{ (void)d; (void)n; return 0; }
PROBE
if ! clang -fsanitize=fuzzer,address,undefined "$probe/t.c" \
    -o "$probe/t" >/dev/null 2>&1; then
	rm -rf "$probe"
	skip "clang cannot link libFuzzer with ASan/UBSan (libclang-rt-dev)"
fi
rm -rf "$probe"

n=0
for t in $targets; do n=$((n + 1)); done
echo "1..$((n + 1))"

opts="-Dfuzz=true -Db_lundef=false -Db_sanitize=address,undefined
-Dbuildtype=debugoptimized -Dintegration=false"
cargs="-fsanitize=fuzzer-no-link"
stamp="$opts $cargs"
log="$build/fuzz-build.log"
ok=1
if [ ! -f "$build/build.ninja" ] ||
    [ "$(cat "$build/.fuzz-options" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$build"
	mkdir -p "$build"
	# shellcheck disable=SC2086 # $opts is a list of options
	CC=clang meson setup "$build" "$src" $opts "-Dc_args=$cargs" \
	    >"$build/setup.log" 2>&1 || ok=0
	[ $ok = 1 ] && echo "$stamp" >"$build/.fuzz-options"
fi
if [ $ok = 1 ]; then
	names=""
	for t in $targets; do names="$names tests/fuzz/fuzz_$t"; done
	# shellcheck disable=SC2086
	ninja -C "$build" $names >"$log" 2>&1 || ok=0
fi
if [ $ok = 0 ]; then
	echo "not ok 1 - configure and build the fuzz targets with clang"
	tail -n 30 "$build/setup.log" "$log" 2>/dev/null | sed 's/^/# /'
	i=1
	for t in $targets; do
		i=$((i + 1))
		echo "not ok $i - $t: not built"
	done
	exit 1
fi
echo "ok 1 - configure and build the fuzz targets with clang"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# Runs one target; writes "<rc> <runs>" to $build/fuzz-work/<t>/result.
run_one() {
	t=$1
	w="$build/fuzz-work/$t"
	rm -rf "$w"
	mkdir -p "$w/art" "$build/fuzz-corpus/$t"
	dict=""
	[ -f "$src/tests/fuzz/$t.dict" ] && dict="-dict=$src/tests/fuzz/$t.dict"
	# shellcheck disable=SC2086 # $dict is empty or one option
	"$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" \
	    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
	    -max_len="$(max_len "$t")" -print_final_stats=1 $dict \
	    -artifact_prefix="$w/art/" \
	    "$build/fuzz-corpus/$t" "$src/tests/fuzz/corpus/$t" \
	    >"$w/log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log")
	echo "$rc ${runs:-?}" >"$w/result"
}

running=0
for t in $targets; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

status=0
i=1
for t in $targets; do
	i=$((i + 1))
	w="$build/fuzz-work/$t"
	rc=1
	runs=?
	[ -f "$w/result" ] && read -r rc runs <"$w/result"
	if [ "$rc" = 0 ]; then
		echo "ok $i - $t: ${secs}s, $runs inputs, no crash"
		continue
	fi
	status=1
	echo "not ok $i - $t: libFuzzer exit $rc after $runs inputs"
	mkdir -p "$build/fuzz-artifacts/$t"
	for a in "$w"/art/*; do
		[ -f "$a" ] || continue
		cp "$a" "$build/fuzz-artifacts/$t/"
		echo "#   input kept: $build/fuzz-artifacts/$t/$(basename "$a")"
	done
	grep -E "ERROR|SUMMARY|fuzz property|runtime error|#[0-9]+ 0x" \
	    "$w/log" | head -n 25 | sed 's/^/#   /'
done
exit $status
