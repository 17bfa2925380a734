#!/usr/bin/env bash
# The test suite, in two tiers.
#
# scripts/test.sh --quick [cargo test args]
#   The unit tests and the golden files (tests/golden.rs): no Docker, no root, a few
#   seconds once built. Needs promtool (Debian's `prometheus` package) on PATH; without it
#   the golden tests fail, saying so. Equivalent to `cargo test --locked --lib --test golden`.
#
# sudo scripts/test.sh [cargo test args]
#   The whole suite, against real Docker daemons and a real promtool. Run as root on
#   Debian 12 (the CI machine is one): installs what is missing (docker.io, busybox-static,
#   prometheus for promtool, openssl, curl), starts daemon A on /var/run/docker.sock,
#   daemon B (unix + tcp://127.0.0.1:23750) and daemon C (mutual TLS on
#   tcp://127.0.0.1:23760), loads the busybox test image into each, runs `cargo test`, and
#   stops what it started. DOCKSTAT_KEEP_ENV=1 leaves the daemons up for the next run.
#   Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test hosts`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --quick ]]; then
    shift
    if ! command -v promtool >/dev/null; then
        echo "scripts/test.sh --quick: promtool is missing (apt-get install prometheus)" >&2
        exit 1
    fi
    exec cargo test --locked --lib --test golden "$@"
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/test.sh starts Docker daemons: run it as root (sudo scripts/test.sh)," >&2
    echo "or run the tier that needs neither: scripts/test.sh --quick" >&2
    exit 1
fi

scripts/test-env.sh up
if [[ ${DOCKSTAT_KEEP_ENV:-0} != 1 ]]; then
    trap 'scripts/test-env.sh down' EXIT
fi
# shellcheck disable=SC1091
source /run/dockstat-test/env

cargo test --locked "$@"
