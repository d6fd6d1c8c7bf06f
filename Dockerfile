# rtnq container image: rtnq-server (the gRPC service) and rtnq (the CLI, also the HEALTHCHECK).
#
#   docker build -t rtnq .
#   docker run --rm -p 50051:50051 -p 9090:9090 -e RTNQ_THREADS=4 rtnq
#
# The build stage uses the very scripts the README and CI use (scripts/setup-deps.sh for the
# Debian packages, scripts/test.sh = setup-deps + scripts/build.sh + every ctest suite), so the
# image cannot drift from CI and is only produced from a tree whose tests pass. Its normal stage
# only: the image ships that build; the sanitizer and fuzz stages are CI's.

############################################################ build
FROM debian:bookworm AS build
WORKDIR /src
# The package list first, on its own layer: the apt step is cached until that list changes.
COPY scripts/setup-deps.sh scripts/setup-deps.sh
RUN scripts/setup-deps.sh
COPY . .
RUN RTNQ_CI_STAGES=normal scripts/test.sh
# The install rules' runtime component is exactly the two programs the image ships (bin/).
RUN cmake --install build --strip --component runtime --prefix /opt/rtnq

############################################################ runtime
FROM debian:bookworm-slim AS runtime
# Runtime shared libraries from Debian packages (not copied from the build stage), so the image
# gets Debian's security updates on rebuild. deploy/runtime-deps.txt is the one list; the deploy
# tests check it against the binaries' DT_NEEDED entries.
COPY deploy/runtime-deps.txt /tmp/runtime-deps.txt
RUN apt-get update \
 && grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' /tmp/runtime-deps.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-deps.txt
COPY --from=build /opt/rtnq/ /usr/local/
COPY deploy/docker/entrypoint.sh /usr/local/bin/rtnq-entrypoint
# Fail the image build, not the first container start, if a library is missing.
RUN chmod 0755 /usr/local/bin/rtnq-entrypoint \
 && ! ldd /usr/local/bin/rtnq-server /usr/local/bin/rtnq | grep 'not found' \
 && groupadd --system --gid 10001 rtnq \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rtnq

# Configuration: RTNQ_* variables (mapped to flags by the entrypoint; see deploy/README.md) or
# flags appended to `docker run IMAGE`, which win. Metrics are on by default in the container.
ENV RTNQ_LISTEN=0.0.0.0:50051 \
    RTNQ_METRICS_LISTEN=0.0.0.0:9090
USER 10001:10001
EXPOSE 50051 9090
# grpc.health.v1 over plaintext on the default port; with TLS or another port, override it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["rtnq", "health", "--server", "127.0.0.1:50051"]
# SIGTERM: NOT_SERVING, drain for --shutdown_grace (30 s), exit 0; give docker stop -t 40.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rtnq-entrypoint"]
