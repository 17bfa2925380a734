# dockstat-exporter container image.
#
#   DOCKER_BUILDKIT=1 docker build -t dockstat-exporter .
#       compiles in the official Rust image, runs on debian:bookworm-slim (stage `runtime`).
#       BuildKit is the default builder since Docker 23; the variable matters on older
#       clients only (see below why the legacy builder cannot do this one).
#
#   cargo build --release --locked
#   docker build --target prebuilt --build-arg BINARY=target/release/dockstat-exporter \
#       -t dockstat-exporter .
#       packages a binary built outside Docker (no Rust image needed; either builder). It
#       links against glibc dynamically: build it on a system whose glibc is no newer than
#       bookworm's (2.36), or substitute a matching base with --build-arg RUNTIME_BASE=...
#
# The stages come in this order on purpose:
#   base      the runtime base: user, directories, default configuration, ports,
#             healthcheck; no binary yet
#   prebuilt  base + a binary from the build context (BINARY)
#   build     compiles the exporter with cargo
#   runtime   base + the binary from `build` (the last stage: what a plain build gives)
# BuildKit builds only the stages the target needs. The legacy builder (DOCKER_BUILDKIT=0)
# builds every stage up to the target in file order: `--target prebuilt` therefore never
# touches the Rust image (tests/image.rs builds it that way, on a local base given as
# RUNTIME_BASE, from the binary cargo built for the tests: the test machines cannot pull
# images), but a full build would also run `prebuilt`, which fails without a binary in
# target/release/.
#
# Running it needs the Docker socket, which is root-equivalent on the host:
#   docker run -d --name dockstat \
#       -v /var/run/docker.sock:/var/run/docker.sock:ro \
#       --group-add "$(stat -c %g /var/run/docker.sock)" \
#       -p 9487:9487 -v dockstat-data:/var/lib/dockstat dockstat-exporter
# The process runs as uid 10001, so it reaches the socket only through the socket's
# group (--group-add). See README.md, "Run as a container".

ARG RUNTIME_BASE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS base

# No ca-certificates: hosts over TLS are verified against the CA file configured for them
# (tls.ca), not the system roots.
RUN groupadd --gid 10001 dockstat \
 && useradd --uid 10001 --gid dockstat --no-create-home \
        --home-dir /var/lib/dockstat --shell /usr/sbin/nologin dockstat \
 && mkdir -p /etc/dockstat /var/lib/dockstat \
 && chown dockstat:dockstat /var/lib/dockstat \
 && chmod 0750 /var/lib/dockstat \
 && printf '%s\n' \
    '# Default configuration of the dockstat-exporter image: the Docker host whose socket' \
    '# is mounted at /var/run/docker.sock. Mount your own file over this one (see' \
    '# config.example.yaml in the repository for every key) or set DOCKSTAT_CONFIG.' \
    'listen:' \
    '  metrics: 0.0.0.0:9487' \
    '  # Loopback inside the container, so it needs no tokens. To publish it, set' \
    '  # 0.0.0.0:9488 AND api.tokens: any non-loopback address without tokens is refused' \
    '  # (exit 2).' \
    '  admin: 127.0.0.1:9488' \
    'database:' \
    '  # The image declares /var/lib/dockstat a volume.' \
    '  path: /var/lib/dockstat/dockstat.db' \
    'monitoring:' \
    '  # The fast stats path: run with --pid host --cgroupns host and' \
    '  # -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro. Without them: the stats API.' \
    '  cgroup_root: /host/sys/fs/cgroup' \
    '# One client; its host has no name, so it is named after its daemon (docker' \
    '# info Name: the machine it runs on), as cAdvisor and node_exporter label hosts.' \
    'clients:' \
    '  - name: default' \
    '    hosts:' \
    '      - address: unix:///var/run/docker.sock' \
    > /etc/dockstat/config.yaml

ENV DOCKSTAT_CONFIG=/etc/dockstat/config.yaml
VOLUME /var/lib/dockstat
# 9487: /metrics, /healthz, /readyz. 9488: admin API (loopback unless configured).
EXPOSE 9487 9488
# GET /healthz on the configured metrics listener; no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["dockstat-exporter", "healthcheck"]
# Needs the Docker socket's group: docker run --group-add "$(stat -c %g /var/run/docker.sock)".
USER 10001:10001
WORKDIR /var/lib/dockstat
ENTRYPOINT ["dockstat-exporter"]
CMD ["run"]

LABEL org.opencontainers.image.title="dockstat-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the containers of many Docker hosts"

# ---------------------------------------------------------------------------------------
FROM base AS prebuilt

# A path inside the build context (.dockerignore lets target/release/dockstat-exporter in).
# With the legacy builder a full build runs this stage too: use BuildKit for that one.
ARG BINARY=target/release/dockstat-exporter
COPY ${BINARY} /usr/local/bin/dockstat-exporter

# ---------------------------------------------------------------------------------------
# Keep this in step with the toolchain the crate is built and tested with (rustc 1.95):
# tests/image.rs compares this major.minor with `rustc --version`.
FROM rust:1.95-bookworm AS build

WORKDIR /src
COPY . .
RUN cargo build --release --locked

# ---------------------------------------------------------------------------------------
FROM base AS runtime

COPY --from=build /src/target/release/dockstat-exporter /usr/local/bin/dockstat-exporter
