#!/usr/bin/env bash
# The whole test suite, against real Docker daemons and a real promtool.
#
# Run as root on Debian 12 (the CI machine is one): installs what is missing (docker.io,
# busybox-static, prometheus for promtool, openssl, curl), starts daemon A on
# /var/run/docker.sock, daemon B (unix + tcp://127.0.0.1:23750) and daemon C (mutual TLS on
# tcp://127.0.0.1:23760), loads the busybox test image into each, runs `cargo test`, and
# stops what it started. DOCKSTAT_KEEP_ENV=1 leaves the daemons up for the next run.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test hosts`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/test.sh starts Docker daemons: run it as root (sudo scripts/test.sh)" >&2
    exit 1
fi

scripts/test-env.sh up
if [[ ${DOCKSTAT_KEEP_ENV:-0} != 1 ]]; then
    trap 'scripts/test-env.sh down' EXIT
fi
# shellcheck disable=SC1091
source /run/dockstat-test/env

cargo test --locked "$@"
