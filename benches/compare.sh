#!/usr/bin/env bash
# Side by side on one Docker daemon, N running containers, one run: the exporter with the
# `api` stats source, the exporter with the `cgroup` stats source, Glances 3.x (Docker
# plugin only, Prometheus export) and a `docker stats --no-stream` shell loop, all at 5 s.
#
# Needs a Docker daemon on /var/run/docker.sock holding the test image
# (`sudo scripts/test-env.sh up` provides both) and Glances from Debian
# (`apt-get install -y glances python3-prometheus-client python3-docker`).
#
# Starts N containers (default 100: BUSY of them, default 3, wake up every second to do a
# little shell work, the rest `sleep`), then runs ROUNDS rounds. Each round is an idle
# window (no contender running: dockerd's baseline) followed by one window per contender,
# one after another, only that contender running: start it, warm it up (WARMUP_S, 20 s),
# check that it sees all N containers (it must, or the script fails), measure one window
# (WINDOW_S, 60 s), stop it. One more idle window closes the run, so the baseline is
# taken before, between and after the contenders. In each window:
#   - the contender's CPU: utime+stime+cutime+cstime of its process tree (the docker CLI
#     loop's `docker` processes included; that loop's windows start and end between two
#     `docker stats` calls, so each window holds whole calls), % of one core;
#   - dockerd's CPU, and containerd's plus the N containers' shims' (the API's stats go
#     through containerd and each container's shim), from /proc/PID/stat (utime+stime);
#   - the contender's RSS (VmRSS summed over its process tree) every second;
#   - every 15 s, a scrape of its Prometheus endpoint (as Prometheus would), counting the
#     containers it reports (for the docker loop: its last output).
# Increases are over the median of the idle windows. Prints Markdown tables (medians of
# the windows) and keeps the raw windows in a TSV. Removes its containers on exit.
#
#   sudo benches/compare.sh [containers] [rounds] [window_seconds]
#   env: CONTENDERS="api cgroup glances dockercli"  BUSY=3  WARMUP_S=20  RESULTS=file.tsv
set -euo pipefail

N=${1:-100}
ROUNDS=${2:-3}
WINDOW_S=${3:-60}
WARMUP_S=${WARMUP_S:-20}
BUSY=${BUSY:-3}
CONTENDERS=${CONTENDERS:-api cgroup glances dockercli}
SCRAPE_S=15
SETTLE_S=5
IMAGE=dockstat-test/busybox:latest
LABEL=dockstat.bench=compare
SOCK=/var/run/docker.sock
RESULTS=${RESULTS:-/tmp/dockstat-compare-$(date +%Y%m%dT%H%M%S).tsv}
cd "$(dirname "$0")/.."

die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*" >&2; }
docker() { DOCKER_HOST=unix://$SOCK /usr/bin/docker "$@"; }

docker version --format '{{.Server.Version}}' >/dev/null ||
  die "no Docker daemon on $SOCK: run scripts/test-env.sh up"
docker image inspect "$IMAGE" >/dev/null || die "image $IMAGE missing: run scripts/test-env.sh up"
case " $CONTENDERS " in *" glances "*)
  command -v glances >/dev/null ||
    die "glances missing: apt-get install -y glances python3-prometheus-client python3-docker"
  /usr/bin/python3 -c 'import prometheus_client, docker' ||
    die "python3-prometheus-client / python3-docker missing" ;;
esac
[ "$BUSY" -le "$N" ] || die "BUSY ($BUSY) > containers ($N)"

DOCKERD=$(cat /var/run/docker.pid 2>/dev/null || true)
[ -n "$DOCKERD" ] && [ "$(cat "/proc/$DOCKERD/comm" 2>/dev/null)" = dockerd ] ||
  die "cannot find the dockerd of $SOCK through /var/run/docker.pid"
CONTAINERD=$(ps --ppid "$DOCKERD" -o pid=,comm= | awk '$2 == "containerd" {print $1; exit}')
[ -n "$CONTAINERD" ] || die "cannot find the containerd started by dockerd $DOCKERD"

cargo build --release --locked --quiet
BIN=$PWD/target/release/dockstat-exporter
WORK=$(mktemp -d)
PID=

tree_pids() {
  ps -e -o pid=,ppid= | awk -v r="$1" '{p[$1] = $2} END {
    s[r] = 1; do { ch = 0; for (x in p) if (!(x in s) && (p[x] in s)) { s[x] = 1; ch = 1 } } while (ch)
    for (x in s) print x }'
}
stop_contender() {
  [ -n "$PID" ] || return 0
  local rest p
  rest=$(tree_pids "$PID" | grep -vx "$PID" || true)
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  for p in $rest; do kill -TERM "$p" 2>/dev/null || true; done
  PID=
}
remove_containers() {
  docker ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$SOCK" rm -f >/dev/null
}
cleanup() {
  stop_contender
  remove_containers || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The exporter configurations; the cgroup one must be accepted by this build.
PORT_BASE=$(( 20000 + RANDOM % 10000 ))
for src in api cgroup; do
  cat > "$WORK/$src.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$((PORT_BASE + ${#src}))
  admin: 127.0.0.1:$((PORT_BASE + 20 + ${#src}))
monitoring:
  interval: 5s
  stats_source: $src
database:
  path: $WORK/$src.db
clients:
  - name: bench
    hosts:
      - name: a
        address: unix://$SOCK
YAML
  case " $CONTENDERS " in *" $src "*)
    "$BIN" check-config --config "$WORK/$src.yaml" >/dev/null ||
      die "this build rejects stats_source: $src (exit $?)" ;;
  esac
done
GLANCES_PORT=$((PORT_BASE + 10))
cat > "$WORK/glances.conf" <<CONF
[global]
check_update=false
[docker]
disable=False
all=False
[prometheus]
host=127.0.0.1
port=$GLANCES_PORT
prefix=glances
labels=src:glances
CONF

# ---------------------------------------------------------------------------- containers
remove_containers
log "starting $N containers ($BUSY busy)"
BUSY_CMD='while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1; done'
for i in $(seq 1 "$N"); do
  if [ "$i" -le "$BUSY" ]; then
    docker run -d --label "$LABEL" --name "bench-cmp-busy-$i" "$IMAGE" sh -c "$BUSY_CMD" >/dev/null &
  else
    docker run -d --label "$LABEL" --name "bench-cmp-$((i - BUSY))" "$IMAGE" sleep 86400 >/dev/null &
  fi
  [ $((i % 4)) -ne 0 ] || wait
done
wait
running=$(docker ps -q --filter "label=$LABEL" --filter status=running | wc -l)
[ "$running" -eq "$N" ] || die "$running of $N containers running"
# Each container's shim: the parent of its init process.
SHIMS=()
for p in $(docker ps -q --filter "label=$LABEL" | xargs /usr/bin/docker -H "unix://$SOCK" inspect -f '{{.State.Pid}}'); do
  SHIMS+=("$(awk '{print $4}' "/proc/$p/stat")")
done
mapfile -t SHIMS < <(printf '%s\n' "${SHIMS[@]}" | sort -u)
log "dockerd $DOCKERD, containerd $CONTAINERD, ${#SHIMS[@]} shims"
sleep 10

# ---------------------------------------------------------------------------- measuring
HZ=$(getconf CLK_TCK)
# utime+stime+cutime+cstime of one process, in ticks (0 once it is gone): its own work and
# that of its children it has reaped (the docker loop's `docker stats` calls).
ticks() {
  local s a
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  read -r -a a <<< "${s##*) }"
  echo $(( a[11] + a[12] + a[13] + a[14] ))
}
# utime+stime only, for the daemons: dockerd's children (iptables and the like when other
# containers start) and containerd's (shim start-up, runc) have nothing to do with stats.
own_ticks() {
  local s a
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  read -r -a a <<< "${s##*) }"
  echo $(( a[11] + a[12] ))
}
tree_ticks() { local t=0 p; for p in $(tree_pids "$1"); do t=$((t + $(ticks "$p"))); done; echo $t; }
tree_rss_kib() { ps -o rss= -p "$(tree_pids "$1" | paste -sd,)" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
shim_ticks() { local t=0 p; for p in "${SHIMS[@]}"; do t=$((t + $(own_ticks "$p"))); done; echo $t; }
host_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
now() { date +%s.%N; }
pct() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$HZ" 'BEGIN {printf "%.3f", 100 * (b - a) / hz / (e - s)}'; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# How many of our containers the running contender reports right now.
seen() {
  local m
  case $1 in
    api|cgroup)
      m=$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics") || { echo 0; return; }
      grep -c '^container_cpu_usage_seconds_total{.*name="bench-cmp-' <<< "$m" || true ;;
    glances)
      m=$(curl -sf --max-time 5 "http://127.0.0.1:$GLANCES_PORT/metrics") || { echo 0; return; }
      grep -c '^glances_docker_bench_cmp_[a-z0-9_]*_cpu_percent{' <<< "$m" || true ;;
    dockercli)
      grep -c '  bench-cmp-' "$WORK/dockerstats.out" 2>/dev/null || echo 0 ;;
  esac
}
# Stricter checks once warm: the right stats source, fresh figures for the busy containers.
verify() {
  local c=$1 m n
  n=$(seen "$c")
  [ "$n" -eq "$N" ] || { echo "$c reports $n of $N containers"; return 1; }
  case $c in
    api|cgroup)
      m=$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics")
      n=$(awk -v s="source=\"$c\"" 'index($0, "dockstat_stats_source_containers{") == 1 && index($0, s) {print $2}' <<< "$m")
      [ "${n:-0}" -ge "$N" ] || { echo "$c: dockstat_stats_source_containers{source=\"$c\"} is ${n:-missing}, want >= $N"; return 1; } ;;
    glances)
      m=$(curl -sf --max-time 5 "http://127.0.0.1:$GLANCES_PORT/metrics")
      n=$(awk '/^glances_docker_bench_cmp_busy_[0-9]+_cpu_percent\{/ && $2 > 0' <<< "$m" | wc -l)
      [ "$n" -eq "$BUSY" ] || { echo "glances: $n of $BUSY busy containers with cpu_percent > 0"; return 1; }
      grep -v '^#' <<< "$m" | grep '^glances_' | grep -v '^glances_docker_' > "$WORK/glances.other" || true ;;
    dockercli)
      n=$(awk '$2 ~ /^bench-cmp-busy-/ && $3 + 0 > 0' "$WORK/dockerstats.out" | wc -l)
      [ "$n" -eq "$BUSY" ] || { echo "docker stats: $n of $BUSY busy containers with CPU % > 0"; return 1; } ;;
  esac
}

start_contender() {
  local c=$1
  case $c in
    api|cgroup)
      PORT=$((PORT_BASE + ${#c}))
      rm -f "$WORK/$c.db"*
      RUST_LOG=warn "$BIN" --config "$WORK/$c.yaml" 2>"$WORK/$c.log" &
      PID=$! ;;
    glances)
      glances -C "$WORK/glances.conf" -q --export prometheus -t 5 \
        --disable-plugin all --enable-plugin docker --disable-history --disable-check-update \
        >"$WORK/glances.log" 2>&1 &
      PID=$! ;;
    dockercli)
      : > "$WORK/dockerstats.iter"
      # One `docker stats --no-stream` every 5 s (the next starts 5 s after the previous
      # started, or right after it if it took longer).
      bash -c '
        while :; do
          t0=$EPOCHREALTIME
          DOCKER_HOST=unix://'"$SOCK"' docker stats --no-stream > "$0.tmp" && mv "$0.tmp" "$0"
          echo x >> "$1"
          rest=$(awk -v a="$t0" -v b="$EPOCHREALTIME" "BEGIN {r = 5 - (b - a); if (r > 0) print r; else print 0}")
          sleep "$rest"
        done' "$WORK/dockerstats.out" "$WORK/dockerstats.iter" 2>"$WORK/dockercli.log" &
      PID=$! ;;
    *) die "unknown contender $c" ;;
  esac
}
# The docker loop's windows start and end while it sleeps, not in a `docker stats` call.
quiesce() {
  [ "$1" = dockercli ] || return 0
  local i
  for i in $(seq 1 100); do
    ps -o comm= --ppid "$PID" | grep -qx docker || return 0
    sleep 0.1
  done
}

# measure ROUND NAME: one window of the running contender (or none: NAME idle).
measure() {
  local round=$1 c=$2 t0 t1 d0 d1 k0 k1 s0 s1 h0 h1 e0 e1 it0=0 it1=0 rss rss_max=0 seen_min=$N n i
  local rssf="$WORK/rss.$round.$c"; : > "$rssf"
  quiesce "$c"
  [ "$c" = dockercli ] && it0=$(wc -l < "$WORK/dockerstats.iter")
  e0=$(now); t0=0; [ -n "$PID" ] && t0=$(tree_ticks "$PID")
  d0=$(own_ticks "$DOCKERD"); k0=$(own_ticks "$CONTAINERD"); s0=$(shim_ticks); h0=$(host_busy)
  i=0
  while awk -v a="$e0" -v b="$(now)" -v w="$WINDOW_S" 'BEGIN {exit !(b - a < w)}'; do
    if [ -n "$PID" ]; then
      rss=$(tree_rss_kib "$PID"); echo "$rss" >> "$rssf"
      [ "$rss" -gt "$rss_max" ] && rss_max=$rss
      if [ $((i % SCRAPE_S)) -eq $((SCRAPE_S - 1)) ]; then
        n=$(seen "$c"); [ "$n" -lt "$seen_min" ] && seen_min=$n
      fi
    fi
    i=$((i + 1)); sleep 1
  done
  quiesce "$c"
  e1=$(now); t1=0; [ -n "$PID" ] && t1=$(tree_ticks "$PID")
  d1=$(own_ticks "$DOCKERD"); k1=$(own_ticks "$CONTAINERD"); s1=$(shim_ticks); h1=$(host_busy)
  [ "$c" = dockercli ] && it1=$(wc -l < "$WORK/dockerstats.iter")
  local ours foreign
  ours=$(docker ps -q --filter "label=$LABEL" --filter status=running | wc -l)
  [ "$ours" -eq "$N" ] && [ "$s1" -ge "$s0" ] && [ "$d1" -gt 0 ] ||
    die "window $round $c: $ours of $N containers running, or a shim or dockerd went away"
  foreign=$(( $(docker ps -q | wc -l) - ours ))
  [ -n "$PID" ] || seen_min=-
  printf '%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$c" \
    "$(awk -v a="$e0" -v b="$e1" 'BEGIN {print b - a}')" \
    "$(pct "$t0" "$t1" "$e0" "$e1")" "$(pct "$d0" "$d1" "$e0" "$e1")" \
    "$(pct "$k0" "$k1" "$e0" "$e1")" "$(pct "$s0" "$s1" "$e0" "$e1")" \
    "$rss_max" "$(median < "$rssf")" "$seen_min" "$(pct "$h0" "$h1" "$e0" "$e1")" \
    "$foreign" "$((it1 - it0))" | tee -a "$RESULTS" >&2
}

run_contender() {
  local round=$1 c=$2 msg waited=0
  start_contender "$c"
  sleep "$WARMUP_S"
  until msg=$(verify "$c"); do
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/$c.log" >&2 || true; die "$c exited: $msg"; }
    if [ "$waited" -ge 40 ]; then
      for f in "$WORK/$c.log" "$WORK/glances.log"; do [ -s "$f" ] && tail -20 "$f" >&2; done
      die "$c does not see the containers after $((WARMUP_S + waited)) s: $msg"
    fi
    sleep 5; waited=$((waited + 5))
  done
  measure "$round" "$c"
  msg=$(verify "$c") || die "$c after its window: $msg"
  stop_contender
  sleep "$SETTLE_S"
}

printf 'round\tcontender\tseconds\town_pct\tdockerd_pct\tcontainerd_pct\tshims_pct\trss_max_kib\trss_median_kib\tseen_min\thost_pct\tforeign_containers\titerations\n' > "$RESULTS"
log "raw windows: $RESULTS"
head -1 "$RESULTS" >&2
for r in $(seq 1 "$ROUNDS"); do
  measure "$r" idle
  for c in $CONTENDERS; do run_contender "$r" "$c"; done
done
measure "$((ROUNDS + 1))" idle

# ---------------------------------------------------------------------------- report
echo
echo "$N containers ($BUSY busy), $ROUNDS rounds, windows of $WINDOW_S s after a ${WARMUP_S} s warm-up, 5 s refresh everywhere; medians of the windows."
if [ -s "$WORK/glances.other" ]; then
  echo "Glances: $(wc -l < "$WORK/glances.other") series outside glances_docker_* on its endpoint, e.g. $(head -1 "$WORK/glances.other")"
elif [ -e "$WORK/glances.other" ]; then
  echo "Glances: no series outside glances_docker_* on its endpoint (only the Docker plugin exported)."
fi
if [ -e "$WORK/cgroup.log" ]; then
  echo "cgroup source: $(grep -c 'using the API' "$WORK/cgroup.log" || true) warnings about containers read through the API in its last run."
fi
echo
awk -F'\t' -v contenders="$CONTENDERS" '
  function med(arr, n,   i, j, t, b) {
    for (i = 1; i <= n; i++) b[i] = arr[i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
    return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
  }
  NR == 1 { next }
  $2 == "idle" { ni++; idd[ni] = $5; idk[ni] = $6 + $7; idh[ni] = $11; idlist = idlist sprintf(" %.2f", $5); next }
  { k = $2; n[k]++; own[k, n[k]] = $4; dd[k, n[k]] = $5; dk[k, n[k]] = $6 + $7; host[k, n[k]] = $11
    if ($8 > rss[k]) rss[k] = $8
    if (!(k in seen) || $10 < seen[k]) seen[k] = $10
    it[k] += $13; secs[k] += $3 }
  END {
    base = med(idd, ni); kbase = med(idk, ni)
    printf "Idle baseline (no contender, %d windows): dockerd %.2f %% (windows:%s), containerd + shims %.2f %%, whole machine %.1f %% of one core.\n\n", ni, base, idlist, kbase, med(idh, ni)
    split(contenders, cs, " ")
    for (x in cs) { k = cs[x]
      for (i = 1; i <= n[k]; i++) { a[i] = own[k, i]; b[i] = dd[k, i] - base; t[i] = a[i] + b[i]; q[i] = dk[k, i] - kbase; tt[i] = t[i] + q[i] }
      mo[k] = med(a, n[k]); mi[k] = med(b, n[k]); mt[k] = med(t, n[k]); mq[k] = med(q, n[k]); mtt[k] = med(tt, n[k]) }
    g = ("glances" in mt) ? mt["glances"] : 0; gg = ("glances" in mtt) ? mtt["glances"] : 0
    name["api"] = "exporter, `api` source"; name["cgroup"] = "exporter, `cgroup` source"
    name["glances"] = "Glances, Docker plugin"; name["dockercli"] = "`docker stats --no-stream` every 5 s"
    print "| contender | own CPU % | dockerd increase % | total | ratio to Glances | RSS (max) | containerd + shims increase % | total with containerd | its ratio to Glances | containers seen |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (x = 1; x in cs; x++) { k = cs[x]
      printf "| %s | %.2f | %.2f | %.2f | %s | %.1f MiB | %.2f | %.2f | %s | %s |\n", name[k], mo[k], mi[k], mt[k],
        (g > 0) ? sprintf("%.3f", mt[k] / g) : "-", rss[k] / 1024, mq[k], mtt[k], (gg > 0) ? sprintf("%.3f", mtt[k] / gg) : "-", seen[k] }
    if ("dockercli" in n) printf "\nThe docker loop ran %d `docker stats --no-stream` calls in %.0f s of windows (one per %.2f s).\n", it["dockercli"], secs["dockercli"], it["dockercli"] ? secs["dockercli"] / it["dockercli"] : 0
  }' "$RESULTS"
echo
echo "Raw windows: $RESULTS"
