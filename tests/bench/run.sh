#!/bin/sh
# SPDX-License-Identifier: MIT
# The benchmark suite of issue 7: builds reflex in release mode in its own
# build directory, builds the floors and load generators next to it, runs
# every benchmark on 127.0.0.1 and prints the table (figure, reflex, floor,
# ratio, goal, holds?). Not part of tests/run.sh; nothing here is a test.
#
# usage: tests/bench/run.sh [--only ingest,latency,...] [--profile]
# Environment: REFLEX_BENCH_BUILD (default <repo>/build-bench).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${REFLEX_BENCH_BUILD:-$root/build-bench}
tools=$build/bench-tools
out=$build/bench-results

# What is missing is installed as the README's two commands do (wrk is
# the suite's own addition), and the release build is made or brought
# up to date, with -Werror like every other build.
setup_log=$(mktemp)
REFLEX_EXTRA_PACKAGES="wrk ${REFLEX_EXTRA_PACKAGES:-}" \
    "$root/deploy/bootstrap.sh" "$build" --buildtype=release \
    >"$setup_log" 2>&1 || {
	cat "$setup_log" >&2
	rm -f "$setup_log"
	exit 1
}
rm -f "$setup_log"
echo "run.sh: building reflex (release) in $build"
ninja -C "$build" coordinator/reflex-coordinator agent/reflex-agent \
    tests/fake-agents coordinator/libreflex-coord.a \
    common/libreflex-common.a >"$build/bench-build.log" 2>&1 || {
	tail -40 "$build/bench-build.log" >&2
	exit 1
}

# The floors and load generators: one C file each, the project's warning
# flags, -O3 like the release build.
mkdir -p "$tools"
cflags="-std=c11 -O3 -g -D_GNU_SOURCE -pthread -Wall -Wextra -Werror
    -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wno-missing-field-initializers -Wno-format-truncation
    -I$root/common -I$root/coordinator -I/usr/include/cjson"
libs="-lnng -lcurl -lcjson -lmsgpackc -lyaml -lm"
# Tools that link reflex's own libraries take the coordinator's link line
# from the build, so they follow its dependencies as they change.
reflex_libs=$(awk '/^build coordinator\/reflex-coordinator:/ { f = 1 }
    f && / LINK_ARGS = / { sub(/^ *LINK_ARGS = /, ""); print; exit }' \
    "$build/build.ninja")
if [ -z "$reflex_libs" ]; then
	echo "run.sh: no link line for reflex-coordinator in $build" >&2
	exit 1
fi
cc_tool() {
	name=$1
	link=$2
	src=$here/$(echo "$name" | tr - _).c
	# Relative library paths in the link line are the build dir's.
	# shellcheck disable=SC2086 # word splitting of the flag lists
	(cd "$build" && gcc $cflags -o "$tools/$name" "$src" $link) || exit 1
}
cc_tool floor-http "$libs"
cc_tool floor-nng "$libs"
cc_tool floor-curl "$libs"
cc_tool floor-idle "$libs"
cc_tool probe-target "$libs"
cc_tool lat-gen "$reflex_libs"
cc_tool cmd-rtt "$reflex_libs"

exec python3 "$here/bench.py" --build "$build" --tools "$tools" \
    --out "$out" "$@"
