#!/usr/bin/env bash
# Container entrypoint: maps RTNQ_* environment variables to rtnq-server flags, then execs the
# server (PID 1 gets SIGTERM directly and drains for --shutdown_grace seconds).
# Arguments given to the container come after the mapped flags, so they win (absl: last wins).
# The variables are listed explicitly rather than derived from every RTNQ_* name: Kubernetes
# injects RTNQ_PORT, RTNQ_SERVICE_HOST, ... for a Service named rtnq.
set -euo pipefail

# variable -> flag; every flag of server/main.cc except --port_file (tests/deploy checks this).
MAPPING=(
  RTNQ_LISTEN=listen
  RTNQ_METRICS_LISTEN=metrics_listen
  RTNQ_METRICS_THREADS=metrics_threads
  RTNQ_METRICS_REQUEST_TIMEOUT=metrics_request_timeout
  RTNQ_THREADS=threads
  RTNQ_KERNELS=kernels
  RTNQ_MAX_TENSOR_BYTES=max_tensor_bytes
  RTNQ_MEMORY_BUDGET_BYTES=memory_budget_bytes
  RTNQ_STREAM_BUDGET_BYTES=stream_budget_bytes
  RTNQ_MAX_STREAMS=max_streams
  RTNQ_MAX_MESSAGE_BYTES=max_message_bytes
  RTNQ_OUTPUT_CHUNK_BYTES=output_chunk_bytes
  RTNQ_STREAM_WINDOW_BYTES=stream_window_bytes
  RTNQ_MAX_RESERVATION_BYTES=max_reservation_bytes
  RTNQ_SESSION_CACHE_ENTRIES=session_cache_entries
  RTNQ_SESSION_CACHE_BYTES=session_cache_bytes
  RTNQ_IDLE_TIMEOUT=idle_timeout
  RTNQ_MIN_BYTES_PER_SECOND=min_bytes_per_second
  RTNQ_MIN_RATE_GRACE=min_rate_grace
  RTNQ_MAX_STREAM_SECONDS=max_stream_seconds
  RTNQ_SHUTDOWN_GRACE=shutdown_grace
  RTNQ_TLS_CERT_FILE=tls_cert_file
  RTNQ_TLS_KEY_FILE=tls_key_file
  RTNQ_TLS_CLIENT_CA_FILE=tls_client_ca_file
  RTNQ_AUTH_TOKEN_FILE=auth_token_file
  RTNQ_LOG_LEVEL=log_level
)

args=()
for entry in "${MAPPING[@]}"; do
  var=${entry%%=*}
  flag=${entry#*=}
  # Set and non-empty: an empty variable means "flag default", so compose files can pass through
  # unset host variables without turning features off by accident.
  if [ -n "${!var:-}" ]; then args+=("--${flag}=${!var}"); fi
done

exec rtnq-server "${args[@]}" "$@"
