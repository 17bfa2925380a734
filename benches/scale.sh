#!/usr/bin/env bash
# The exporter at scale: H simulated Docker hosts × N containers (default 20 × 500 = 10,000),
# served by the simulator `examples/dockersim.rs`; no Docker daemon, no root needed.
#
#   benches/scale.sh [hosts] [containers_per_host] [windows] [window_seconds] [scrapes]
#   benches/scale.sh                 # 20 500 5 30 200: about 12 minutes on 2 slow cores
#   SCENARIOS=healthy benches/scale.sh 2 50 2 10 20     # a quick smoke run
#   DOCKSTAT_BIN=/tmp/old SCENARIOS=healthy benches/scale.sh 20 500 3 20 0   # collection only, another build
#
# Needs bash, curl, awk and python3 (free ports). Builds the release exporter and the
# simulator, then for each scenario (SCENARIOS, default "healthy hung"):
#
#   healthy  all hosts answer;
#   hung     host h0 accepts connections and never answers (`dockersim --hang-host 0`).
#
# it starts the simulator on unix sockets and a fresh exporter (monitoring.interval 5s, free
# loopback ports, database in a temp dir), waits until /metrics reports every container of
# the healthy hosts (container_cpu_usage_seconds_total), lets it settle 20 s, then:
#
#  1. W windows of S seconds with no scrapes: exporter CPU from /proc/PID/stat
#     (utime+stime ticks over each window, % of one core), RSS from /proc/PID/status VmRSS
#     every second. One /metrics scrape between windows (outside them) reads the exporter's
#     own dockstat_collection_duration_seconds and dockstat_snapshot_age_seconds per host.
#     The simulator's CPU and the whole machine's (/proc/stat, all CPUs) are shown beside
#     it: the machine may be shared, and a busy machine inflates CPU time per operation.
#  2. K sequential scrapes of /metrics with curl (time_total: request to last byte, as a
#     scraper sees it; time_starttransfer: until the first byte; the body is streamed as
#     it is rendered, in 256 KiB chunks): p50, p99, max, body size; CPU over the
#     whole scrape phase, RSS
#     after each scrape, peak RSS (VmHWM) at the end, and the same self-metrics from every
#     scrape.
#
# Collection duration and snapshot age are taken over the healthy hosts only (h0 is left
# out in the hung scenario). Prints Markdown tables; BENCHMARKS.md quotes them. Kills
# what it started and removes its temp dir on exit.
set -euo pipefail

HOSTS=${1:-20}
PER_HOST=${2:-500}
WINDOWS=${3:-5}
WINDOW_S=${4:-30}
SCRAPES=${5:-200}
SCENARIOS=${SCENARIOS:-healthy hung}
SETTLE_S=20
READY_TIMEOUT_S=600
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet --bin dockstat-exporter --example dockersim
# DOCKSTAT_BIN: another build of the exporter (an A/B comparison against an older commit).
BIN=${DOCKSTAT_BIN:-target/release/dockstat-exporter}
SIM=target/release/examples/dockersim
WORK=$(mktemp -d /tmp/dockstat-scale.XXXXXX)
EPID=
SPID=
stop_all() {
  if [ -n "$EPID" ]; then kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; fi
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  EPID=
  SPID=
}
trap 'stop_all; rm -rf "$WORK"' EXIT

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Machine-wide "busy idle" jiffies (all CPUs), to show how loaded the shared machine was.
machine() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " ");
  printf "%.0f", 100 * (y[1] - x[1]) / ((y[1] - x[1]) + (y[2] - x[2]))}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
pct() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$TICKS" \
  'BEGIN {printf "%.1f", 100 * (b - a) / hz / (e - s)}'; }
# Percentile (nearest rank) of the numbers on stdin: quantile q in [0, 1].
quantile() { sort -g | awk -v q="$1" '{a[NR]=$1} END {if (!NR) {print "n/a"; exit}
  i = int(q * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i]}'; }
median() { quantile 0.5; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f ms", s * 1000}'; }
secs() { awk -v s="$1" 'BEGIN {printf "%.2f s", s}'; }
free_ports() { python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'; }
# The per-host self-metrics of one /metrics body: "<metric> <host> <value>" lines.
self_metrics() {
  grep -aE '^dockstat_(collection_duration_seconds|snapshot_age_seconds)\{' "$1" \
    | sed -E 's/^dockstat_([a-z_]+)\{host="([^"]+)"[^}]*\} (.*)$/\1 \2 \3/' || true
}

ROWS_COLLECT=()
ROWS_SCRAPE=()

run_scenario() {
  local scenario=$1 sim_args=() skip_host=none
  if [ "$scenario" = hung ]; then sim_args=(--hang-host 0); skip_host=h0; fi
  local expected=$(( HOSTS * PER_HOST ))
  [ "$scenario" = hung ] && expected=$(( (HOSTS - 1) * PER_HOST ))
  local dir="$WORK/$scenario"
  mkdir -p "$dir/sock"

  "$SIM" --hosts "$HOSTS" --containers "$PER_HOST" --dir "$dir/sock" "${sim_args[@]}" \
    >"$dir/sim.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do grep -q ready "$dir/sim.log" && break; sleep 0.1; done
  grep -q ready "$dir/sim.log" || { echo "simulator did not start:" >&2; cat "$dir/sim.log" >&2; exit 1; }

  local ports metrics_port admin_port
  read -r metrics_port admin_port <<<"$(free_ports)"
  {
    echo "listen:"
    echo "  metrics: 127.0.0.1:$metrics_port"
    echo "  admin: 127.0.0.1:$admin_port"
    echo "monitoring:"
    echo "  interval: 5s"
    echo "database:"
    echo "  path: $dir/dockstat.db"
    echo "clients:"
    echo "  - name: sim"
    echo "    hosts:"
    for k in $(seq 0 $(( HOSTS - 1 ))); do
      echo "      - { name: h$k, address: unix://$dir/sock/h$k.sock }"
    done
  } >"$dir/config.yaml"
  local url="http://127.0.0.1:$metrics_port/metrics"
  RUST_LOG=warn "$BIN" --config "$dir/config.yaml" >"$dir/exporter.log" 2>&1 &
  EPID=$!
  local t_start seen=0 ready_s
  t_start=$(now)
  while :; do
    sleep 2
    seen=$(curl -sf --max-time 30 "$url" | grep -ac '^container_cpu_usage_seconds_total{' || true)
    [ "$seen" -ge "$expected" ] && break
    if awk -v s="$t_start" -v n="$(now)" -v m="$READY_TIMEOUT_S" 'BEGIN {exit !(n - s > m)}'; then
      echo "$scenario: /metrics reports $seen of $expected containers after ${READY_TIMEOUT_S}s; log:" >&2
      tail -20 "$dir/exporter.log" >&2; exit 1
    fi
  done
  ready_s=$(awk -v s="$t_start" -v n="$(now)" 'BEGIN {printf "%.0f", n - s}')
  echo "$scenario: all $seen containers in /metrics after ${ready_s} s; settling ${SETTLE_S} s" >&2
  sleep "$SETTLE_S"

  # 1. Collection only.
  local cpus=() sim_cpus=() busy=() w t0 t1 s0 s1 u0 u1 m0 m1 p
  : >"$dir/rss"; : >"$dir/self_idle"
  for w in $(seq 1 "$WINDOWS"); do
    t0=$(cpu_ticks "$EPID"); u0=$(cpu_ticks "$SPID"); m0=$(machine); s0=$(now)
    for _ in $(seq 1 "$WINDOW_S"); do status_kib "$EPID" VmRSS >>"$dir/rss"; sleep 1; done
    t1=$(cpu_ticks "$EPID"); u1=$(cpu_ticks "$SPID"); m1=$(machine); s1=$(now)
    busy+=("$(busy_pct "$m0" "$m1")")
    p=$(pct "$t0" "$t1" "$s0" "$s1"); cpus+=("$p")
    sim_cpus+=("$(pct "$u0" "$u1" "$s0" "$s1")")
    echo "$scenario window $w: exporter ${p}% of one core, simulator ${sim_cpus[-1]}%, machine ${busy[-1]}% busy" >&2
    curl -sf --max-time 30 -o "$dir/body" "$url"
    self_metrics "$dir/body" >>"$dir/self_idle"
  done
  local cpu_med rss_med rss_max sim_med busy_med dur_med dur_max age_max up
  cpu_med=$(printf '%s\n' "${cpus[@]}" | median)
  sim_med=$(printf '%s\n' "${sim_cpus[@]}" | median)
  busy_med=$(printf '%s\n' "${busy[@]}" | median)
  rss_med=$(median <"$dir/rss")
  rss_max=$(sort -n "$dir/rss" | tail -1)
  healthy() { awk -v m="$1" -v skip="$skip_host" '$1 == m && $2 != skip {print $3}' "$2"; }
  dur_med=$(healthy collection_duration_seconds "$dir/self_idle" | median)
  dur_max=$(healthy collection_duration_seconds "$dir/self_idle" | quantile 1)
  age_max=$(healthy snapshot_age_seconds "$dir/self_idle" | quantile 1)
  up=$(grep -ac '^dockstat_host_up{.*} 1$' "$dir/body" || true)
  ROWS_COLLECT+=("| $scenario | $up / $HOSTS | $seen | ${ready_s} s | **${cpu_med} %** | $(printf '%s%% ' "${cpus[@]}")| $(mib "$rss_med") | $(mib "$rss_max") | $(secs "$dur_med") / $(secs "$dur_max") | $(secs "$age_max") | ${sim_med} % | ${busy_med} % |")

  # 2. Sequential scrapes.
  : >"$dir/lat"; : >"$dir/ttfb"; : >"$dir/rss_scrape"; : >"$dir/self_scrape"; : >"$dir/age_per_scrape"
  local i line a b size=0
  t0=$(cpu_ticks "$EPID"); m0=$(machine); s0=$(now)
  for i in $(seq 1 "$SCRAPES"); do
    line=$(curl -sf --max-time 60 -o "$dir/body" -w '%{time_starttransfer} %{time_total} %{size_download}' "$url")
    read -r a b size <<<"$line"
    echo "$a" >>"$dir/ttfb"; echo "$b" >>"$dir/lat"
    status_kib "$EPID" VmRSS >>"$dir/rss_scrape"
    self_metrics "$dir/body" | tee -a "$dir/self_scrape" \
      | awk -v skip="$skip_host" '$1 == "snapshot_age_seconds" && $2 != skip {if ($3 > m) m = $3} END {print m + 0}' \
      >>"$dir/age_per_scrape"
  done
  t1=$(cpu_ticks "$EPID"); m1=$(machine); s1=$(now)
  local ttfb50 p50 p99 lmax cpu_scrape rss_smax hwm age_med age_smax dur_smed dur_smax
  ttfb50=$(quantile 0.5 <"$dir/ttfb"); p50=$(quantile 0.5 <"$dir/lat"); p99=$(quantile 0.99 <"$dir/lat"); lmax=$(quantile 1 <"$dir/lat")
  cpu_scrape=$(pct "$t0" "$t1" "$s0" "$s1")
  rss_smax=$(sort -n "$dir/rss_scrape" | tail -1)
  hwm=$(status_kib "$EPID" VmHWM)
  age_med=$(median <"$dir/age_per_scrape"); age_smax=$(quantile 1 <"$dir/age_per_scrape")
  dur_smed=$(healthy collection_duration_seconds "$dir/self_scrape" | median)
  dur_smax=$(healthy collection_duration_seconds "$dir/self_scrape" | quantile 1)
  ROWS_SCRAPE+=("| $scenario | $SCRAPES | $(awk -v b="$size" 'BEGIN {printf "%.1f MB", b / 1e6}') | $(ms "$ttfb50") | **$(ms "$p50")** | **$(ms "$p99")** | $(ms "$lmax") | ${cpu_scrape} % | $(busy_pct "$m0" "$m1") % | $(mib "$rss_smax") | $(mib "$hwm") | $(secs "$dur_smed") / $(secs "$dur_smax") | $(secs "$age_med") / $(secs "$age_smax") |")
  echo "$scenario scrapes: p50 $(ms "$p50"), p99 $(ms "$p99"), peak RSS $(mib "$hwm")" >&2

  stop_all
}

for s in $SCENARIOS; do run_scenario "$s"; done

echo
echo "$HOSTS hosts × $PER_HOST containers, interval 5 s; collection: $WINDOWS × $WINDOW_S s windows, no scrapes in them"
echo
echo "| scenario | hosts up | containers in /metrics | all in /metrics after | exporter CPU (median, % of one core) | CPU per window | RSS median | RSS max | collection duration median / max | snapshot age max | simulator CPU | machine busy (all CPUs) |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS_COLLECT[@]}"
echo
echo "$SCRAPES sequential scrapes of /metrics (curl time_total); collection keeps running"
echo
echo "| scenario | scrapes | body | first byte p50 | p50 | p99 | max | exporter CPU | machine busy | RSS max (after each scrape) | peak RSS (VmHWM) | collection duration median / max | snapshot age median / max (max over healthy hosts per scrape) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS_SCRAPE[@]}"
