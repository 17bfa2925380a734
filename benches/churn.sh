#!/usr/bin/env bash
# Churn soak: containers created, started, stopped and removed over and over on daemon A
# while the release exporter collects at `interval: 1s` and one scraper reads /metrics
# every second. Checks that nothing is left behind:
#   - no series of a removed container in the scrape after the cycles,
#   - RSS, open fds and tokio tasks (dockstat_runtime_tasks) after settling within
#     +5 MB, +5 and +5 of their value after the first 200 cycles.
# Prints a Markdown table (BENCHMARKS.md quotes it) and exits 1 when a check fails.
#
#   sudo benches/churn.sh [cycles (2000)] [parallel workers (4)] [settle seconds (30)]
#
# Needs daemon A with the test image (`sudo scripts/test-env.sh up`).
set -euo pipefail

CYCLES=${1:-2000}
PAR=${2:-4}
SETTLE_S=${3:-30}
BASELINE_AT=${BASELINE_AT:-200}
IMAGE=dockstat-test/busybox:latest
LABEL=dockstat.bench=churn
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
SCRAPER=
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null

PORT=$(( 20000 + RANDOM % 10000 ))
ADMIN=$(( PORT + 1 ))
cat > "$WORK/config.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$PORT
  admin: 127.0.0.1:$ADMIN
monitoring:
  interval: 1s
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
until curl -sf --max-time 2 "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.2; done

# One scraper, once a second, as Prometheus would.
( while true; do curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$PORT/metrics"; sleep 1; done ) &
SCRAPER=$!

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
tasks() {
  curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk '/^dockstat_runtime_tasks / {print $2}'
}

# One cycle: create, start, stop (the process exits at once), remove.
cycle() {
  local name="bench-churn-$1"
  local id
  id=$(docker create --label "$LABEL" --name "$name" "$IMAGE" sleep 3600)
  docker start "$id" >/dev/null
  docker stop -t 0 "$id" >/dev/null
  docker rm "$id" >/dev/null
}
export -f cycle docker
export LABEL IMAGE

run_cycles() { # from to
  seq "$1" "$2" | xargs -P "$PAR" -I{} bash -c 'cycle {}'
}

started=$(date +%s)
run_cycles 1 "$BASELINE_AT"
sleep "$SETTLE_S"
base_rss=$(rss_kib); base_fds=$(fds); base_tasks=$(tasks)
run_cycles $((BASELINE_AT + 1)) "$CYCLES"
took=$(( $(date +%s) - started ))
sleep "$SETTLE_S"
end_rss=$(rss_kib); end_fds=$(fds); end_tasks=$(tasks)

scrape=$(curl -sf --max-time 10 "http://127.0.0.1:$PORT/metrics")
stale=$(printf '%s\n' "$scrape" | grep -c 'name="bench-churn-' || true)
events=$(printf '%s\n' "$scrape" | awk '/^dockstat_events_total\{.*type="container".*action="destroy"/ {print $2}')

ok=1
d_rss=$(( end_rss - base_rss )); d_fds=$(( end_fds - base_fds ))
d_tasks=$(awk -v a="$base_tasks" -v b="$end_tasks" 'BEGIN {print b - a}')
[ "$stale" -eq 0 ] || ok=0
[ "$d_rss" -le 5120 ] || ok=0
[ "$d_fds" -le 5 ] || ok=0
awk -v d="$d_tasks" 'BEGIN {exit !(d <= 5)}' || ok=0

echo "| cycles | parallel | took | destroy events counted | series of removed containers | RSS after $BASELINE_AT → end | fds | tokio tasks | verdict |"
echo "|---:|---:|---:|---:|---:|---|---|---|---|"
printf '| %d | %d | %d s | %s | %d | %.1f → %.1f MiB (%+.1f) | %d → %d (%+d) | %s → %s (%+g) | %s |\n' \
  "$CYCLES" "$PAR" "$took" "${events:-0}" "$stale" \
  "$(awk -v k="$base_rss" 'BEGIN {print k/1024}')" "$(awk -v k="$end_rss" 'BEGIN {print k/1024}')" \
  "$(awk -v d="$d_rss" 'BEGIN {print d/1024}')" \
  "$base_fds" "$end_fds" "$d_fds" "$base_tasks" "$end_tasks" "$d_tasks" \
  "$([ $ok = 1 ] && echo met || echo MISSED)"
[ $ok = 1 ]
