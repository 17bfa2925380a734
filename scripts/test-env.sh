#!/usr/bin/env bash
# Prepare (and tear down) real Docker daemons for dockstat integration tests.
#
# Daemons:
#   A  default daemon on /var/run/docker.sock (reused if already running; only
#      stopped by `down` when this script started it)
#   B  second dockerd: unix:///run/dockstat-test/b/docker.sock + tcp://127.0.0.1:23750
#      (plain HTTP), bridge br-dstb 172.31.250.1/24, --iptables=false
#   C  TLS dockerd:    unix:///run/dockstat-test/c/docker.sock + tcp://127.0.0.1:23760
#      (--tlsverify), bridge br-dstc 172.31.251.1/24, --iptables=false
#
# Usage: scripts/test-env.sh up | down [--purge] | status
#                            | stop-b | start-b | stop-c | start-c
#
# After `up`, `source /run/dockstat-test/env` exports DOCKSTAT_TEST_* variables.
# Must run as root (Debian 12, docker.io 20.10).
set -euo pipefail

STATE_DIR=/run/dockstat-test
DATA_DIR=/var/lib/dockstat-test
CERT_DIR=$STATE_DIR/certs
ENV_FILE=$STATE_DIR/env
LOCK_FILE=/run/dockstat-test.lock   # outside STATE_DIR so `down --purge` can't pull it away
A_SOCK=/var/run/docker.sock
A_PIDFILE=/var/run/docker.pid
A_EXEC=/var/run/docker
A_MARKER=$STATE_DIR/a.started-by-test-env
IMAGE=dockstat-test/busybox:latest
B_TCP=127.0.0.1:23750
C_TLS=127.0.0.1:23760
START_TIMEOUT=60   # seconds to wait for a daemon's _ping
STOP_TIMEOUT=30    # seconds to wait for a daemon to exit after SIGTERM
LOCK_TIMEOUT=300

# dockerd needs containerd, runc, docker-init, docker-proxy from the sbin dirs.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# Never let the caller's environment redirect our docker client / curl.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export NO_PROXY='*' no_proxy='*'

log()  { printf '[test-env] %s\n' "$*" >&2; }
warn() { printf '[test-env] WARNING: %s\n' "$*" >&2; }
die()  { printf '[test-env] ERROR: %s\n' "$*" >&2; exit 1; }

# Prefer Debian's client (matches the 20.10 daemon); /usr/local/bin/docker may be newer.
if [[ -x /usr/bin/docker ]]; then
    DOCKER=/usr/bin/docker
else
    DOCKER=$(command -v docker 2>/dev/null || true)
fi
DOCKERD=$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)

# ----------------------------------------------------------------------------
# Per-daemon parameters (n = a | b | c)
# ----------------------------------------------------------------------------
d_sock()    { if [[ $1 == a ]]; then echo "$A_SOCK"; else echo "$STATE_DIR/$1/docker.sock"; fi; }
d_pidfile() { if [[ $1 == a ]]; then echo "$A_PIDFILE"; else echo "$STATE_DIR/$1/docker.pid"; fi; }
d_exec()    { if [[ $1 == a ]]; then echo "$A_EXEC"; else echo "$STATE_DIR/$1/exec"; fi; }
d_data()    { echo "$DATA_DIR/$1"; }
d_log()     { echo "$STATE_DIR/$1.log"; }
d_host()    { echo "unix://$(d_sock "$1")"; }
d_bridge()  { case $1 in b) echo br-dstb ;; c) echo br-dstc ;; esac; }
d_cidr()    { case $1 in b) echo 172.31.250.1/24 ;; c) echo 172.31.251.1/24 ;; esac; }
d_upper()   { tr '[:lower:]' '[:upper:]' <<<"$1"; }

d_args() {
    local n=$1
    local args=(
        --config-file "$STATE_DIR/$n/daemon.json"
        --data-root "$(d_data "$n")"
        --exec-root "$(d_exec "$n")"
        --pidfile "$(d_pidfile "$n")"
        -H "$(d_host "$n")"
        --bridge="$(d_bridge "$n")"
        --iptables=false
    )
    case $n in
        b) args+=(-H "tcp://$B_TCP") ;;
        c) args+=(-H "tcp://$C_TLS" --tlsverify
                  --tlscacert "$CERT_DIR/ca.pem"
                  --tlscert "$CERT_DIR/server-cert.pem"
                  --tlskey "$CERT_DIR/server-key.pem") ;;
    esac
    printf '%s\n' "${args[@]}"
}

dk() { local n=$1; shift; "$DOCKER" -H "$(d_host "$n")" "$@"; }

# ----------------------------------------------------------------------------
# Process helpers
# ----------------------------------------------------------------------------
# Running = exists and is not a zombie (PID 1 here may not reap orphans).
proc_running() {
    local pid=${1:-} st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
proc_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }
# Does the process' argv contain the exact word $2 (or --opt=$2 form)?
proc_has_arg() {
    tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qE -- "^(--[a-z-]+=)?$(sed 's/[].[^$*+?(){}|\\/]/\\&/g' <<<"$2")\$"
}

# Print the pid of daemon $1's dockerd, if running.
daemon_pid() {
    local n=$1 pidfile pid p
    pidfile=$(d_pidfile "$n")
    if [[ -s $pidfile ]]; then
        pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
        if proc_running "$pid" && [[ $(proc_comm "$pid") == dockerd ]] &&
            { [[ $n == a ]] || proc_has_arg "$pid" "$(d_exec "$n")"; }; then
            echo "$pid"; return 0
        fi
    fi
    [[ $n == a ]] && return 1
    # No (valid) pidfile yet/anymore: look for a dockerd with our exec-root.
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $(proc_comm "$pid") == dockerd ]] || continue
        proc_running "$pid" || continue
        if proc_has_arg "$pid" "$(d_exec "$n")"; then echo "$pid"; return 0; fi
    done
    return 1
}

# containerd started by dockerd (it may survive a SIGKILLed dockerd).
containerd_pid() {
    local n=$1 f pid
    f=$(d_exec "$n")/containerd/containerd.pid
    [[ -s $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f" 2>/dev/null || true)
    proc_running "$pid" && [[ $(proc_comm "$pid") == containerd ]] &&
        proc_has_arg "$pid" "$(d_exec "$n")/containerd/containerd.toml" && echo "$pid"
}

# ----------------------------------------------------------------------------
# Readiness checks
# ----------------------------------------------------------------------------
CURL=(curl -s -f -o /dev/null --noproxy '*')
ping_unix() { "${CURL[@]}" --max-time "${2:-3}" --unix-socket "$1" http://x/_ping 2>/dev/null; }
ping_b_tcp() { "${CURL[@]}" --max-time "${1:-3}" "http://$B_TCP/_ping" 2>/dev/null; }
ping_c_tls() {
    "${CURL[@]}" --max-time "${1:-3}" --cacert "$CERT_DIR/ca.pem" --cert "$CERT_DIR/cert.pem" \
        --key "$CERT_DIR/key.pem" "https://$C_TLS/_ping" 2>/dev/null
}
# All endpoints of daemon $1 answer.
daemon_ready() {
    case $1 in
        a) ping_unix "$A_SOCK" ;;
        b) ping_unix "$(d_sock b)" && ping_b_tcp ;;
        c) ping_unix "$(d_sock c)" && ping_c_tls ;;
    esac
}

log_tail() {
    local f
    f=$(d_log "$1")
    if [[ -s $f ]]; then
        log "last lines of $f:"
        tail -n 40 "$f" | sed 's/^/    /' >&2
    else
        log "($f is empty or missing)"
    fi
}

# Wait until daemon $1 answers on all endpoints. $2 = pid of the launcher (optional):
# if it and every dockerd for this daemon are gone, fail early.
wait_ready() {
    local n=$1 launcher=${2:-} start=$SECONDS
    while ((SECONDS - start < START_TIMEOUT)); do
        if daemon_ready "$n"; then
            log "daemon $(d_upper "$n"): ready after $((SECONDS - start))s"
            return 0
        fi
        if ((SECONDS - start >= 3)) && ! proc_running "$launcher" && ! daemon_pid "$n" >/dev/null; then
            log "daemon $(d_upper "$n"): dockerd exited during startup"
            log_tail "$n"
            return 1
        fi
        sleep 0.5
    done
    log "daemon $(d_upper "$n"): no _ping answer on all endpoints within ${START_TIMEOUT}s"
    log_tail "$n"
    return 1
}

# ----------------------------------------------------------------------------
# Packages
# ----------------------------------------------------------------------------
pkg_installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]; }

ensure_packages() {
    # debootstrap: tests/image.rs makes its Debian runtime base with it (nothing can be pulled).
    # haproxy: tests/read_only.rs puts a GET-only Docker socket proxy in front of a daemon
    # (each test runs its own process; the package's service is not used).
    # podman: tests/podman.rs runs its own `podman system service` on a socket of its own.
    local -A bin_of=([docker.io]=dockerd [busybox-static]=busybox [prometheus]=promtool
                     [openssl]=openssl [curl]=curl [iproute2]=ip [debootstrap]=debootstrap
                     [haproxy]=haproxy [podman]=podman)
    local missing=() p
    for p in docker.io busybox-static prometheus openssl curl iproute2 debootstrap haproxy podman; do
        if ! pkg_installed "$p" || ! command -v "${bin_of[$p]}" >/dev/null 2>&1; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "packages: all present"
    else
        log "packages: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2 || die "apt-get update failed"
        apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
    if [[ -x /usr/bin/docker ]]; then
        DOCKER=/usr/bin/docker
    else
        DOCKER=$(command -v docker 2>/dev/null) || die "no docker client found"
    fi
    DOCKERD=$(command -v dockerd 2>/dev/null) || die "no dockerd found"
}

# tests/api_security.rs validates the served OpenAPI document with the PyPI package
# openapi-spec-validator (`python3 -m openapi_spec_validator FILE`). Installed for the
# `python3` on PATH, with pip; Debian's own python3 is externally managed (PEP 668).
ensure_openapi_validator() {
    if python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
        log "python: openapi-spec-validator present"
        return 0
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "python: installing python3-pip"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2 || die "apt-get update failed"
        apt-get install -y --no-install-recommends python3-pip >&2 ||
            die "apt-get install python3-pip failed"
    fi
    log "python: installing openapi-spec-validator (pip)"
    local out
    if ! out=$(python3 -m pip install --quiet openapi-spec-validator 2>&1); then
        if grep -q externally-managed-environment <<<"$out"; then
            log "python: externally managed, retrying with --break-system-packages"
            python3 -m pip install --quiet --break-system-packages openapi-spec-validator >&2 ||
                die "pip install openapi-spec-validator failed"
        else
            printf '%s\n' "$out" >&2
            die "pip install openapi-spec-validator failed"
        fi
    fi
    python3 -c 'import openapi_spec_validator' >/dev/null 2>&1 ||
        die "openapi-spec-validator installed, but python3 cannot import it"
}

# ----------------------------------------------------------------------------
# Networking for B / C
# ----------------------------------------------------------------------------
ensure_bridge() {
    local n=$1 br cidr
    br=$(d_bridge "$n"); cidr=$(d_cidr "$n")
    if ! ip link show dev "$br" >/dev/null 2>&1; then
        log "creating bridge $br ($cidr)"
        ip link add "$br" type bridge
    fi
    if ! ip -4 -o addr show dev "$br" | grep -qF " inet $cidr "; then
        ip addr add "$cidr" dev "$br"
    fi
    ip link set "$br" up
}

remove_bridge() {
    local br
    br=$(d_bridge "$1")
    if ip link show dev "$br" >/dev/null 2>&1; then
        log "removing bridge $br"
        ip link del "$br" || warn "could not delete bridge $br"
    fi
}

# With --iptables=false the daemon adds no FORWARD rules, but daemon A loads
# br_netfilter (bridge-nf-call-iptables=1) and sets the FORWARD policy to DROP,
# so container<->container traffic on our bridges would be dropped. Allow it.
fwd_rule() { iptables -w 5 "$1" FORWARD -i "$2" -o "$2" -j ACCEPT 2>/dev/null; }
ensure_fwd_rule() {
    command -v iptables >/dev/null 2>&1 || return 0
    local br
    br=$(d_bridge "$1")
    fwd_rule -C "$br" || fwd_rule -I "$br" || warn "could not add iptables FORWARD accept rule for $br"
}
remove_fwd_rule() {
    command -v iptables >/dev/null 2>&1 || return 0
    local br i=0
    br=$(d_bridge "$1")
    while fwd_rule -C "$br" && ((i++ < 10)); do fwd_rule -D "$br" || break; done
}

# ----------------------------------------------------------------------------
# TLS material
# ----------------------------------------------------------------------------
CERT_FILES=(ca.pem ca-key.pem server-cert.pem server-key.pem cert.pem key.pem wrong-ca.pem wrong-ca-key.pem)

certs_valid() {
    local f
    for f in "${CERT_FILES[@]}"; do [[ -s $CERT_DIR/$f ]] || return 1; done
    for f in ca.pem server-cert.pem cert.pem wrong-ca.pem; do
        openssl x509 -in "$CERT_DIR/$f" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    done
    openssl verify -CAfile "$CERT_DIR/ca.pem" "$CERT_DIR/server-cert.pem" "$CERT_DIR/cert.pem" >/dev/null 2>&1
}

CERTS_REGENERATED=0
ensure_certs() { # $1 = quiet (optional)
    if certs_valid; then
        [[ -n ${1:-} ]] || log "certs: present in $CERT_DIR"
        return 0
    fi
    log "certs: generating in $CERT_DIR"
    local tmp
    tmp=$(mktemp -d "$STATE_DIR/certs.tmp.XXXXXX")
    (
        set -euo pipefail
        cd "$tmp"
        umask 022
        serial() { echo "0x$(openssl rand -hex 15)"; }
        genkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
        cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
        mkca() { # $1 = basename, $2 = CN
            genkey "$1-key.pem"
            openssl req -new -x509 -config openssl.cnf -extensions v3_ca -key "$1-key.pem" \
                -subj "/CN=$2" -sha256 -days 10 -set_serial "$(serial)" -out "$1.pem"
        }
        mkleaf() { # $1 = cert file, $2 = key file, $3 = CN, $4 = extension section
            genkey "$2"
            openssl req -new -config openssl.cnf -key "$2" -subj "/CN=$3" -out leaf.csr
            openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -set_serial "$(serial)" \
                -sha256 -days 10 -extfile openssl.cnf -extensions "$4" -out "$1"
        }
        mkca ca "dockstat-test CA"
        mkca wrong-ca "dockstat-test WRONG CA (signs nothing)"
        mkleaf server-cert.pem server-key.pem localhost server
        mkleaf cert.pem key.pem dockstat-test-client client
        openssl verify -CAfile ca.pem server-cert.pem cert.pem
        # Test-only throw-away material; readable so non-root test runs can use it.
        chmod 0644 ./*.pem
    ) >"$tmp/gen.log" 2>&1 || { cat "$tmp/gen.log" >&2; rm -rf "$tmp"; die "certificate generation failed"; }
    mkdir -p "$CERT_DIR"
    local f
    for f in "${CERT_FILES[@]}"; do mv -f "$tmp/$f" "$CERT_DIR/$f"; done
    rm -rf "$tmp"
    CERTS_REGENERATED=1
}

# ----------------------------------------------------------------------------
# Start / stop
# ----------------------------------------------------------------------------
remove_stale() {
    local n=$1 pidfile sock
    pidfile=$(d_pidfile "$n"); sock=$(d_sock "$n")
    if [[ -e $pidfile ]]; then log "daemon $(d_upper "$n"): removing stale pidfile $pidfile"; rm -f "$pidfile"; fi
    if [[ -S $sock || -e $sock ]]; then log "daemon $(d_upper "$n"): removing stale socket $sock"; rm -f "$sock"; fi
}

launch_dockerd() { # $1 = name, rest = dockerd args; echoes launcher pid
    local n=$1; shift
    local logf
    logf=$(d_log "$n")
    mkdir -p "$STATE_DIR"
    printf '\n===== %s test-env.sh: starting %s %s =====\n' "$(date -Is)" "$DOCKERD" "$*" >>"$logf"
    # setsid+nohup: survive the calling shell; fd 9 (our lock) must not leak into the daemon.
    setsid nohup "$DOCKERD" "$@" </dev/null >>"$logf" 2>&1 9>&- &
    echo $!
}

# Start B or C (idempotent).
start_daemon() {
    local n=$1 N pid launcher
    N=$(d_upper "$n")
    if daemon_ready "$n"; then
        log "daemon $N: already running"
        return 0
    fi
    if pid=$(daemon_pid "$n"); then
        log "daemon $N: dockerd pid $pid exists but does not answer yet; waiting"
        wait_ready "$n" "$pid" && return 0
        die "daemon $N (pid $pid) is not answering; try '$0 stop-$n' then '$0 start-$n'"
    fi
    remove_stale "$n"
    [[ $n == c ]] && ensure_certs quiet
    ensure_bridge "$n"
    ensure_fwd_rule "$n"
    mkdir -p "$(d_data "$n")" "$(d_exec "$n")" "$STATE_DIR/$n"
    chmod 0711 "$(d_data "$n")"
    # Own config file (never /etc/docker/daemon.json). Docker 20.10 derives the daemon
    # ID from a trust key, by default the shared /etc/docker/key.json, which would
    # give A, B and C the same ID; "deprecated-key-path" (config-file only) fixes that.
    printf '{\n  "deprecated-key-path": "%s/key.json"\n}\n' "$(d_data "$n")" >"$STATE_DIR/$n/daemon.json"
    local args
    mapfile -t args < <(d_args "$n")
    log "daemon $N: starting dockerd (log: $(d_log "$n"))"
    launcher=$(launch_dockerd "$n" "${args[@]}")
    wait_ready "$n" "$launcher" || die "daemon $N failed to start"
}

# Stop a daemon (a, b or c): SIGTERM, wait for exit + socket silence, then SIGKILL.
stop_daemon() {
    local n=$1 N pid sock start cpid
    N=$(d_upper "$n"); sock=$(d_sock "$n")
    if ! pid=$(daemon_pid "$n"); then
        if ping_unix "$sock" 1; then
            warn "daemon $N: $sock answers but no matching dockerd process found; not touching it"
            return 1
        fi
        log "daemon $N: not running"
        [[ $n != a ]] && remove_stale "$n"
        return 0
    fi
    log "daemon $N: stopping dockerd pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    start=$SECONDS
    while ((SECONDS - start < STOP_TIMEOUT)); do
        if ! proc_running "$pid" && ! ping_unix "$sock" 1; then break; fi
        sleep 0.5
    done
    if proc_running "$pid"; then
        warn "daemon $N: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        start=$SECONDS
        while proc_running "$pid" && ((SECONDS - start < 10)); do sleep 0.2; done
        proc_running "$pid" && die "daemon $N: pid $pid survived SIGKILL"
    fi
    # A SIGKILLed dockerd leaves its containerd behind.
    if cpid=$(containerd_pid "$n"); then
        log "daemon $N: stopping leftover containerd pid $cpid"
        kill -TERM "$cpid" 2>/dev/null || true
        start=$SECONDS
        while proc_running "$cpid" && ((SECONDS - start < 10)); do sleep 0.2; done
        proc_running "$cpid" && kill -KILL "$cpid" 2>/dev/null || true
    fi
    if ping_unix "$sock" 1; then
        die "daemon $N: $sock still answers after stopping pid $pid"
    fi
    if [[ $n != a ]]; then
        remove_stale "$n" >/dev/null 2>&1 || true
    fi
    log "daemon $N: stopped after $((SECONDS - start))s"
}

start_a() {
    local pid launcher
    if ping_unix "$A_SOCK"; then
        if [[ -e $A_MARKER ]]; then log "daemon A: running (started by test-env.sh)"
        else log "daemon A: running (not managed by test-env.sh; will be left alone)"; fi
        return 0
    fi
    if pid=$(daemon_pid a); then
        log "daemon A: dockerd pid $pid exists but $A_SOCK does not answer yet; waiting"
        wait_ready a "$pid" || die "daemon A (pid $pid, not started by us?) does not answer on $A_SOCK"
        return 0
    fi
    [[ -e $A_PIDFILE ]] && { log "daemon A: removing stale pidfile $A_PIDFILE"; rm -f "$A_PIDFILE"; }
    [[ -e $A_SOCK ]] && { log "daemon A: removing stale socket $A_SOCK"; rm -f "$A_SOCK"; }
    mkdir -p "$STATE_DIR"
    log "daemon A: starting default dockerd (log: $(d_log a))"
    launcher=$(launch_dockerd a)
    echo "$launcher" >"$A_MARKER"
    wait_ready a "$launcher" || die "daemon A failed to start"
}

remove_test_containers() {
    local n=$1 ids
    ping_unix "$(d_sock "$n")" || return 0
    ids=$(dk "$n" ps -aq --filter label=dockstat.test=1 2>/dev/null || true)
    if [[ -n $ids ]]; then
        log "daemon $(d_upper "$n"): removing $(wc -w <<<"$ids") container(s) labelled dockstat.test=1"
        xargs -r "$DOCKER" -H "$(d_host "$n")" rm -f <<<"$ids" >/dev/null || warn "could not remove some test containers on $(d_upper "$n")"
    fi
}

# ----------------------------------------------------------------------------
# Test image
# ----------------------------------------------------------------------------
image_id() { dk "$1" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null; }

ensure_image() {
    local id_a id tmp
    if id_a=$(image_id a); then
        log "image $IMAGE: present on A"
    else
        log "image $IMAGE: building on A"
        tmp=$(mktemp -d /tmp/dockstat-image.XXXXXX)
        cp -L /bin/busybox "$tmp/busybox"
        cat >"$tmp/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
CMD ["/bin/sh"]
EOF
        if ! DOCKER_BUILDKIT=0 dk a build -t "$IMAGE" "$tmp" >"$tmp/build.log" 2>&1; then
            cat "$tmp/build.log" >&2
            rm -rf "$tmp"
            die "building $IMAGE failed"
        fi
        rm -rf "$tmp"
        id_a=$(image_id a) || die "image $IMAGE missing on A right after build"
    fi
    local n
    for n in b c; do
        id=$(image_id "$n" || true)
        if [[ $id == "$id_a" ]]; then
            log "image $IMAGE: present on $(d_upper "$n")"
            continue
        fi
        log "image $IMAGE: loading into $(d_upper "$n")"
        dk a save "$IMAGE" | dk "$n" load >/dev/null || die "loading $IMAGE into $(d_upper "$n") failed"
    done
}

# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------
write_env() {
    local tmp=$ENV_FILE.tmp
    cat >"$tmp" <<EOF
export DOCKSTAT_TEST_A_SOCKET=$A_SOCK
export DOCKSTAT_TEST_B_SOCKET=$(d_sock b)
export DOCKSTAT_TEST_B_TCP=$B_TCP
export DOCKSTAT_TEST_C_SOCKET=$(d_sock c)
export DOCKSTAT_TEST_C_TLS=$C_TLS
export DOCKSTAT_TEST_CERTS=$CERT_DIR
export DOCKSTAT_TEST_IMAGE=$IMAGE
EOF
    mv -f "$tmp" "$ENV_FILE"
}

cmd_up() {
    local t0=$SECONDS
    ensure_packages
    ensure_openapi_validator
    mkdir -p "$STATE_DIR" "$DATA_DIR"
    start_a
    ensure_certs
    if ((CERTS_REGENERATED)) && daemon_pid c >/dev/null; then
        log "daemon C: certificates changed, restarting"
        stop_daemon c
    fi
    start_daemon b
    start_daemon c
    ensure_image
    write_env
    log "up: done in $((SECONDS - t0))s"
    cmd_status
    echo "environment: source $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_down() {
    local purge=0
    [[ ${1:-} == --purge ]] && purge=1
    local n
    for n in c b; do
        remove_test_containers "$n"
        stop_daemon "$n"
        remove_fwd_rule "$n"
        remove_bridge "$n"
    done
    remove_test_containers a
    if [[ -e $A_MARKER ]]; then
        stop_daemon a
        rm -f "$A_MARKER"
    else
        log "daemon A: not started by test-env.sh, leaving it running"
    fi
    if ((purge)); then
        # Unmount anything left below our dirs (e.g. after a SIGKILLed daemon), deepest first.
        local m
        while read -r m; do
            umount -l "$m" 2>/dev/null || warn "could not unmount $m"
        done < <(awk -v a="$DATA_DIR/" -v b="$STATE_DIR/" \
                   'index($5, a) == 1 || index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        log "purging $DATA_DIR and $STATE_DIR"
        rm -rf "$DATA_DIR" "$STATE_DIR"
    else
        rm -f "$ENV_FILE"
    fi
    log "down: done"
}

cmd_status() {
    local n N pid state eps
    for n in a b c; do
        N=$(d_upper "$n")
        pid=$(daemon_pid "$n" || true)
        eps="unix:$(ping_unix "$(d_sock "$n")" 2 && echo up || echo down)"
        case $n in
            b) eps+=" tcp://$B_TCP:$(ping_b_tcp 2 && echo up || echo down)" ;;
            c) eps+=" tls://$C_TLS:$( [[ -s $CERT_DIR/ca.pem ]] && ping_c_tls 2 && echo up || echo down)" ;;
        esac
        if [[ -n $pid ]]; then state="running (pid $pid)"; else state="not running"; fi
        [[ $n == a && -n $pid ]] && { [[ -e $A_MARKER ]] && state+=", started by test-env.sh" || state+=", external"; }
        printf 'daemon %s: %-40s %s  sock=%s\n' "$N" "$state" "$eps" "$(d_sock "$n")"
    done
}

usage() {
    cat >&2 <<EOF
usage: $0 up | down [--purge] | status | stop-b | start-b | stop-c | start-c
EOF
    exit 2
}

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] || usage
    shift || true
    [[ $EUID -eq 0 ]] || die "must run as root"
    case $cmd in
        up|down|stop-b|start-b|stop-c|start-c)
            exec 9>>"$LOCK_FILE"
            flock -w "$LOCK_TIMEOUT" 9 || die "another test-env.sh is running (lock $LOCK_FILE)"
            ;;
        status) ;;
        *) usage ;;
    esac
    case $cmd in
        up) cmd_up ;;
        down) cmd_down "$@" ;;
        status) cmd_status ;;
        stop-b) stop_daemon b ;;
        stop-c) stop_daemon c ;;
        start-b|start-c)
            local n=${cmd#start-}
            command -v dockerd >/dev/null 2>&1 || die "dockerd not installed; run '$0 up' first"
            start_daemon "$n"
            ;;
    esac
}

main "$@"
