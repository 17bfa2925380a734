#!/usr/bin/env bash
# Event delivery latency: from Docker's event time to the moment an SSE subscriber of the
# release exporter receives it, while the exporter collects N running containers and a
# load generator does create/start/stop/remove cycles (4 events each) at a steady rate.
# Prints p50/p99/max over every container event received; BENCHMARKS.md quotes it.
#
#   sudo benches/events.sh [running containers (50)] [ops per minute (200)] [seconds (180)]
#
# STRESS=1 keeps every core busy with stress-ng meanwhile (Debian's package), the loaded
# machine the target is stated for.
#
# Needs daemon A with the test image (`sudo scripts/test-env.sh up`). Both run on this
# machine, so Docker's event clock and the subscriber's are the same clock.
set -euo pipefail

N=${1:-50}
OPS=${2:-200}
SECONDS_RUN=${3:-180}
IMAGE=dockstat-test/busybox:latest
LABEL=dockstat.bench=events
TOKEN=bench-events-token-0123456789
cd "$(dirname "$0")/.."

docker() { DOCKER_HOST=unix:///var/run/docker.sock /usr/bin/docker "$@"; }
docker version --format '{{.Server.Version}}' >/dev/null || {
  echo "no Docker daemon on /var/run/docker.sock: run scripts/test-env.sh up" >&2; exit 1; }

# DOCKSTAT_BIN: another build to measure (an older commit, for a before/after pair).
if [ -z "${DOCKSTAT_BIN:-}" ]; then cargo build --release --locked --quiet; fi
BIN=${DOCKSTAT_BIN:-target/release/dockstat-exporter}
WORK=$(mktemp -d)
PID=; READER=; LOAD=; STRESS_PID=
cleanup() {
  for p in $LOAD $READER $STRESS_PID; do kill "$p" 2>/dev/null || true; done
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H unix:///var/run/docker.sock rm -f >/dev/null
for i in $(seq 1 "$N"); do
  docker run -d --label "$LABEL" --name "bench-events-run-$i" "$IMAGE" sleep 86400 >/dev/null
done

PORT=$(( 20000 + RANDOM % 10000 ))
ADMIN=$(( PORT + 1 ))
cat > "$WORK/config.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$PORT
  admin: 127.0.0.1:$ADMIN
api:
  tokens:
    - { name: bench, role: viewer, token: "$TOKEN" }
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
until curl -sf --max-time 2 "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done

# The subscriber: records (receipt time - event time) of every container event.
python3 - "$ADMIN" "$TOKEN" "$WORK/latencies" <<'PY' &
import http.client, json, sys, time
port, token, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("GET", "/api/v1/streams/container_events",
          headers={"Authorization": "Bearer " + token, "Accept": "text/event-stream"})
r = c.getresponse()
assert r.status == 200, r.status
with open(out, "w", buffering=1) as f:
    while True:
        line = r.fp.readline()
        if not line:
            break
        now = time.time()
        if line.startswith(b"data:"):
            m = json.loads(line[5:])
            if m.get("kind") == "event" and "bench-events-cyc" in m.get("attributes", {}).get("name", ""):
                f.write(f"{now - m['time']:.6f} {m['action']}\n")
PY
READER=$!
sleep 1

if [ "${STRESS:-0}" = 1 ]; then
  command -v stress-ng >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
  stress-ng --cpu "$(nproc)" --cpu-load 100 --timeout 0 --quiet &
  STRESS_PID=$!
fi

# The load: one create/start/stop/remove cycle (4 operations) every 4*60/OPS seconds.
PERIOD=$(awk -v o="$OPS" 'BEGIN {printf "%.3f", 4 * 60 / o}')
(
  i=0
  while true; do
    i=$((i + 1))
    t0=$(date +%s.%N)
    id=$(docker create --label "$LABEL" --name "bench-events-cyc-$i" "$IMAGE" sleep 3600)
    docker start "$id" >/dev/null
    docker stop -t 0 "$id" >/dev/null
    docker rm "$id" >/dev/null
    left=$(awk -v a="$t0" -v b="$(date +%s.%N)" -v p="$PERIOD" 'BEGIN {d = p - (b - a); print (d > 0) ? d : 0}')
    sleep "$left"
  done
) &
LOAD=$!
sleep "$SECONDS_RUN"
kill "$LOAD"; LOAD=
sleep 2

sort -n "$WORK/latencies" | awk -v n="$N" -v ops="$OPS" -v secs="$SECONDS_RUN" \
    -v stress="$([ "${STRESS:-0}" = 1 ] && echo "all (stress-ng)" || echo no)" '
  { v[NR] = $1 * 1000 }
  END {
    if (NR == 0) { print "no events received" > "/dev/stderr"; exit 1 }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
    print "| running containers | lifecycle ops/min | cores loaded | events | p50 | p99 | max |"
    print "|---:|---:|---|---:|---:|---:|---:|"
    printf "| %d | %d | %s | %d | %.1f ms | %.1f ms | %.1f ms |\n", n, ops, stress, NR, v[i50], v[i99], v[NR]
  }'
