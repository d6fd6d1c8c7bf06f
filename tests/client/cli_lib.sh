# Shared by the rtnq CLI test scripts (sourced after BIN and SERVER are set): a scratch
# directory removed on exit with every server started, and the check helpers. Each check that
# passes adds to $passed.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rtnq_cli_test.XXXXXX")
OUT="$WORK/out.txt"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
passed=0

fail() {
  echo "FAIL: $*" >&2
  echo "--- output:" >&2
  cat "$OUT" >&2 || true
  exit 1
}
# Runs a command that must succeed; its output (stdout and stderr) is kept in $OUT.
ok() { "$@" >"$OUT" 2>&1 || fail "exit $? from: $*"; passed=$((passed + 1)); }
# Runs a command that must exit with status $1.
status() {
  local want=$1 got=0
  shift
  "$@" >"$OUT" 2>&1 || got=$?
  [ "$got" = "$want" ] || fail "exit $got (want $want) from: $*"
  passed=$((passed + 1))
}
# Runs a command that must fail (exit 1, a run failure) and leave neither OUTPUT nor
# OUTPUT.partial; $1 is OUTPUT.
bad_run() {
  local out=$1
  shift
  status 1 "$@"
  contains "rtnq: error:"
  absent "$out"
  absent "$out.partial"
}
contains() { grep -qF -- "$1" "$OUT" || fail "output lacks \"$1\""; }
contains_file() { grep -qF -- "$2" "$1" || fail "$1 lacks \"$2\""; }
absent() { [ ! -e "$1" ] || fail "$1 exists but should not"; }
same() { diff -r "$1" "$2" >/dev/null || fail "$1 and $2 differ"; }
# Flips the low bit of the byte at offset $2 of file $1.
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  # shellcheck disable=SC2059 # the format is the octal escape of the new byte
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# Starts an rtnq-server on an ephemeral port (extra flags after the name); sets PORT and
# SERVER_PID.
start_server() {
  local name=$1
  shift
  "$SERVER" --listen=127.0.0.1:0 --port_file="$WORK/$name.port" --threads=1 "$@" \
    >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  disown "$SERVER_PID" # no "Killed" job notices when a test SIGKILLs it
  for _ in $(seq 300); do
    [ -s "$WORK/$name.port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; fail "$name died"; }
    sleep 0.1
  done
  PORT=$(cat "$WORK/$name.port")
}
# Waits until file $1 has at least one line (a progress line of a background run, pid $2).
wait_for_line() {
  for _ in $(seq 3000); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.02
  done
}
# Writes a safetensors file $1 of F32 tensors given as NAME:ROWSxCOLS arguments, their values a
# 256 KiB block of normal(0, 0.02) samples repeated (quick to make at any size).
write_f32_tensors() {
  python3 - "$@" <<'PY'
import json, random, struct, sys
random.seed(5)
block = struct.pack("<65536f", *[random.gauss(0, 0.02) for _ in range(65536)])
specs, off = {}, 0
for arg in sys.argv[2:]:
    name, dims = arg.split(":")
    rows, cols = map(int, dims.split("x"))
    specs[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [off, off + 4 * rows * cols]}
    off += 4 * rows * cols
header = json.dumps(specs).encode()
header += b" " * (-len(header) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header)
    for _ in range(off // len(block)):
        f.write(block)
    f.write(block[: off % len(block)])
PY
}
# Peak RssAnon (anonymous memory: not the mmapped input or the page cache) of process $1 in KiB,
# sampled every 20 ms until it exits; written to file $2.
peak_rss_anon() {
  local pid=$1 peak=0 v
  while v=$(awk '/^RssAnon:/{print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
    [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.02
  done
  echo "$peak" >"$2"
}
# Writes a safetensors file $1 whose header is the JSON $2 followed by $3 zero bytes.
write_safetensors() {
  python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
path, header, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
header += b" " * (-len(header) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + bytes(size))
PY
}

