#!/usr/bin/env bash
# OpenAPI-driven fuzzing of the admin API with schemathesis (from PyPI): every operation of
# /api/v1/openapi.json is called with generated requests, valid and invalid, against a real
# exporter watching daemon B (throwaway containers only; daemon A is left alone). Fails on
# any 5xx answer, on an answer that does not match the document, and on a schema-valid
# request refused (the document states every constraint the handlers enforce). A
# schema-invalid request that is accepted is no failure here: the handlers forgive what
# they can (a name with spaces around it, a container written `/name`). Not part of CI:
# it takes minutes.
#
#   sudo scripts/fuzz-api.sh [max examples per operation (100)] [extra schemathesis args]
#
# A followed log never ends: each request has 5 s, then the next comes.
# Needs the test environment (`sudo scripts/test-env.sh up`). Installs schemathesis with
# pip when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${1:-100}
shift || true
command -v schemathesis >/dev/null || pip install -q schemathesis
# shellcheck disable=SC1091
source /run/dockstat-test/env

B=${DOCKSTAT_TEST_B_SOCKET:-/run/dockstat-test/b/docker.sock}
IMAGE=${DOCKSTAT_TEST_IMAGE:-dockstat-test/busybox:latest}
LABEL=dockstat.fuzz=1
TOKEN=fuzz-admin-token-0123456789abcdef
docker_b() { /usr/bin/docker -H "unix://$B" "$@"; }

cargo build --release --locked --quiet
BIN=target/release/dockstat-exporter
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  docker_b ps -aq --filter "label=$LABEL" | xargs -r /usr/bin/docker -H "unix://$B" rm -f >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Containers for the generated references to hit: running, stopped, one refusing actions.
for i in 1 2 3; do
  docker_b run -d --label "$LABEL" --name "fuzz-run-$i" "$IMAGE" sh -c 'while true; do echo tick; sleep 1; done' >/dev/null
done
docker_b create --label "$LABEL" --name fuzz-created "$IMAGE" true >/dev/null
docker_b run -d --label "$LABEL" --label dockstat.actions=deny --name fuzz-deny "$IMAGE" sleep 86400 >/dev/null

PORT=$(( 20000 + RANDOM % 10000 ))
ADMIN=$(( PORT + 1 ))
cat > "$WORK/config.yaml" <<YAML
listen:
  metrics: 127.0.0.1:$PORT
  admin: 127.0.0.1:$ADMIN
api:
  tokens:
    - { name: fuzz, role: admin, token: "$TOKEN" }
monitoring:
  interval: 2s
database:
  path: $WORK/dockstat.db
clients:
  - name: fuzz
    hosts:
      - name: b
        address: unix://$B
YAML
RUST_LOG=warn "$BIN" --config "$WORK/config.yaml" 2>"$WORK/exporter.log" &
PID=$!
until curl -sf --max-time 2 "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done

# Two passes. Hosts the fuzzer adds point nowhere, and every container call on their
# client then answers 502 (the documented answer for a host that fails): so the first pass
# covers everything but adding and changing hosts, on the healthy fixture, and the second
# pass only those two operations, which call no Docker host. The WebSocket is left out:
# schemathesis speaks HTTP, and a correct handshake switches protocols.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  schemathesis run \
    "http://127.0.0.1:$ADMIN/api/v1/openapi.json" \
    --url "http://127.0.0.1:$ADMIN" \
    -H "Authorization: Bearer $TOKEN" \
    --checks "$checks" \
    --max-examples "$EXAMPLES" \
    --request-timeout 5 \
    --generation-deterministic \
    --exclude-path /api/v1/ws \
    "$@"
}
status=0
echo "== pass 1: every operation but adding and changing hosts"
checks=$CHECKS,positive_data_acceptance
run --exclude-operation-id add_host --exclude-operation-id update_host "$@" || status=$?
# Adding or changing a host checks its TLS files on this machine: generated paths do not
# exist, so a schema-valid body with `tls` is refused (400, naming the file), as the
# document says on `tls`. Every other check still runs on these two operations.
echo "== pass 2: adding and changing hosts"
checks=$CHECKS
run --include-operation-id add_host --include-operation-id update_host "$@" || status=$?
if ! kill -0 "$PID" 2>/dev/null; then
  echo "the exporter died during the run; its log:" >&2
  cat "$WORK/exporter.log" >&2
  status=1
fi
exit $status
