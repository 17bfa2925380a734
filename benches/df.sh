#!/usr/bin/env bash
# What one Docker disk usage pass (GET /system/df) costs, and whether stats collection and
# scrapes slow down while one runs (issue 15).
#
# Needs a Docker daemon holding the test image; by default daemon B of the test
# environment (`sudo scripts/test-env.sh up`), so that the passes, which hold a daemon lock,
# do not slow down the tests others run on daemon A. Creates N containers (default 100),
# each with a 1 MB file and F small files in its writable layer, and V volumes (default 20)
# of 5 MB and 100 files each, mounted by the first V containers; then:
#
#  1. times P passes of `curl /system/df` (default 10) back to back, with dockerd's CPU
#     time per pass from /proc/PID/stat;
#  2. runs two release exporters with disk usage off, one sampling through Docker's stats
#     API (stats_source: api: every stats call goes through dockerd), one reading cgroup
#     files (auto), both at interval 2s; measures W seconds (default 60) without df and W
#     seconds with /system/df passes back to back: each exporter's scrape latency (curl of
#     /metrics every 0.5 s) and stats cycle duration (dockstat_collection_duration_seconds,
#     read each second, one value per cycle);
#  3. runs one exporter with disk usage on (interval 5s) and reads its own pass duration
#     (dockstat_disk_usage_duration_seconds) over 3 passes.
#
# Prints medians and p90s and the ratio with/without. Removes its containers, volumes and
# exporters on exit.
#
#   sudo benches/df.sh [containers] [volumes] [window_seconds] [passes] [files_per_container]
#   DOCKER_SOCK=/var/run/docker.sock sudo benches/df.sh   # another daemon
set -euo pipefail

N=${1:-100}
V=${2:-20}
WINDOW_S=${3:-60}
PASSES=${4:-10}
F=${5:-200}
SOCK=${DOCKER_SOCK:-/run/dockstat-test/b/docker.sock}
IMAGE=dockstat-test/busybox:latest
LABEL=dockstat.bench=df
cd "$(dirname "$0")/.."

docker() { /usr/bin/docker -H "unix://$SOCK" "$@"; }
docker version --format '{{.Server.Version}}' >/dev/null || {
  echo "no Docker daemon on $SOCK: run scripts/test-env.sh up" >&2; exit 1; }
docker image inspect "$IMAGE" >/dev/null || {
  echo "image $IMAGE missing on $SOCK: run scripts/test-env.sh up" >&2; exit 1; }
# dockerd's pid, from its pid file beside the socket (/var/run/docker.pid for the default).
DOCKERD=$(cat "$(dirname "$SOCK")/docker.pid" 2>/dev/null || true)
[ -n "$DOCKERD" ] && [ -r "/proc/$DOCKERD/stat" ] || { echo "no dockerd pid file beside $SOCK: dockerd CPU not measured" >&2; DOCKERD=; }

BIN=${DOCKSTAT_BIN:-target/release/dockstat-exporter}
[ -n "${DOCKSTAT_BIN:-}" ] || cargo build --release --locked --quiet
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${DFLOOP:-}" ] && kill "$DFLOOP" 2>/dev/null || true
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$SOCK" rm -f >/dev/null
  docker volume ls -q --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$SOCK" volume rm -f >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_old() {
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$SOCK" rm -f >/dev/null
  docker volume ls -q --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$SOCK" volume rm -f >/dev/null
}
cleanup_old

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
p90() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else {i=int(NR*0.9+0.999); if (i>NR) i=NR; print a[i]}}'; }

echo "setting up $N containers ($F files + 1 MB each) and $V volumes (5 MB, 100 files) on $SOCK ..." >&2
for i in $(seq 1 "$V"); do
  docker volume create --label "$LABEL" "bench-df-vol-$i" >/dev/null
done
for i in $(seq 1 "$N"); do
  mount=()
  [ "$i" -le "$V" ] && mount=(-v "bench-df-vol-$i:/vol")
  setup="dd if=/dev/urandom of=/blob bs=1M count=1 2>/dev/null; mkdir /d; i=0; while [ \$i -lt $F ]; do echo \$i > /d/f\$i; i=\$((i+1)); done"
  [ "$i" -le "$V" ] && setup="$setup; dd if=/dev/urandom of=/vol/blob bs=1M count=5 2>/dev/null; mkdir -p /vol/d; i=0; while [ \$i -lt 100 ]; do echo \$i > /vol/d/f\$i; i=\$((i+1)); done"
  docker run -d --label "$LABEL" --name "bench-df-$i" "${mount[@]}" "$IMAGE" \
    sh -c "$setup; touch /ready; sleep 86400" >/dev/null
done
for i in $(seq 1 "$N"); do
  until docker exec "bench-df-$i" test -f /ready 2>/dev/null; do sleep 0.2; done
done

TICKS=$(getconf CLK_TCK)
dockerd_ticks() { [ -n "$DOCKERD" ] && awk '{print $14 + $15}' "/proc/$DOCKERD/stat" || echo 0; }
df_once() { curl -s -o /dev/null -w '%{time_total}\n' --max-time 600 --unix-socket "$SOCK" http://docker/v1.41/system/df; }

# 1. One pass, P times.
durs="$WORK/df"; : > "$durs"; cpu="$WORK/dfcpu"; : > "$cpu"
for _ in $(seq 1 "$PASSES"); do
  t0=$(dockerd_ticks)
  df_once >> "$durs"
  t1=$(dockerd_ticks)
  awk -v a="$t0" -v b="$t1" -v hz="$TICKS" 'BEGIN {printf "%.3f\n", (b - a) / hz}' >> "$cpu"
done
bytes=$(curl -s --max-time 600 --unix-socket "$SOCK" http://docker/v1.41/system/df | wc -c)

# 2. Exporters with disk usage off; scrapes and cycles without, then with df passes.
start_exporter() { # name stats_source disk_usage interval; sets PORT
  local port=$(( 20000 + RANDOM % 10000 ))
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/config.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$port
  admin: 127.0.0.1:$(( port + 1 ))
monitoring:
  interval: 2s
  stats_source: $2
  disk_usage: $3
  disk_usage_interval: $4
database:
  path: $WORK/$1/dockstat.db
clients:
  - name: bench
    hosts:
      - name: b
        address: unix://$SOCK
YAML
  RUST_LOG=warn "$BIN" --config "$WORK/$1/config.yaml" >/dev/null 2>"$WORK/$1/log" &
  PIDS+=($!)
  PORT=$port
}
start_exporter api api false 1h; API_PORT=$PORT
start_exporter cgroup auto false 1h; CG_PORT=$PORT
wait_ready() {
  for _ in $(seq 1 120); do
    n=$(curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" | grep -c '^container_cpu_usage_seconds_total{.*name="bench-df-' || true)
    [ "$n" -ge "$N" ] && return 0
    sleep 1
  done
  echo "exporter on $1 never reported $N containers" >&2; exit 1
}
wait_ready "$API_PORT"; wait_ready "$CG_PORT"

measure() { # label -> files $WORK/<label>-{scrape,cycle}-{api,cgroup}
  local end=$(( $(date +%s) + WINDOW_S )) tick=0
  for src in api cgroup; do : > "$WORK/$1-scrape-$src"; : > "$WORK/$1-cycle-$src"; done
  local last_api="" last_cg=""
  while [ "$(date +%s)" -lt "$end" ]; do
    for src in api cgroup; do
      port=$API_PORT; [ "$src" = cgroup ] && port=$CG_PORT
      out=$(curl -s -o "$WORK/body" -w '%{time_total}' --max-time 30 "http://127.0.0.1:$port/metrics")
      echo "$out" >> "$WORK/$1-scrape-$src"
      c=$(grep '^dockstat_collection_duration_seconds{' "$WORK/body" | awk '{print $2}')
      # One value per cycle: keep it when it changed.
      if [ "$src" = api ]; then
        [ -n "$c" ] && [ "$c" != "$last_api" ] && echo "$c" >> "$WORK/$1-cycle-$src"; last_api=$c
      else
        [ -n "$c" ] && [ "$c" != "$last_cg" ] && echo "$c" >> "$WORK/$1-cycle-$src"; last_cg=$c
      fi
    done
    sleep 0.5
  done
}
measure quiet
( while :; do df_once >/dev/null; done ) &
DFLOOP=$!
measure df
kill "$DFLOOP" 2>/dev/null || true; wait "$DFLOOP" 2>/dev/null || true; DFLOOP=

# 3. The exporter's own pass.
start_exporter own auto true 5s; OWN_PORT=$PORT
own="$WORK/own-passes"; : > "$own"; last=""
for _ in $(seq 1 120); do
  v=$(curl -sf --max-time 10 "http://127.0.0.1:$OWN_PORT/metrics" | awk '/^dockstat_disk_usage_duration_seconds\{/ {print $2}' || true)
  [ -n "$v" ] && [ "$v" != "$last" ] && echo "$v" >> "$own" && last=$v
  [ "$(wc -l < "$own")" -ge 3 ] && break
  sleep 1
done

ms() { awk '{printf "%.1f\n", $1 * 1000}'; }
echo
echo "host: $N containers, $V volumes on $SOCK; /system/df answer $bytes bytes; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| what | median | p90 | n |"
echo "|---|---:|---:|---:|"
echo "| GET /system/df, one pass (ms) | $(ms < "$durs" | median) | $(ms < "$durs" | p90) | $(wc -l < "$durs") |"
echo "| dockerd CPU per pass (s) | $(median < "$cpu") | $(p90 < "$cpu") | $(wc -l < "$cpu") |"
echo "| the exporter's own pass (ms) | $(ms < "$own" | median) | $(ms < "$own" | p90) | $(wc -l < "$own") |"
for src in api cgroup; do
  for what in scrape cycle; do
    for phase in quiet df; do
      f="$WORK/$phase-$what-$src"
      echo "| $what ($src source), $phase (ms) | $(ms < "$f" | median) | $(ms < "$f" | p90) | $(wc -l < "$f") |"
    done
  done
done
echo
for src in api cgroup; do
  for what in scrape cycle; do
    q=$(ms < "$WORK/quiet-$what-$src" | median); d=$(ms < "$WORK/df-$what-$src" | median)
    awk -v q="$q" -v d="$d" -v w="$what ($src)" 'BEGIN {printf "ratio with/without df passes, %s median: %.2f\n", w, (q > 0) ? d / q : 0}'
  done
done
