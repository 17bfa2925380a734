#!/usr/bin/env bash
# Collection CPU of two exporter builds, alternately against one simulator: the honest
# comparison on a shared machine whose speed changes from minute to minute.
#
#   benches/ab.sh ROUNDS WINDOW_S BIN_A BIN_B [hosts] [containers_per_host]
#   benches/ab.sh 4 20 /tmp/old-dockstat-exporter target/release/dockstat-exporter   # ~8 min
#
# Needs bash, curl, awk and python3 (free ports), and the release simulator
# (`cargo build --release --example dockersim`). Starts `examples/dockersim.rs` once
# (default 20 hosts × 500 running containers on unix sockets), then for each round starts
# build A, then build B, each with `monitoring.interval: 5s` and a fresh database: waits
# until its /metrics holds every container, lets it settle 12 s, measures over WINDOW_S
# seconds its CPU and the simulator's (utime+stime from /proc, % of one core), then stops it.
# Prints per round: CPU %, simulator CPU %, RSS MiB of each build, B/A of the CPU, and B/A
# of the CPU per unit of simulator CPU. The simulator's work per stats call is fixed, so its
# CPU tells how fast the machine was in that window; the second ratio takes that out.
set -euo pipefail
ROUNDS=$1; WIN=$2; A=$3; B=$4; HOSTS=${5:-20}; PER=${6:-500}
cd "$(dirname "$0")/.."
SIM=target/release/examples/dockersim
[ -x "$SIM" ] || { echo "build the simulator first: cargo build --release --example dockersim" >&2; exit 1; }
W=$(mktemp -d /tmp/dockstat-ab.XXXXXX); mkdir -p "$W/sock"
EPID=
"$SIM" --hosts "$HOSTS" --containers "$PER" --dir "$W/sock" >"$W/sim.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true; if [ -n "$EPID" ]; then kill "$EPID" 2>/dev/null || true; fi; rm -rf "$W"' EXIT
for _ in $(seq 100); do grep -q ready "$W/sim.log" && break; sleep 0.1; done
grep -q ready "$W/sim.log" || { echo "simulator did not start:" >&2; cat "$W/sim.log" >&2; exit 1; }
read -r PORT APORT <<<"$(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
{
  echo "listen: {metrics: 127.0.0.1:$PORT, admin: 127.0.0.1:$APORT}"
  echo "monitoring: {interval: 5s}"
  echo "database: {path: $W/db}"
  echo "clients:"
  echo "  - name: sim"
  echo "    hosts:"
  for k in $(seq 0 $((HOSTS - 1))); do echo "      - { name: h$k, address: unix://$W/sock/h$k.sock }"; done
} >"$W/config.yaml"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# measure BIN: "cpu% sim% rssMiB" of one start of BIN.
measure() {
  rm -f "$W"/db*
  RUST_LOG=warn "$1" --config "$W/config.yaml" >"$W/exporter.log" 2>&1 &
  EPID=$!
  local n=0 waited=0
  while [ "$n" -lt $((HOSTS * PER)) ]; do
    sleep 1; waited=$((waited + 1))
    [ "$waited" -lt 600 ] || { echo "$1: not every container after 600 s" >&2; tail "$W/exporter.log" >&2; exit 1; }
    n=$(curl -sf --max-time 30 "http://127.0.0.1:$PORT/metrics" | grep -ac '^container_cpu_usage_seconds_total{' || true)
  done
  sleep 12
  local t0 s0 a t1 s1 b rss
  t0=$(ticks "$EPID"); s0=$(ticks "$SPID"); a=$(date +%s.%N)
  sleep "$WIN"
  t1=$(ticks "$EPID"); s1=$(ticks "$SPID"); b=$(date +%s.%N)
  rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$EPID/status")
  kill "$EPID"; wait "$EPID" 2>/dev/null || true; EPID=
  awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v a="$a" -v b="$b" -v r="$rss" -v hz="$hz" \
    'BEGIN {printf "%.2f %.2f %.1f", 100 * (t1 - t0) / hz / (b - a), 100 * (s1 - s0) / hz / (b - a), r / 1024}'
}
echo "| round | A CPU | A simulator | A RSS | B CPU | B simulator | B RSS | B/A CPU | B/A per simulator CPU |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  x=$(measure "$A"); y=$(measure "$B")
  echo "$x $y" | awk -v r="$r" '{
    ratio = "n/a"; per_sim = "n/a"   # a window too short to register a tick
    if ($1 > 0) ratio = sprintf("%.2f", $4 / $1)
    if ($1 > 0 && $2 > 0 && $5 > 0) per_sim = sprintf("%.2f", ($4 / $5) / ($1 / $2))
    printf "| %d | %.2f %% | %.2f %% | %.1f MiB | %.2f %% | %.2f %% | %.1f MiB | %s | %s |\n",
      r, $1, $2, $3, $4, $5, $6, ratio, per_sim}'
done
