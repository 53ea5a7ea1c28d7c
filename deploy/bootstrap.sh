#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what reflex needs on Debian bookworm (only what is missing) and
# builds it. Safe to run again. Usage: deploy/bootstrap.sh [BUILD_DIR [MESON_ARGS...]]
# REFLEX_EXTRA_PACKAGES names more packages to install (the test run adds
# its fuzzing and valgrind tools).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift

packages="meson ninja-build pkg-config gcc libnng-dev libmsgpack-dev
libcurl4-openssl-dev libcjson-dev libyaml-dev libsqlite3-dev libmbedtls-dev sqlite3
prometheus prometheus-alertmanager python3 curl
${REFLEX_EXTRA_PACKAGES:-}"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "reflex: installing:$missing"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends $missing
    # The packaged Prometheus and Alertmanager services are not wanted:
    # reflex's demo and tests start their own on 127.0.0.1. Installed
    # just now for that, they are stopped and disabled again (on a
    # machine with systemd running) rather than left listening on every
    # interface; services that were there before are left alone.
    for svc in prometheus prometheus-alertmanager; do
        case " $missing " in *" $svc "*) ;; *) continue ;; esac
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null
        then
            $sudo systemctl disable --now "$svc.service" >/dev/null 2>&1 ||
                true
        fi
    done
fi

cd "$top"
log=$(mktemp)
if [ -f "$build/build.ninja" ]; then
    set -- --reconfigure "$build" "$@"
else
    set -- "$build" "$@"
fi
# Quiet when it works; the whole output when it does not.
if ! meson setup "$@" >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "reflex: meson setup failed" >&2
    exit 1
fi
rm -f "$log"
ninja -C "$build"
