#!/usr/bin/env bash
# The whole suite (scripts/test.sh, same arguments) while stress-ng keeps every core busy:
# tests must wait for what they assert, not for a time that holds on an idle machine.
# Installs Debian's stress-ng when missing. Run as root, like scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v stress-ng >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi
stress-ng --cpu "$(nproc)" --cpu-load 100 --timeout 0 --quiet &
STRESS=$!
trap 'kill $STRESS 2>/dev/null; wait $STRESS 2>/dev/null || true' EXIT
started=$(date +%s)
scripts/test.sh "$@"
echo "test-under-load: passed in $(( $(date +%s) - started )) s with $(nproc) cores loaded"
