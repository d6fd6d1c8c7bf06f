#!/usr/bin/env bash
# The main job: installs the Debian packages, builds, starts rtnq-server on 127.0.0.1 (an
# ephemeral port, no metrics endpoint), writes a synthetic bf16 Llama-shaped checkpoint,
# quantizes it through the server to the GPTQ layout with a per-layer override (weight_config in
# a --config file), prints the summary, verifies the result against the original and stops the
# server (also when a step fails).
#
# Environment: DEMO_SHAPE  tiny (default), small or llama7b-layer
#              DEMO_DIR    where the checkpoints go (default ./out/demo)
#              DEMO_SEED   synthetic weights' seed (default 0)
#              DEMO_STREAMS tensors in flight (default 2)
#              THREADS     server (and synth) worker threads (default 0 = all cores)
#              BUILD_DIR   build directory (default build, as scripts/build.sh)
#              SKIP_SETUP  1: skip setup-deps and the build (binaries already built)
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=${DEMO_SHAPE:-tiny}
DIR=${DEMO_DIR:-out/demo}
SEED=${DEMO_SEED:-0}
STREAMS=${DEMO_STREAMS:-2}
THREADS=${THREADS:-0}
BUILD_DIR=${BUILD_DIR:-build}
RTNQ="$BUILD_DIR/client/rtnq"
SERVER="$BUILD_DIR/server/rtnq-server"

step() { printf '\n== %s\n' "$*"; }

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  step "dependencies and build"
  scripts/setup-deps.sh
  BUILD_DIR="$BUILD_DIR" scripts/build.sh
fi

start=$(date +%s.%N)
mkdir -p "$DIR"
ORIG="$DIR/$SHAPE"
GPTQ="$DIR/$SHAPE-gptq"
# Only what this script writes is replaced; rtnq refuses non-empty output directories.
rm -rf "$ORIG" "$GPTQ" "$GPTQ.partial" "$DIR/server.port"

step "start rtnq-server on 127.0.0.1 (ephemeral port)"
"$SERVER" --listen=127.0.0.1:0 --port_file="$DIR/server.port" --metrics_listen= \
  --threads="$THREADS" >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill "$SERVER_PID" 2>/dev/null; then wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap stop_server EXIT
for _ in $(seq 300); do
  [ -s "$DIR/server.port" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
  sleep 0.1
done
ADDR="127.0.0.1:$(cat "$DIR/server.port")"
"$RTNQ" health --server "$ADDR"
"$RTNQ" info --server "$ADDR"

step "synthesize a $SHAPE Llama checkpoint"
"$RTNQ" synth -o "$ORIG" --shape "$SHAPE" --seed "$SEED" --threads "$THREADS"

step "quantize through the server to the GPTQ layout: int4 sym g128, down_proj kept at 8 bits"
cat >"$DIR/gptq-config.json" <<'JSON'
{
  "bits": 4,
  "scheme": "sym",
  "group_size": 128,
  "weight_config": {
    "*.down_proj": {"bits": 8}
  }
}
JSON
cat "$DIR/gptq-config.json"
"$RTNQ" quantize "$ORIG" -o "$GPTQ" --format gptq --config "$DIR/gptq-config.json" \
  --server "$ADDR" --streams "$STREAMS" --report "$DIR/$SHAPE-gptq-report.json"

step "verify the GPTQ checkpoint against the original"
"$RTNQ" verify "$ORIG" "$GPTQ" --threads "$THREADS"

step "stop the server"
stop_server
trap - EXIT

end=$(date +%s.%N)
step "done in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s (after the build)"
echo "original:        $ORIG"
echo "GPTQ checkpoint: $GPTQ (model.safetensors, config.json with quantization_config, quantize_config.json)"
echo "report:          $DIR/$SHAPE-gptq-report.json"
