#!/usr/bin/env bash
# `rtnq plan` and `rtnq quantize --dry-run / --target-bpw` as a user drives them: real files,
# importance files written here, a real rtnq-server. Checks that the plan's config makes quantize
# write exactly the predicted bytes, that local and server plans are identical, that a dry run
# plans a truncated checkpoint, and that bad input is a clear usage error (exit 2) or failure
# (exit 1) that leaves no plan behind.
# Usage: plan_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server
set -euo pipefail

BIN=${1:?usage: plan_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server}
SERVER=${2:?usage: plan_cli_test.sh PATH/TO/rtnq PATH/TO/rtnq-server}
# shellcheck source=tests/client/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# Prints key $2 of the JSON report $1's summary.
summary() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$1" "$2"; }
size_of() { stat -c %s "$1"; }

T="$WORK/tiny"
C="int4:g32:sym,int4:g64:asym,int8:g32:sym,keep"
ok "$BIN" synth -o "$T" --shape tiny --seed 5

# --- usage errors name what is wrong and write nothing
P="$WORK/p.json"
status 2 "$BIN" plan "$T" -o "$P" --target-bpw 5
contains "a plan needs --candidates"
status 2 "$BIN" plan "$T" -o "$P" --candidates int4:g32:sym
contains "a plan needs a budget"
status 2 "$BIN" plan "$T" -o "$P" --candidates int4:g32:sym,int9:g32 --target-bpw 5
contains 'candidate "int9:g32": unknown type "int9"'
status 2 "$BIN" plan "$T" -o "$P" --candidates int4:g32:sym,int4:sym:g32 --target-bpw 5
contains 'candidate "int4:sym:g32": duplicates candidate "int4:g32:sym"'
status 2 "$BIN" plan "$T" -o "$P" --candidates "$C" --target-size 12q
contains "--target-size"
status 2 "$BIN" plan "$T" -o "$P" --candidates "$C" --target-bpw 5 --objective best
contains "--objective must be error or snr"
status 2 "$BIN" plan "$T" -o "$P" --candidates "$C" --target-bpw 5 --imatrix a --sensitivity b
contains "alternatives"
status 2 "$BIN" plan "$T" -o "$P" --candidates "$C" --target-bpw 5 --streams 2
contains "--streams needs --server"
status 2 "$BIN" plan "$T" --candidates "$C" --target-bpw 5
contains "plan needs -o"
status 2 "$BIN" quantize "$T" -o "$WORK/never" --target-bpw 5
contains "a plan needs --candidates"
absent "$P"
absent "$WORK/never"

# --- a local plan; quantize with it writes exactly the predicted bytes
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/local.json" \
  --report "$WORK/local-report.json" --threads 2
contains "bits per weight"
contains "predicted output (gptq format)"
contains "plan written to"
predicted=$(summary "$WORK/local-report.json" predicted_bytes)
bpw=$(summary "$WORK/local-report.json" bits_per_weight)
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 5 else 1)" "$bpw" || fail "bpw $bpw > 5"
ok "$BIN" quantize "$T" -o "$WORK/q1" --config "$WORK/local.json" --format gptq
[ "$(size_of "$WORK/q1/model.safetensors")" = "$predicted" ] || fail "quantize wrote $(size_of "$WORK/q1/model.safetensors"), plan said $predicted"
ok "$BIN" verify "$T" "$WORK/q1"
# Plan and quantize in one command: the same files.
ok "$BIN" quantize "$T" -o "$WORK/q2" --format gptq --target-bpw 5 --candidates "$C"
contains "plan: "
same "$WORK/q1" "$WORK/q2"
# inc, with a size budget: the files fit it.
ok "$BIN" plan "$T" --candidates "$C" --target-size 2100000 --format inc -o "$WORK/inc.json" \
  --report "$WORK/inc-report.json"
predicted=$(summary "$WORK/inc-report.json" predicted_bytes)
[ "$predicted" -le 2100000 ] || fail "predicted $predicted over the 2100000-byte target"
ok "$BIN" quantize "$T" -o "$WORK/q3" --config "$WORK/inc.json" --format inc
[ "$(size_of "$WORK/q3/model.safetensors")" = "$predicted" ] || fail "inc size differs from plan"
# A per-tensor SNR floor, and --json.
ok "$BIN" plan "$T" --candidates "$C" --min-snr 25 --format inc -o "$WORK/snr.json" --json --quiet
python3 - "$OUT" <<'PY' || fail "--json report"
import json, sys
r = json.load(open(sys.argv[1]))
assert all(t["snr_db"] == "inf" or t["snr_db"] >= 25 for t in r["tensors"]), r["tensors"]
assert r["summary"]["budget"]["min_snr_db"] == 25
PY

# --- budgets that cannot be met fail with the minimum, and write nothing
status 1 "$BIN" plan "$T" --candidates int4:g64:asym,int8:g32:sym --target-bpw 3 --format gptq \
  -o "$P"
contains "--target-bpw 3 is below the smallest plan the candidates allow"
contains "bits per weight"
status 1 "$BIN" plan "$T" --candidates int4:g32:sym --min-snr 60 --format gptq -o "$P"
contains "no candidate reaches --min-snr 60.00 dB"
status 1 "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq --group-size 100 \
  --config /nonexistent.json -o "$P"
contains "/nonexistent.json"
absent "$P"

# --- importance: an all-ones legacy imatrix gives the unweighted plan; GGUF works; gaps fail
python3 - "$WORK" <<'PY'
import struct, sys, random
work = sys.argv[1]
names = {"attn_q": 256, "attn_k": 256, "attn_v": 256, "attn_output": 256, "ffn_gate": 256,
         "ffn_up": 256, "ffn_down": 768}
def legacy(path, value, skip=()):
    entries = [(f"blk.{l}.{n}.weight", k) for l in range(2) for n, k in names.items() if n not in skip]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, k in entries:
            f.write(struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 1, k))
            f.write(struct.pack(f"<{k}f", *[value() for _ in range(k)]))
        f.write(struct.pack("<i", 10) + struct.pack("<i", 4) + b"wiki")
legacy(f"{work}/ones.dat", lambda: 1.0)
legacy(f"{work}/gap.dat", lambda: 1.0, skip=("ffn_down",))
# GGUF v3: general.type, tensors <name>.in_sum2 [k, 1] and <name>.counts [1, 1], 32-aligned.
rng = random.Random(1)
def s(x): return struct.pack("<Q", len(x)) + x.encode()
tensors = []
for l in range(2):
    for n, k in names.items():
        tensors.append((f"blk.{l}.{n}.weight.in_sum2", [k, 1], [rng.uniform(0, 8) for _ in range(k)]))
        tensors.append((f"blk.{l}.{n}.weight.counts", [1, 1], [4.0]))
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1) + s("general.type") + struct.pack("<I", 8) + s("imatrix")
offset, blobs = 0, []
for name, ne, data in tensors:
    head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
    head += struct.pack("<IQ", 0, offset)
    blob = struct.pack(f"<{len(data)}f", *data)
    blob += b"\0" * (-len(blob) % 32)
    blobs.append(blob)
    offset += len(blob)
head += b"\0" * (-len(head) % 32)
open(f"{work}/m.gguf", "wb").write(head + b"".join(blobs))
PY
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/ones.json" \
  --imatrix "$WORK/ones.dat"
contains "imatrix"
cmp -s "$WORK/local.json" "$WORK/ones.json" || fail "all-ones imatrix changed the plan"
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/gguf.json" \
  --imatrix "$WORK/m.gguf" --report "$WORK/gguf-report.json"
contains "gguf, 14 entries"
status 1 "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$P" \
  --imatrix "$WORK/gap.dat"
contains 'no importance for 2 selected tensors'
contains '"model.layers.0.mlp.down_proj.weight"'
status 1 "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$P" \
  --imatrix "$WORK/local.json"
contains "importance file"
# A sensitivity checkpoint: |w| per weight (the sign bit of every BF16 cleared) works; the
# signed weights themselves are refused.
python3 - "$T/model.safetensors" "$WORK/abs.safetensors" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
data = b[8 + n:]
data[1::2] = bytes(x & 0x7f for x in data[1::2])
open(sys.argv[2], "wb").write(bytes(b[:8 + n]) + bytes(data))
PY
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/sens.json" \
  --sensitivity "$WORK/abs.safetensors"
contains "sensitivity"
status 1 "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$P" \
  --sensitivity "$T/model.safetensors"
contains "(weights are finite and >= 0)"
absent "$P"

# --- dry run: the whole plan from the headers; a truncated checkpoint plans the same
ok "$BIN" quantize "$T" --dry-run --config "$WORK/local.json" --format gptq
contains "no tensor data read"
contains "14 quantized, 2 skipped, 5 copied"
want=$(grep '^output: ' "$OUT")
[ "${want#output: }" != "$want" ] || fail "dry run printed no output line"
contains "output: $(size_of "$WORK/q1/model.safetensors") bytes"
mkdir "$WORK/cut"
cp "$T/config.json" "$WORK/cut/"
python3 - "$T/model.safetensors" "$WORK/cut/model.safetensors" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
open(sys.argv[2], "wb").write(b[:8 + n + 16])
PY
ok "$BIN" quantize "$WORK/cut" --dry-run --config "$WORK/local.json" --format gptq -o "$WORK/x"
grep -qF -- "$want" "$OUT" || fail "truncated dry run differs: $(grep '^output: ' "$OUT")"
absent "$WORK/x"
ok "$BIN" quantize "$WORK/cut" --dry-run --json --format inc
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["summary"]["bytes_after"] > 0' "$OUT" \
  || fail "--dry-run --json"
# Planning errors exit as a real run's do.
status 1 "$BIN" quantize "$WORK/cut" --dry-run --format gptq --group-size 100
contains "divisible by the group size (100)"
status 1 "$BIN" quantize "$T" -o "$WORK/real" --format gptq --group-size 100
contains "divisible by the group size (100)"
bad_run "$WORK/cut-out" "$BIN" quantize "$WORK/cut" -o "$WORK/cut-out" --format gptq

# --- on a server: the same plan; per-element weights stay local
start_server a
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/remote.json" \
  --server "127.0.0.1:$PORT" --streams 2 --report "$WORK/remote-report.json"
contains "round_robin, 2 streams"
cmp -s "$WORK/local.json" "$WORK/remote.json" || fail "server plan differs from local plan"
ok "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$WORK/rgguf.json" \
  --imatrix "$WORK/m.gguf" --server "127.0.0.1:$PORT"
cmp -s "$WORK/gguf.json" "$WORK/rgguf.json" || fail "server imatrix plan differs from local"
status 1 "$BIN" plan "$T" --candidates "$C" --target-bpw 5 --format gptq -o "$P" \
  --sensitivity "$WORK/abs.safetensors" --server "127.0.0.1:$PORT"
contains "per-element weights are not sent to servers"
ok "$BIN" quantize "$T" -o "$WORK/q4" --format gptq --target-bpw 5 --candidates "$C" \
  --server "127.0.0.1:$PORT"
same "$WORK/q1" "$WORK/q4"
absent "$P"

echo "plan_cli_test: all $passed checks passed"
