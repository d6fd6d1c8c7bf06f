#!/usr/bin/env bash
# The compressed-tensors and AWQ formats as a user drives them: a Llama-shaped sharded checkpoint
# written locally and through two real rtnq-servers must be byte-identical (shards, index and
# config.json), verify exact, name the engines that load it (inspect) and dequantize, read by an
# independent numpy reader guided only by config.json, to the --format fake weights of the same
# config; plus --target refusals and the formats' rules, each before anything is written.
# Usage: formats_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server PATH/TO/layout_reader_test.py
set -euo pipefail

BIN=${1:?usage: formats_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server PATH/TO/reader.py}
SERVER=${2:?usage: formats_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server PATH/TO/reader.py}
READER=${3:?usage: formats_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server PATH/TO/reader.py}
# shellcheck source=tests/client/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"
PY=/usr/bin/python3 # Debian's, where python3-numpy is installed

start_server a
A="127.0.0.1:$PORT"
start_server b
B="127.0.0.1:$PORT"

# --- a sharded Llama-shaped checkpoint: local vs server parity, sharded out, verify exact
ok "$BIN" synth -o "$WORK/small" --shape small --shards 2
for fmt in compressed-tensors awq; do
  ok "$BIN" quantize "$WORK/small" -o "$WORK/local-$fmt" --format "$fmt" --scheme asym \
    --group-size 128 --quiet
  ok "$BIN" quantize "$WORK/small" -o "$WORK/remote-$fmt" --format "$fmt" --scheme asym \
    --group-size 128 --server "$A,$B" --streams 3 --quiet
  same "$WORK/local-$fmt" "$WORK/remote-$fmt"
  [ -f "$WORK/local-$fmt/model-00002-of-00002.safetensors" ] || fail "$fmt: shard 2 missing"
  ok "$BIN" verify "$WORK/small" "$WORK/remote-$fmt"
  contains "verify OK"
  ok "$BIN" inspect "$WORK/local-$fmt"
  contains "rtnq quantization: format $fmt"
  contains "vLLM                     loads it: "
done
grep -q '"model.layers.3.mlp.down_proj.weight_packed"' \
  "$WORK/local-compressed-tensors/model.safetensors.index.json" || fail "index lacks weight_packed"
grep -q '"model.layers.3.mlp.down_proj.qzeros"' "$WORK/local-awq/model.safetensors.index.json" ||
  fail "index lacks qzeros"
"$PY" - "$WORK" <<'PY' || fail "config.json records"
import json, sys
ct = json.load(open(sys.argv[1] + "/local-compressed-tensors/config.json"))["quantization_config"]
assert ct["quant_method"] == "compressed-tensors" and ct["format"] == "pack-quantized", ct
assert ct["quantization_status"] == "compressed" and ct["ignore"] == ["model.embed_tokens", "lm_head"], ct
w = ct["config_groups"]["group_0"]["weights"]
assert (w["num_bits"], w["symmetric"], w["group_size"], w["strategy"]) == (4, False, 128, "group"), w
assert len(ct["config_groups"]["group_0"]["targets"]) == 28, ct
awq = json.load(open(sys.argv[1] + "/local-awq/config.json"))["quantization_config"]
assert awq == {"quant_method": "awq", "zero_point": True, "group_size": 128, "bits": 4,
               "version": "gemm", "modules_to_not_convert": ["model.embed_tokens", "lm_head"]}, awq
PY
passed=$((passed + 1))

# --- the independent reader: float32 weights give float32 compressed-tensors scales (exact);
# AWQ's float16 scales and a bf16 model stay within the scale rounding
ok "$BIN" synth -o "$WORK/f32" --shape tiny --weight-dtype f32
for fmt in fake compressed-tensors awq; do
  ok "$BIN" quantize "$WORK/f32" -o "$WORK/f32-$fmt" --format "$fmt" --scheme asym --quiet
done
ok "$PY" "$READER" --checkpoint "$WORK/f32-compressed-tensors" "$WORK/f32-fake"
ok "$PY" "$READER" --checkpoint "$WORK/f32-awq" "$WORK/f32-fake"
ok "$BIN" quantize "$WORK/small" -o "$WORK/small-fake" --format fake --scheme asym \
  --group-size 128 --quiet
ok "$PY" "$READER" --checkpoint "$WORK/local-compressed-tensors" "$WORK/small-fake"
contains "28 packed layers"
ok "$PY" "$READER" --checkpoint "$WORK/local-awq" "$WORK/small-fake"
# sym compressed-tensors per channel, 8 bits, through a server
ok "$BIN" quantize "$WORK/f32" -o "$WORK/f32-ct8" --format compressed-tensors --bits 8 \
  --scheme sym --group-size -1 --server "$A" --quiet
ok "$BIN" quantize "$WORK/f32" -o "$WORK/f32-fake8" --format fake --bits 8 --scheme sym \
  --group-size -1 --quiet
ok "$PY" "$READER" --checkpoint "$WORK/f32-ct8" "$WORK/f32-fake8"
ok "$BIN" verify "$WORK/f32" "$WORK/f32-ct8"

# --- rules: clear errors naming the tensor and rule, nothing written
bad_run "$WORK/x1" "$BIN" quantize "$WORK/f32" -o "$WORK/x1" --format awq --scheme sym
contains "AWQ layout stores 4-bit asym weights only, got 4-bit sym; use the gptq format"
bad_run "$WORK/x2" "$BIN" quantize "$WORK/f32" -o "$WORK/x2" --format awq --bits 8
contains "got 8-bit asym"
bad_run "$WORK/x3" "$BIN" quantize "$WORK/f32" -o "$WORK/x3" --format compressed-tensors --bits 3
contains "compressed-tensors 0.18 changed how 3-bit codes are packed"
bad_run "$WORK/x4" "$BIN" quantize "$WORK/f32" -o "$WORK/x4" --format compressed-tensors \
  --dtype nf4
contains "needs dtype int, got nf4"
bad_run "$WORK/x5" "$BIN" quantize "$WORK/f32" -o "$WORK/x5" --format compressed-tensors \
  --group-dim 0
contains "needs group_dim 1, got 0"
bad_run "$WORK/x6" "$BIN" quantize "$WORK/f32" -o "$WORK/x6" --format awq \
  --double-quant-dtype int
contains "cannot store double-quantized scales"
# One AWQ group size for the model; per-layer overrides belong to the other formats.
echo '{"weight_config": {"model.layers.0.mlp.down_proj": {"group_size": 64}}}' >"$WORK/mixed.json"
bad_run "$WORK/x7" "$BIN" quantize "$WORK/f32" -o "$WORK/x7" --format awq --config "$WORK/mixed.json"
contains "an AWQ checkpoint has one group size for every layer"
# Fused q/k/v with different configs: --target vllm refuses, any warns and writes.
echo '{"weight_config": {"model.layers.1.self_attn.k_proj": {"bits": 8}}}' >"$WORK/qkv.json"
bad_run "$WORK/x8" "$BIN" quantize "$WORK/f32" -o "$WORK/x8" --format compressed-tensors \
  --config "$WORK/qkv.json" --target vllm
contains "fused module model.layers.1.self_attn.qkv_proj: its 3 parts are loaded as one layer"
ok "$BIN" quantize "$WORK/f32" -o "$WORK/x8" --format compressed-tensors --config "$WORK/qkv.json" \
  --quiet
contains "warning: vLLM: fused module model.layers.1.self_attn.qkv_proj"
ok "$BIN" quantize "$WORK/f32" -o "$WORK/x9" --format compressed-tensors --config "$WORK/qkv.json" \
  --target transformers --quiet
ok "$BIN" verify "$WORK/f32" "$WORK/x9"

echo "formats_cli_test: $passed checks passed"
