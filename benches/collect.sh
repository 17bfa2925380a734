#!/usr/bin/env bash
# Exporter CPU and RSS while collecting N real containers at a 5 s interval.
#
# Needs a Docker daemon on /var/run/docker.sock holding the test image
# (`sudo scripts/test-env.sh up` provides both). Starts N containers (default 50) running
# `sleep`, runs the release exporter against the socket, lets it warm up, then measures
# W-second windows (default 3 × 60 s): CPU from /proc/PID/stat (utime+stime) over each
# window, RSS from /proc/PID/status every second. Prints a Markdown table; BENCHMARKS.md
# quotes it. Removes its containers on exit.
#
#   sudo benches/collect.sh [containers] [windows] [window_seconds]
set -euo pipefail

N=${1:-50}
WINDOWS=${2:-3}
WINDOW_S=${3:-60}
WARMUP_S=20
IMAGE=dockstat-test/busybox:latest
LABEL=dockstat.bench=collect
cd "$(dirname "$0")/.."

docker() { DOCKER_HOST=unix:///var/run/docker.sock /usr/bin/docker "$@"; }
docker version --format '{{.Server.Version}}' >/dev/null || {
  echo "no Docker daemon on /var/run/docker.sock: run scripts/test-env.sh up" >&2; exit 1; }
docker image inspect "$IMAGE" >/dev/null || {
  echo "image $IMAGE missing: run scripts/test-env.sh up" >&2; exit 1; }

cargo build --release --locked --quiet
BIN=target/release/dockstat-exporter
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null
for i in $(seq 1 "$N"); do
  docker run -d --label "$LABEL" --name "bench-collect-$i" "$IMAGE" sleep 86400 >/dev/null
done

PORT=$(( 20000 + RANDOM % 10000 ))
cat > "$WORK/config.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$PORT
monitoring:
  interval: 5s
database:
  path: $WORK/dockstat.db
clients:
  - name: bench
    hosts:
      - name: a
        address: unix:///var/run/docker.sock
YAML
RUST_LOG=warn "$BIN" --config "$WORK/config.yaml" 2>"$WORK/exporter.log" &
PID=$!
sleep "$WARMUP_S"

# The exporter must really be collecting all N containers.
running=$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" \
  | grep -c '^container_cpu_usage_seconds_total{.*name="bench-collect-' || true)
if [ "$running" -ne "$N" ]; then
  echo "exporter reports $running of $N containers; log:" >&2; cat "$WORK/exporter.log" >&2; exit 1
fi

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

cpus=(); rss_all="$WORK/rss"; : > "$rss_all"
for w in $(seq 1 "$WINDOWS"); do
  t0=$(cpu_ticks); s0=$(date +%s.%N)
  for _ in $(seq 1 "$WINDOW_S"); do rss_kib >> "$rss_all"; sleep 1; done
  t1=$(cpu_ticks); s1=$(date +%s.%N)
  pct=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$TICKS" \
    'BEGIN {printf "%.3f", 100 * (b - a) / hz / (e - s)}')
  cpus+=("$pct")
  echo "window $w: cpu ${pct}% of one core" >&2
done

cpu_med=$(printf '%s\n' "${cpus[@]}" | median)
rss_med=$(median < "$rss_all")
rss_max=$(sort -n "$rss_all" | tail -1)
echo "| containers | interval | windows | CPU (median of windows, % of one core) | CPU per window | RSS median | RSS max |"
echo "|---:|---:|---:|---:|---|---:|---:|"
printf '| %s | 5 s | %s × %s s | %s %% | %s | %.1f MiB | %.1f MiB |\n' "$N" "$WINDOWS" "$WINDOW_S" \
  "$cpu_med" "$(printf '%s%% ' "${cpus[@]}")" "$(echo "$rss_med/1024" | bc -l)" "$(echo "$rss_max/1024" | bc -l)"
