# Helpers shared by the CLI test scripts (cli_test.sh, formats_cli_test.sh), sourced after
# `set -euo pipefail` with the rtnq and rtnq-server binaries as $1 and $2: a scratch $WORK removed
# at exit with every server started, $OUT holding the last command's output, and assertions that
# count into $passed.
BIN=${1:?usage: $0 PATH/TO/rtnq PATH/TO/rtnq-server}
SERVER=${2:?usage: $0 PATH/TO/rtnq PATH/TO/rtnq-server}
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
