#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what is missing, builds reflex, and runs the local demo: a real
# Prometheus and Alertmanager on 127.0.0.1 fire an alert at reflex, which
# heals the faulty process. Extra arguments go to deploy/demo/run-demo.py
# (e.g. --keep to leave everything running).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/bootstrap.sh" build
exec python3 "$top/deploy/demo/run-demo.py" --build "$top/build" "$@"
