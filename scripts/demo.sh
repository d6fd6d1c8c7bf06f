#!/usr/bin/env bash
# The main job until the gRPC client lands: installs the Debian packages, builds, writes a
# synthetic bf16 Llama-shaped checkpoint, quantizes it to the GPTQ layout with a per-layer
# override (and to INC's layout with lm_head included), prints the reports and verifies both
# results against the original.
#
# Environment: DEMO_SHAPE  tiny (default), small or llama7b-layer
#              DEMO_DIR    where the checkpoints go (default ./out/demo)
#              DEMO_SEED   synthetic weights' seed (default 0)
#              THREADS     worker threads (default 0 = all cores)
#              BUILD_DIR   build directory (default build, as scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=${DEMO_SHAPE:-tiny}
DIR=${DEMO_DIR:-out/demo}
SEED=${DEMO_SEED:-0}
THREADS=${THREADS:-0}
BIN="${BUILD_DIR:-build}/core/rtnq-local"

step() { printf '\n== %s\n' "$*"; }

step "dependencies and build"
scripts/setup-deps.sh
scripts/build.sh

start=$(date +%s.%N)
mkdir -p "$DIR"
ORIG="$DIR/$SHAPE"
GPTQ="$DIR/$SHAPE-gptq"
INC="$DIR/$SHAPE-inc"
# Only what this script writes is replaced; the commands refuse non-empty output directories.
rm -rf "$ORIG" "$GPTQ" "$INC"

step "synthesize a $SHAPE Llama checkpoint"
"$BIN" synth -o "$ORIG" --shape "$SHAPE" --seed "$SEED" --threads "$THREADS"

step "quantize to the GPTQ layout: int4 sym g128, down_proj kept at 8 bits"
cat >"$DIR/gptq-config.json" <<'EOF'
{
  "bits": 4,
  "scheme": "sym",
  "group_size": 128,
  "weight_config": {
    "*.down_proj": {"bits": 8}
  }
}
EOF
cat "$DIR/gptq-config.json"
"$BIN" quantize "$ORIG" -o "$GPTQ" --format gptq --config "$DIR/gptq-config.json" \
  --threads "$THREADS"

step "verify the GPTQ checkpoint against the original"
"$BIN" verify "$ORIG" "$GPTQ" --threads "$THREADS"

step "quantize to INC's layout: int4 asym g32 with MSE clip search, lm_head included at 8 bits"
cat >"$DIR/inc-config.json" <<'EOF'
{
  "bits": 4,
  "scheme": "asym",
  "group_size": 32,
  "enable_mse_search": true,
  "weight_config": {
    "lm_head": {"bits": 8, "scheme": "sym", "enable_mse_search": false}
  }
}
EOF
cat "$DIR/inc-config.json"
"$BIN" quantize "$ORIG" -o "$INC" --format inc --config "$DIR/inc-config.json" \
  --threads "$THREADS"

step "verify the INC checkpoint"
"$BIN" verify "$ORIG" "$INC" --threads "$THREADS" | tail -n 3

end=$(date +%s.%N)
step "done in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s (after the build)"
echo "original:        $ORIG"
echo "GPTQ checkpoint: $GPTQ (model.safetensors, config.json with quantization_config, quantize_config.json)"
echo "INC checkpoint:  $INC (model.safetensors with qweight/scales/qzeros, config.json)"
