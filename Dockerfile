# genserv as a container image (docs/deploy.md tells how to run it).
#
#   docker build -t genserv .
#   docker run --rm -p 8080:8080 genserv
#
# Two stages on debian:bookworm-slim: the builder compiles genserv in Release and runs the
# unit tests (a failing test fails the build); the runtime stage holds the runtime libraries
# and the binary, runs it as an unprivileged user, and probes it with
# `genserv --health-check`, so it needs no curl (the binary is also the command-line client,
# `genserv call ...`, with libcurl). scripts/container-check.sh builds and tests this file in
# CI.

# ---- builder -------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build

# A C compiler, CMake and the -dev packages of scripts/deps.sh; cmocka and libcurl for the
# tests (CMake configures the integration tests too, although only the unit tests run here).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc libc6-dev make cmake pkg-config \
        libuv1-dev libjansson-dev libmicrohttpd-dev libjemalloc-dev liblua5.4-dev libsqlite3-dev \
        libcmocka-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DGS_BUILD_BENCH=OFF \
    && cmake --build /build -j"$(nproc)" \
    && ctest --test-dir /build -L unit --output-on-failure --timeout 300

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim

# Label values: the version is the one in CMakeLists.txt (scripts/container-check.sh checks
# that they agree); source and licence are passed at build time where they are known.
ARG GENSERV_VERSION=0.1.0
ARG GENSERV_SOURCE=NOASSERTION
ARG GENSERV_LICENSE=NOASSERTION
LABEL org.opencontainers.image.title="genserv" \
      org.opencontainers.image.description="Elixir's GenServer as a networked service in C" \
      org.opencontainers.image.version="${GENSERV_VERSION}" \
      org.opencontainers.image.source="${GENSERV_SOURCE}" \
      org.opencontainers.image.licenses="${GENSERV_LICENSE}"

# Only the shared libraries the binary links (they bring libgnutls and friends, already in
# the base image; libcurl4 is for genserv's command-line client, so that
# `docker exec CONTAINER genserv ps` works: docs/cli.md); a fixed numeric user so that
# Kubernetes' runAsNonRoot can verify it; and the config file at its documented path: empty,
# so that mounting one over it is how a deployment configures genserv; and an empty folder of
# Lua behaviours, loaded at boot, over which a deployment mounts its own.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libuv1 \
        libjemalloc2 liblua5.4-0 libsqlite3-0 libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 genserv \
    && useradd --system --uid 10001 --gid genserv --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin genserv \
    && mkdir -p /etc/genserv/behaviours /var/lib/genserv \
    && chown genserv:genserv /var/lib/genserv \
    && printf '{}\n' > /etc/genserv/genserv.json

# The dashboard (web/) is embedded in the binary at build time: there is nothing else to copy.
COPY --from=build /build/genserv /usr/local/bin/genserv

# Listen on every address inside the container (the binary's own default is 127.0.0.1).
# Change settings with GENSERV_* variables or the config file rather than flags: the health
# check reads the same variables and file, so it follows them.
# Durable servers, stored timers and what clients start over HTTP live in the volume at
# /var/lib/genserv (docs/durability.md): mount one there so that they outlive the container.
ENV GENSERV_LISTEN=0.0.0.0:8080 \
    GENSERV_CONFIG=/etc/genserv/genserv.json \
    GENSERV_BEHAVIOURS_DIR=/etc/genserv/behaviours \
    GENSERV_DATA_DIR=/var/lib/genserv
VOLUME /var/lib/genserv

USER 10001:10001
EXPOSE 8080

# genserv runs as PID 1: it waits for SIGTERM with sigwait, answers every held call with
# 503 shutting_down and exits 0 within shutdown_timeout_ms (5 s by default). It starts no
# child processes, so it has nothing to reap; `docker run --init` adds an init if a plugin
# of yours spawns processes.
STOPSIGNAL SIGTERM
# --health-check asks GET /readyz: healthy means ready to serve (the boot finished and no
# shutdown began), the same question a Kubernetes readinessProbe asks (docs/deploy.md).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/genserv", "--health-check"]
ENTRYPOINT ["/usr/local/bin/genserv"]
