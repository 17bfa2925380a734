#!/usr/bin/env bash
# Per-host scrape targets and shards at scale: H simulated Docker hosts × N containers
# (default 20 × 500 = 10,000), served by the simulator `examples/dockersim.rs`.
#
#   benches/shards.sh [hosts] [containers_per_host] [rounds] [windows] [window_seconds]
#   benches/shards.sh                  # 20 500 50 3 20: about 10 minutes on 2 slow cores
#   benches/shards.sh 4 50 5 1 5       # a quick smoke run
#   DOCKSTAT_BIN=/tmp/old benches/shards.sh   # another build of the exporter (A/B)
#
# Needs bash, curl, awk and python3 (free ports). Builds the release exporter and the
# simulator, starts the simulator on unix sockets, then:
#
#  1. One exporter (no sharding, monitoring.interval 5s, metrics.gzip false as over
#     loopback). Once /metrics holds every container and 20 s have passed: W windows of S
#     seconds without scrapes (CPU % of one core from /proc/PID/stat, RSS every second).
#     Then R rounds, each one scrape of the plain /metrics followed by one scrape of every
#     host's target, /metrics?target=sim/hK, sequential, with curl (time_total): p50 and
#     p99 of each kind, in the same run so that the machine's load weighs on both alike.
#  2. Three replicas (shard.total 3, one shared database) on the same simulator: the same
#     collection windows, CPU and RSS per replica.
#
# Prints Markdown tables; BENCHMARKS.md quotes them. Kills what it started and removes its
# temp dir on exit.
set -euo pipefail

HOSTS=${1:-20}
PER_HOST=${2:-500}
ROUNDS=${3:-50}
WINDOWS=${4:-3}
WINDOW_S=${5:-20}
SETTLE_S=20
READY_TIMEOUT_S=600
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet --bin dockstat-exporter --example dockersim
# DOCKSTAT_BIN: another build of the exporter (an A/B comparison against an older commit).
BIN=${DOCKSTAT_BIN:-target/release/dockstat-exporter}
SIM=target/release/examples/dockersim
WORK=$(mktemp -d /tmp/dockstat-shards.XXXXXX)
PIDS=()
SPID=
stop_exporters() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_exporters; if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " ");
  printf "%.0f", 100 * (y[1] - x[1]) / ((y[1] - x[1]) + (y[2] - x[2]))}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
pct() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$TICKS" \
  'BEGIN {printf "%.1f", 100 * (b - a) / hz / (e - s)}'; }
quantile() { sort -g | awk -v q="$1" '{a[NR]=$1} END {if (!NR) {print "n/a"; exit}
  i = int(q * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i]}'; }
median() { quantile 0.5; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f ms", s * 1000}'; }
free_port() { python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$WORK/sock"
"$SIM" --hosts "$HOSTS" --containers "$PER_HOST" --dir "$WORK/sock" >"$WORK/sim.log" 2>&1 &
SPID=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/sim.log" && break; sleep 0.1; done
grep -q ready "$WORK/sim.log" || { echo "simulator did not start:" >&2; cat "$WORK/sim.log" >&2; exit 1; }

# start_replica DIR INDEX TOTAL: starts one exporter; prints "PID PORT".
start_replica() {
  local dir=$1 index=$2 total=$3 port admin
  port=$(free_port); admin=$(free_port)
  mkdir -p "$dir"
  {
    echo "listen: { metrics: 127.0.0.1:$port, admin: 127.0.0.1:$admin }"
    echo "monitoring: { interval: 5s }"
    echo "metrics: { gzip: false }"
    echo "database: { path: $WORK/shared-$total.db }"
    echo "shard: { total: $total, index: $index, refresh: 10s }"
    echo "clients:"
    echo "  - name: sim"
    echo "    hosts:"
    for k in $(seq 0 $(( HOSTS - 1 ))); do
      echo "      - { name: h$k, address: unix://$WORK/sock/h$k.sock }"
    done
  } >"$dir/config.yaml"
  RUST_LOG=warn "$BIN" --config "$dir/config.yaml" >"$dir/exporter.log" 2>&1 &
  echo "$! $port"
}

# wait_for PORT COUNT: until the replica's /metrics holds COUNT containers.
wait_for() {
  local t0 seen
  t0=$(now)
  while :; do
    sleep 2
    seen=$(curl -sf --max-time 30 "http://127.0.0.1:$1/metrics" | grep -ac '^dockstat_container_state{' || true)
    [ "$seen" -ge "$2" ] && break
    if awk -v s="$t0" -v n="$(now)" -v m="$READY_TIMEOUT_S" 'BEGIN {exit !(n - s > m)}'; then
      echo "only $seen of $2 containers after ${READY_TIMEOUT_S}s" >&2; exit 1
    fi
  done
}

# windows PID...: CPU % and RSS of each PID over the collection windows; prints one
# "median_cpu rss_median_kib" line per PID.
windows() {
  local pids=("$@") p w t0s=() t1s=() s0 s1 m0 m1
  for p in "${pids[@]}"; do : >"$WORK/cpu-$p"; : >"$WORK/rss-$p"; done
  for w in $(seq 1 "$WINDOWS"); do
    t0s=(); for p in "${pids[@]}"; do t0s+=("$(cpu_ticks "$p")"); done
    m0=$(machine); s0=$(now)
    for _ in $(seq 1 "$WINDOW_S"); do
      for p in "${pids[@]}"; do status_kib "$p" VmRSS >>"$WORK/rss-$p"; done
      sleep 1
    done
    s1=$(now); m1=$(machine)
    local i=0
    for p in "${pids[@]}"; do
      pct "${t0s[$i]}" "$(cpu_ticks "$p")" "$s0" "$s1" >>"$WORK/cpu-$p"; echo >>"$WORK/cpu-$p"
      i=$(( i + 1 ))
    done
    echo "window $w: machine $(busy_pct "$m0" "$m1")% busy" >&2
  done
  for p in "${pids[@]}"; do
    echo "$(grep . "$WORK/cpu-$p" | median) $(median <"$WORK/rss-$p")"
  done
}

# 1. One exporter: collection, then plain /metrics vs per-host targets.
read -r PID PORT <<<"$(start_replica "$WORK/single" 0 1)"
PIDS=("$PID")
wait_for "$PORT" $(( HOSTS * PER_HOST ))
echo "single exporter: every container in /metrics; settling ${SETTLE_S} s" >&2
sleep "$SETTLE_S"
read -r CPU1 RSS1 <<<"$(windows "$PID")"
: >"$WORK/plain"; : >"$WORK/host"; : >"$WORK/host_round"
PLAIN_SIZE=0; HOST_SIZE=0
t0=$(cpu_ticks "$PID"); s0=$(now)
for r in $(seq 1 "$ROUNDS"); do
  read -r t size <<<"$(curl -sf --max-time 60 -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$PORT/metrics")"
  echo "$t" >>"$WORK/plain"; PLAIN_SIZE=$size
  rs=$(now)
  for k in $(seq 0 $(( HOSTS - 1 ))); do
    read -r t size <<<"$(curl -sf --max-time 60 -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$PORT/metrics?target=sim%2Fh$k")"
    echo "$t" >>"$WORK/host"; HOST_SIZE=$size
  done
  awk -v s="$rs" -v e="$(now)" 'BEGIN {print e - s}' >>"$WORK/host_round"
done
SCRAPE_CPU=$(pct "$t0" "$(cpu_ticks "$PID")" "$s0" "$(now)")
stop_exporters

# 2. Three replicas sharing the host set.
REPLICAS=()
for i in 0 1 2; do
  read -r PID PORT <<<"$(start_replica "$WORK/r$i" "$i" 3)"
  PIDS+=("$PID"); REPLICAS+=("$PID:$PORT")
done
# Each replica holds only its share: wait until the three together hold every container.
t0=$(now)
while :; do
  sleep 2
  total=0
  for rp in "${REPLICAS[@]}"; do
    n=$(curl -sf --max-time 30 "http://127.0.0.1:${rp#*:}/metrics" | grep -ac '^dockstat_container_state{' || true)
    total=$(( total + n ))
  done
  [ "$total" -ge $(( HOSTS * PER_HOST )) ] && break
  if awk -v s="$t0" -v n="$(now)" -v m="$READY_TIMEOUT_S" 'BEGIN {exit !(n - s > m)}'; then
    echo "3 replicas: only $total containers after ${READY_TIMEOUT_S}s" >&2; exit 1
  fi
done
echo "3 replicas: every container in their /metrics; settling ${SETTLE_S} s" >&2
sleep "$SETTLE_S"
mapfile -t PER_REPLICA < <(windows "${PIDS[@]}")
HOSTS_OF=()
for rp in "${REPLICAS[@]}"; do
  HOSTS_OF+=("$(curl -sf --max-time 30 "http://127.0.0.1:${rp#*:}/metrics?target=exporter" | awk '$1 == "dockstat_shard_hosts" {print $2}')")
done
stop_exporters

echo
echo "$HOSTS hosts × $PER_HOST containers, interval 5 s, gzip off; $ROUNDS rounds of one /metrics scrape then one scrape of each host target, sequential (curl time_total)"
echo
echo "| what | scrapes | body | p50 | p99 | max |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| plain /metrics | $ROUNDS | $(awk -v b="$PLAIN_SIZE" 'BEGIN {printf "%.1f MB", b / 1e6}') | **$(ms "$(quantile 0.5 <"$WORK/plain")")** | **$(ms "$(quantile 0.99 <"$WORK/plain")")** | $(ms "$(quantile 1 <"$WORK/plain")") |"
echo "| one host target (/metrics?target=) | $(wc -l <"$WORK/host") | $(awk -v b="$HOST_SIZE" 'BEGIN {printf "%.2f MB", b / 1e6}') | **$(ms "$(quantile 0.5 <"$WORK/host")")** | **$(ms "$(quantile 0.99 <"$WORK/host")")** | $(ms "$(quantile 1 <"$WORK/host")") |"
echo "| all $HOSTS host targets one after the other | $ROUNDS | | $(ms "$(quantile 0.5 <"$WORK/host_round")") | $(ms "$(quantile 0.99 <"$WORK/host_round")") | $(ms "$(quantile 1 <"$WORK/host_round")") |"
echo
echo "Exporter CPU over the scrape phase: ${SCRAPE_CPU} % of one core."
echo
echo "Collection only ($WINDOWS × $WINDOW_S s windows, no scrapes): CPU median % of one core, RSS median"
echo
echo "| setup | replica | hosts | CPU | RSS |"
echo "|---|---:|---:|---:|---:|"
echo "| 1 exporter | - | $HOSTS | **${CPU1} %** | **$(mib "$RSS1")** |"
for i in 0 1 2; do
  read -r c m <<<"${PER_REPLICA[$i]}"
  echo "| 3 replicas | $i | ${HOSTS_OF[$i]} | **${c} %** | **$(mib "$m")** |"
done
