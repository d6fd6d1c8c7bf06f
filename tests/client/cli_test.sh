#!/usr/bin/env bash
# The rtnq binary as a user drives it: real rtnq-server subprocesses on 127.0.0.1, real files.
# Covers local/server byte parity (fake, inc, gptq), sharded and Hugging Face directories, verify
# on good and corrupted outputs, round_robin failover when a server is SIGKILLed mid-run,
# --resume after an interrupted run, tensors beyond a server's small budgets in every format,
# the client's anonymous memory on a 192 MiB tensor, bad inputs (clear message, non-zero exit,
# nothing left behind), info/health/inspect/synth and the flag syntax.
# Usage: cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server
set -euo pipefail

BIN=${1:?usage: cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server}
SERVER=${2:?usage: cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server}
# shellcheck source=tests/client/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# --- usage and flag syntax
status 2 "$BIN"
status 2 "$BIN" frobnicate
contains 'unknown command "frobnicate"'
status 2 "$BIN" quantize
contains "quantize takes exactly one INPUT"
ok "$BIN" help
contains "quantize"
contains "synth"
ok "$BIN" --version
contains "rtnq "
ok "$BIN" quantize --help
contains "--group-size"
ok "$BIN" help verify
contains "--min-snr-db"
status 2 "$BIN" quantize in -o out --frobnicate
contains "unknown flag --frobnicate"
status 2 "$BIN" synth -o "$WORK/never" --bits 4
contains "flag --bits does not apply to \`rtnq synth\`"
absent "$WORK/never"
status 2 "$BIN" quantize in -o out --group-size abc
contains "--group-size"
status 2 "$BIN" quantize in -o out --threads 2 --server 127.0.0.1:1
contains "--threads applies to local mode only"
status 2 "$BIN" quantize in -o out --tls-ca ca.pem
contains "--tls-ca needs --server"
status 2 "$BIN" quantize in -o out --format nope
contains '"nope"'

# --- synth
ok "$BIN" synth -o "$WORK/tiny" --shape tiny --seed 3 --threads 2
contains "21 tensors"
[ -f "$WORK/tiny/model.safetensors" ] || fail "synth wrote no model.safetensors"
[ -f "$WORK/tiny/config.json" ] || fail "synth wrote no config.json"
ok "$BIN" synth --output="$WORK/tiny_again" --shape=tiny --seed=3 --threads=1
cmp -s "$WORK/tiny/model.safetensors" "$WORK/tiny_again/model.safetensors" ||
  fail "same seed gave different bytes"
ok "$BIN" synth -o "$WORK/sharded" --shape tiny --shards 2 --weight-dtype f16
[ -f "$WORK/sharded/model.safetensors.index.json" ] || fail "no shard index"
status 1 "$BIN" synth -o "$WORK/tiny" --shape tiny # not empty
contains "not empty"
status 1 "$BIN" synth -o "$WORK/nope" --shape huge
absent "$WORK/nope"
status 2 "$BIN" synth -o "$WORK/nope" --weight-dtype int8
contains "--weight-dtype must be bf16, f16, f32 or fp8"
absent "$WORK/nope"
ok "$BIN" synth -o "$WORK/small" --shape small --seed 1
ok "$BIN" synth -o "$WORK/tiny3" --shape tiny --layers 3 --no-embeddings
contains "3 layers"
contains "28 tensors"
status 2 "$BIN" synth -o "$WORK/nope" --shape tiny --layers 0
contains "--layers must be >= 1"
absent "$WORK/nope"

# --- inspect
ok "$BIN" inspect "$WORK/tiny"
contains "model.embed_tokens.weight"
contains "21 tensors"
contains "no quantization recorded"
ok "$BIN" inspect "$WORK/sharded" --json
contains '"shards": 2'

# --- servers, info, health
start_server a
A="127.0.0.1:$PORT"
start_server b
B_PID=$SERVER_PID B="127.0.0.1:$PORT"
ok "$BIN" health --server "$A"
contains "SERVING"
status 1 "$BIN" health --server "$A" --service no.such.Service
ok "$BIN" info --server "$B" --json
contains '"version"'
contains '"max_streams"'
ok "$BIN" info
contains "kernel: "
contains "presets: BNB_NF4, GGML_TYPE_Q4_K"
ok "$BIN" info --json --threads 1
contains '"threads": 1'

# --- local and server mode give byte-identical outputs (hyphenated spec flags, a config file)
cat >"$WORK/gptq.json" <<'JSON'
{"bits": 4, "scheme": "sym", "group_size": 128,
 "weight_config": {"*.down_proj": {"bits": 8}}}
JSON
for fmt in fake inc gptq; do
  extra=()
  [ "$fmt" = gptq ] && extra=(--config "$WORK/gptq.json")
  [ "$fmt" = inc ] && extra=(--group-size 64 --scheme asym --mse-search)
  ok "$BIN" quantize "$WORK/tiny" -o "$WORK/local-$fmt" --format "$fmt" "${extra[@]}" \
    --report "$WORK/local-$fmt.json" --quiet
  ok "$BIN" quantize "$WORK/tiny" -o "$WORK/remote-$fmt" --format "$fmt" "${extra[@]}" \
    --server "$A" --streams 2
  contains "14"
  same "$WORK/local-$fmt" "$WORK/remote-$fmt"
  grep -q '"tensors"' "$WORK/local-$fmt.json" || fail "report lacks tensors"
  ok "$BIN" verify "$WORK/tiny" "$WORK/remote-$fmt"
  contains "verify OK"
done
# absl's own spelling of the flags still works and means the same.
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/local-inc2" --format=inc --group_size=64 \
  --scheme=asym --mse_search --quiet
same "$WORK/local-inc" "$WORK/local-inc2"
# --include/--exclude: repeatable and comma lists mean the same.
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/excl1" --exclude '*.down_proj' --exclude '*.up_proj' \
  --report "$WORK/excl1.json" --quiet
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/excl2" --exclude '*.down_proj,*.up_proj' --quiet
same "$WORK/excl1" "$WORK/excl2"
python3 - "$WORK/excl1.json" <<'PY' || fail "--exclude report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["quantized"] == 10, r["summary"]
skipped = [t["name"] for t in r["tensors"] if t["action"] == "skipped"]
assert "model.layers.0.mlp.down_proj.weight" in skipped, skipped
PY
passed=$((passed + 1))
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/incl" --include 'model.layers.0.*' --quiet --json
contains '"quantized": 7'
# The summary as JSON on stdout.
"$BIN" quantize "$WORK/tiny/model.safetensors" -o "$WORK/one.safetensors" --format gptq \
  --json >"$OUT" 2>/dev/null || fail "quantize --json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["quantized"] == 14, s' \
  "$OUT" || fail "--json summary"
passed=$((passed + 1))
ok "$BIN" verify "$WORK/tiny/model.safetensors" "$WORK/one.safetensors"

# --- the Hugging Face directory's output carries the spec's config keys
python3 - "$WORK/remote-gptq" <<'PY' || fail "gptq config.json keys"
import json, sys
q = json.load(open(sys.argv[1] + "/config.json"))["quantization_config"]
for key in ("quant_method", "bits", "group_size", "sym", "desc_act", "checkpoint_format"):
    assert key in q, key
assert q["quant_method"] == "gptq" and q["bits"] == 4 and q["group_size"] == 128 and q["sym"], q
PY
passed=$((passed + 1))
[ -f "$WORK/remote-gptq/quantize_config.json" ] || fail "no quantize_config.json"
grep -qF 'pattern \"*.down_proj' "$WORK/local-gptq.json" || fail "report lacks the deciding weight_config key"
ok "$BIN" inspect "$WORK/remote-gptq"
contains "rtnq quantization: format gptq"
contains "quantization_config"
contains "loaders:"
contains "vLLM                     loads it: Marlin"

# --- GPTQ without a scheme is sym (Marlin-ready) and says so; --target vllm refuses asym GPTQ
# before anything is written, --target any warns
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/gptq-default" --format gptq
contains "note: --format gptq without --scheme quantizes sym"
python3 -c 'import json,sys; q=json.load(open(sys.argv[1]))["quantization_config"]; assert q["sym"] and q["format"] == "gptq" and q["meta"]["quantizer"][0].startswith("rtnq:"), q' \
  "$WORK/gptq-default/config.json" || fail "gptq default config"
bad_run "$WORK/gptq-asym" "$BIN" quantize "$WORK/tiny" -o "$WORK/gptq-asym" --format gptq \
  --scheme asym --target vllm
contains "--target vllm: vLLM would not load this gptq checkpoint"
ok "$BIN" quantize "$WORK/tiny" -o "$WORK/gptq-asym" --format gptq --scheme asym --quiet
contains "warning: vLLM: 14 layers"
status 2 "$BIN" quantize "$WORK/tiny" -o "$WORK/x-target" --target sglang
contains "--target must be any, vllm or transformers"

# --- tensors beyond a server's small budgets (1 MiB per stream, 4 MiB in all): 4x a stream's
# budget, 2.5x the global one, rows of 1.125 MiB; each format with 1 and 4 streams, identical to
# local mode (a client that wrote whole tensors before reading hung here)
start_server small --stream_budget_bytes=1048576 --memory_budget_bytes=4194304 \
  --output_chunk_bytes=262144
S="127.0.0.1:$PORT"
write_f32_tensors "$WORK/big.safetensors" a.q_proj.weight:1024x1024 a.up_proj.weight:2560x1024 \
  a.down_proj.weight:8x294912 a.v_proj.weight:256x1024
for fmt in fake inc gptq; do
  extra=()
  [ "$fmt" = gptq ] && extra=(--group-size 128 --scheme sym)
  ok "$BIN" quantize "$WORK/big.safetensors" -o "$WORK/big-local-$fmt.safetensors" --format "$fmt" \
    "${extra[@]}" --quiet
  for streams in 1 4; do
    ok "$BIN" quantize "$WORK/big.safetensors" -o "$WORK/big-$fmt-$streams.safetensors" \
      --format "$fmt" "${extra[@]}" --server "$S" --streams "$streams" --deadline 120 --quiet
    cmp -s "$WORK/big-local-$fmt.safetensors" "$WORK/big-$fmt-$streams.safetensors" ||
      fail "$fmt with $streams streams differs from local mode"
  done
done
# Configs the server holds whole complete too.
ok "$BIN" quantize "$WORK/big.safetensors" -o "$WORK/big-mse.safetensors" --mse-search \
  --server "$S" --deadline 120 --quiet
ok "$BIN" quantize "$WORK/big.safetensors" -o "$WORK/big-gd0.safetensors" --group-dim 0 \
  --server "$S" --deadline 120 --quiet
rm -f "$WORK"/big-*.safetensors

# --- the client's anonymous memory stays bounded: four 48 MiB tensors through the server on 4
# streams (fake: 192 MiB of results, 4 x 48 MiB at once for a client that held results whole)
write_f32_tensors "$WORK/huge.safetensors" a.up_proj.weight:12288x1024 \
  b.up_proj.weight:12288x1024 c.up_proj.weight:12288x1024 d.up_proj.weight:12288x1024
"$BIN" quantize "$WORK/huge.safetensors" -o "$WORK/huge-q.safetensors" --server "$S" --streams 4 \
  --deadline 120 --quiet >"$OUT" 2>&1 &
client=$!
peak_rss_anon "$client" "$WORK/client.peak"
wait "$client" || fail "the 4 x 48 MiB run failed"
peak=$(cat "$WORK/client.peak")
echo "note: client peak RssAnon for 4 x 48 MiB on 4 streams: $((peak / 1024)) MiB" >&2
# Sanitizer runtimes (shadow memory, ASan's quarantine) add their own anonymous memory.
if [ "${RTNQ_SANITIZED:-0}" != 1 ]; then
  [ "$peak" -lt $((96 * 1024)) ] || fail "client RssAnon peaked at $peak KiB for 4 x 48 MiB tensors"
fi
passed=$((passed + 1))
rm -f "$WORK"/huge*.safetensors

# --- sharded in -> sharded out with a correct index (inspect opens it and cross-checks)
ok "$BIN" quantize "$WORK/sharded" -o "$WORK/sharded-q" --format gptq --server "$A,$B" --quiet
[ -f "$WORK/sharded-q/model-00001-of-00002.safetensors" ] || fail "shard 1 missing"
[ -f "$WORK/sharded-q/model-00002-of-00002.safetensors" ] || fail "shard 2 missing"
grep -q 'layers.0.mlp.down_proj.qweight' "$WORK/sharded-q/model.safetensors.index.json" ||
  fail "index lacks packed tensors"
ok "$BIN" inspect "$WORK/sharded-q"
contains "in 2 shard(s)"
ok "$BIN" verify "$WORK/sharded" "$WORK/sharded-q"
contains "verify OK"

# --- verify fails on corrupted outputs
cp -r "$WORK/local-gptq" "$WORK/corrupt"
size=$(stat -c %s "$WORK/corrupt/model.safetensors")
# The last tensors are layer 1's norms, model.norm and lm_head (copied); 200 KiB before the end
# lies inside lm_head, 600 KiB before it inside layer 1's packed projections.
flip_byte "$WORK/corrupt/model.safetensors" $((size - 200000))
status 1 "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
contains "lm_head.weight"
contains "verify FAILED"
cp "$WORK/local-gptq/model.safetensors" "$WORK/corrupt/model.safetensors"
flip_byte "$WORK/corrupt/model.safetensors" $((size - 600000))
status 1 "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
contains "verify FAILED"
head -c $((size / 2)) "$WORK/local-gptq/model.safetensors" >"$WORK/corrupt/model.safetensors"
status 1 "$BIN" verify "$WORK/tiny" "$WORK/corrupt"
contains "rtnq: error:"
ok "$BIN" synth -o "$WORK/other" --shape tiny --seed 4
status 1 "$BIN" verify "$WORK/other" "$WORK/local-gptq"
status 1 "$BIN" verify "$WORK/tiny" "$WORK/local-gptq" --min-snr-db 30
contains "30"

# --- two servers with round_robin, one SIGKILLed mid-run: the output is complete and identical
# (MSE search makes each tensor slow enough that the runs below are still going when interrupted)
SLOW=(--format gptq --scheme sym --mse-search)
ok "$BIN" quantize "$WORK/small" -o "$WORK/small-clean" "${SLOW[@]}" --quiet
"$BIN" quantize "$WORK/small" -o "$WORK/small-failover" "${SLOW[@]}" --server "$A,$B" \
  --streams 2 >"$WORK/failover.out" 2>"$WORK/failover.err" &
client=$!
wait_for_line "$WORK/failover.err" "$client"
kill -9 "$B_PID"
kill -0 "$client" 2>/dev/null || echo "note: the failover run ended before its server was killed" >&2
wait "$client" || { cat "$WORK/failover.err" >&2; fail "failover run failed"; }
same "$WORK/small-clean" "$WORK/small-failover"
passed=$((passed + 1))
status 1 "$BIN" health --server "$B"

# --- --resume after an interrupted run (the client SIGKILLed after its first tensor)
"$BIN" quantize "$WORK/small" -o "$WORK/small-resumed" "${SLOW[@]}" --server "$A" \
  >"$WORK/resume.out" 2>"$WORK/resume.err" &
client=$!
wait_for_line "$WORK/resume.err" "$client"
disown "$client" # no "Killed" job notice
kill -9 "$client" 2>/dev/null || true
while kill -0 "$client" 2>/dev/null; do sleep 0.02; done
absent "$WORK/small-resumed"
[ -d "$WORK/small-resumed.partial" ] || fail "no partial output after the interrupted run"
"$BIN" quantize "$WORK/small" -o "$WORK/small-resumed" "${SLOW[@]}" --server "$A" --resume \
  --json >"$OUT" 2>/dev/null || fail "resumed run failed"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["resumed"] >= 1, s' \
  "$OUT" || fail "nothing was resumed"
same "$WORK/small-clean" "$WORK/small-resumed"
absent "$WORK/small-resumed.partial"
passed=$((passed + 1))

# --- a server lost for good with --max-attempts 1 fails the run and keeps what is done
start_server c
C_PID=$SERVER_PID C="127.0.0.1:$PORT"
"$BIN" quantize "$WORK/small" -o "$WORK/small-lost" "${SLOW[@]}" --server "$C" \
  --max-attempts 1 >"$WORK/lost.out" 2>"$WORK/lost.err" &
client=$!
wait_for_line "$WORK/lost.err" "$client"
kill -9 "$C_PID"
if wait "$client"; then
  echo "note: the run finished before its server was killed" >&2
  rm -rf "$WORK/small-lost"
else
  grep -qF "rtnq: error:" "$WORK/lost.err" || fail "no error message"
  absent "$WORK/small-lost"
  contains_file "$WORK/lost.err" "--resume"
  ok "$BIN" quantize "$WORK/small" -o "$WORK/small-lost" "${SLOW[@]}" --server "$A" --resume
  same "$WORK/small-clean" "$WORK/small-lost"
fi

# --- bad inputs: a clear message, exit 1 and nothing left behind
echo '{"bits": 4, "no_such_key": 1}' >"$WORK/unknown.json"
bad_run "$WORK/x1" "$BIN" quantize "$WORK/tiny" -o "$WORK/x1" --config "$WORK/unknown.json"
contains 'no_such_key'
bad_run "$WORK/x2" "$BIN" quantize "$WORK/tiny" -o "$WORK/x2" --config "$WORK/unknown.json" \
  --server "$A"
contains 'no_such_key'
head -c 100000 "$WORK/tiny/model.safetensors" >"$WORK/truncated.safetensors"
bad_run "$WORK/x3.safetensors" "$BIN" quantize "$WORK/truncated.safetensors" \
  -o "$WORK/x3.safetensors"
contains "truncated.safetensors"
contains "run past the"
write_safetensors "$WORK/lies.safetensors" \
  '{"w.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}' 32
bad_run "$WORK/x4.safetensors" "$BIN" quantize "$WORK/lies.safetensors" -o "$WORK/x4.safetensors"
contains 'tensor "w.weight": data_offsets [0, 32] hold'
write_safetensors "$WORK/overlap.safetensors" \
  '{"a.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]}, "b.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [16, 48]}}' 48
bad_run "$WORK/x5.safetensors" "$BIN" quantize "$WORK/overlap.safetensors" \
  -o "$WORK/x5.safetensors"
contains "overlap tensor"
write_safetensors "$WORK/dtype.safetensors" \
  '{"w.weight": {"dtype": "F99", "shape": [2, 4], "data_offsets": [0, 32]}}' 32
bad_run "$WORK/x6.safetensors" "$BIN" quantize "$WORK/dtype.safetensors" -o "$WORK/x6.safetensors"
contains 'unsupported dtype "F99"'
bad_run "$WORK/x7" "$BIN" quantize "$WORK/tiny" -o "$WORK/x7" \
  --include model.layers.0.input_layernorm.weight
contains "model.layers.0.input_layernorm.weight"
bad_run "$WORK/x8" "$BIN" quantize "$WORK/tiny" -o "$WORK/x8" \
  --include model.layers.0.input_layernorm.weight --server "$A"
contains "model.layers.0.input_layernorm.weight"
touch "$WORK/afile"
status 1 "$BIN" quantize "$WORK/tiny" -o "$WORK/afile/out" --quiet
contains "rtnq: error:"
absent "$WORK/afile/out"
bad_run "$WORK/x9" "$BIN" quantize "$WORK/tiny" -o "$WORK/x9" --format gptq --preset BNB_NF4
bad_run "$WORK/x10" "$BIN" quantize "$WORK/tiny" -o "$WORK/x10" --bits 99
contains "bits"
status 1 "$BIN" quantize "$WORK/tiny" -o "$WORK/local-fake" # not empty
contains "rtnq: error:"

echo "cli_test: all $passed checks passed"
