#!/usr/bin/env bash
# End to end through the rtnq-local binary: synth -> quantize (fake, inc, gptq) -> verify, and the
# failures that must exit non-zero and leave no output behind.
# Usage: rtnq_local_test.sh PATH/TO/rtnq-local
set -euo pipefail

BIN=${1:?usage: rtnq_local_test.sh PATH/TO/rtnq-local}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rtnq_local_test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/out.txt"
passed=0

fail() {
  echo "FAIL: $*" >&2
  echo "--- output:" >&2
  cat "$OUT" >&2 || true
  exit 1
}
# Runs a command that must succeed; its output is kept in $OUT.
ok() { "$@" >"$OUT" 2>&1 || fail "exit $? from: $*"; passed=$((passed + 1)); }
# Runs a command that must fail with a non-zero status.
bad() {
  if "$@" >"$OUT" 2>&1; then fail "expected a non-zero exit from: $*"; fi
  passed=$((passed + 1))
}
contains() { grep -qF -- "$1" "$OUT" || fail "output lacks \"$1\""; }
absent() { [ ! -e "$1" ] || fail "$1 exists but should not"; }
# Flips the low bit of the byte at offset $2 of file $1.
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# --- usage
bad "$BIN"
bad "$BIN" frobnicate
bad "$BIN" quantize
ok "$BIN" help
contains "rtnq-local quantize INPUT -o OUTPUT"

# --- synth
ok "$BIN" synth -o "$WORK/tiny" --shape tiny --seed 3 --threads 2
contains "21 tensors"
[ -f "$WORK/tiny/model.safetensors" ] && [ -f "$WORK/tiny/config.json" ] || fail "synth output"
ok "$BIN" synth -o "$WORK/tiny_again" --shape tiny --seed 3 --threads 1
cmp -s "$WORK/tiny/model.safetensors" "$WORK/tiny_again/model.safetensors" ||
  fail "same seed gave different bytes"
ok "$BIN" synth -o "$WORK/sharded" --shape tiny --shards 2 --dtype f16
[ -f "$WORK/sharded/model.safetensors.index.json" ] || fail "no shard index"
bad "$BIN" synth -o "$WORK/tiny" --shape tiny  # not empty
contains "not empty"
bad "$BIN" synth -o "$WORK/nope" --shape huge
absent "$WORK/nope"

# --- quantize + verify in each format
cat >"$WORK/gptq.json" <<'EOF'
{"bits": 4, "scheme": "sym", "group_size": 128,
 "weight_config": {"*.down_proj": {"bits": 8}}}
EOF
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/fake" --format fake --threads 2
contains "quantized 14, skipped 2, copied 5 unchanged"
ok "$BIN" verify "$WORK/tiny" "$WORK/fake"
contains "verify OK"

ok "$BIN" quantize "$WORK/tiny" -o "$WORK/inc" --format inc --preset GGML_TYPE_Q4_K
ok "$BIN" verify "$WORK/tiny" "$WORK/inc" --format inc
contains "14 quantized tensors checked, 7 copied tensors identical"
grep -q '"rtnq_quantization"' "$WORK/inc/config.json" || fail "inc config.json lacks the record"

ok "$BIN" quantize "$WORK/tiny" -o "$WORK/gptq" --format gptq --config "$WORK/gptq.json" \
  --kernels reference --threads 1
contains 'int8 sym g128  pattern "*.down_proj"'
contains "checkpoint_format gptq)"
grep -q '"quant_method": "gptq"' "$WORK/gptq/config.json" || fail "no quantization_config"
[ -f "$WORK/gptq/quantize_config.json" ] || fail "no quantize_config.json"
ok "$BIN" verify "$WORK/tiny" "$WORK/gptq" --format gptq
contains "verify OK"

# A file in, a file out; asym layers make the GPTQ default gptq_v2.
ok "$BIN" quantize "$WORK/tiny/model.safetensors" -o "$WORK/one.safetensors" --format gptq
contains "checkpoint_format gptq_v2"
ok "$BIN" verify "$WORK/tiny/model.safetensors" "$WORK/one.safetensors"

# Sharded input.
ok "$BIN" quantize "$WORK/sharded" -o "$WORK/sharded_q" --format inc
ok "$BIN" verify "$WORK/sharded" "$WORK/sharded_q"

# --- failures leave nothing behind
echo '{"bits": 4, "no_such_key": 1}' >"$WORK/unknown.json"
bad "$BIN" quantize "$WORK/tiny" -o "$WORK/x1" --config "$WORK/unknown.json"
contains 'unknown key "no_such_key"'
absent "$WORK/x1"
bad "$BIN" quantize "$WORK/tiny/model.safetensors" -o "$WORK/x2.safetensors" \
  --config "$WORK/unknown.json"
absent "$WORK/x2.safetensors"
bad "$BIN" quantize "$WORK/tiny" -o "$WORK/x3" --format gptq --preset BNB_NF4
contains "GPTQ layout needs dtype int"
absent "$WORK/x3"
# Asym groups with a zero point of 0 cannot be stored as gptq v1.
bad "$BIN" quantize "$WORK/tiny" -o "$WORK/x4" --format gptq --gptq_checkpoint_format gptq
absent "$WORK/x4"
bad "$BIN" quantize "$WORK/tiny" -o "$WORK/fake" --format fake  # not empty
bad "$BIN" quantize "$WORK/tiny" -o "$WORK/x5" --format nope
absent "$WORK/x5"

# --- verify catches corruption and mismatches
bad "$BIN" verify "$WORK/tiny" "$WORK/gptq" --format inc
contains "records format gptq"
cp -r "$WORK/gptq" "$WORK/corrupt"
size=$(stat -c %s "$WORK/corrupt/model.safetensors")
# The last tensors are model.layers.1's norms, model.norm and lm_head (copied); 200 KiB before the
# end of the data lies inside lm_head, 600 KiB before it inside layer 1's packed projections.
flip_byte "$WORK/corrupt/model.safetensors" $((size - 200000))
bad "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
contains "lm_head.weight: copied tensor's bytes differ from the original"
cp "$WORK/gptq/model.safetensors" "$WORK/corrupt/model.safetensors"
flip_byte "$WORK/corrupt/model.safetensors" $((size - 600000))
bad "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
contains "stored bytes differ from a fresh quantization"
head -c $((size / 2)) "$WORK/gptq/model.safetensors" >"$WORK/corrupt/model.safetensors"
bad "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
# Against a different original (another seed) nothing matches.
ok "$BIN" synth -o "$WORK/other" --shape tiny --seed 4
bad "$BIN" verify "$WORK/other" "$WORK/gptq"
contains "differ"
# A stricter SNR floor fails int4 layers.
bad "$BIN" verify "$WORK/tiny" "$WORK/gptq" --min_snr_db 30
contains "is below 30.00 dB"

echo "rtnq_local_test: all $passed checks passed"
