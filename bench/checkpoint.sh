#!/usr/bin/env bash
# Whole-checkpoint benchmark of the rtnq CLI: synthetic llama7b-layer and llama70b-layer
# checkpoints (bf16, with their 32000-token embeddings and lm_head, which are copied), quantized
# to each format locally and through a loopback rtnq-server with 1 and 4 streams. Each run is
# preceded by a user-space copy of the same input file with fsync (dd conv=fsync), so that the
# disk's state is measured in the same run and alternately with the work. Prints, per run: wall
# seconds, GB/s of input, the ratio of the run's time to the copy's (median of the shape's
# copies), and the peak RssAnon (anonymous memory: not the mmapped input or the page cache) of
# the client and of the server (a fresh server per run). Then a summary per shape and format,
# with the server runs' GB/s over the bytes they sent to the server (the quantized tensors) next
# to the raw gRPC echo ceiling with as many bytes back as in (rtnq_e2e_bench --mode=raw
# --echo_divisor=1, measured after the shape's runs), and the per-tensor overhead of 2,000 small
# tensors with a 1,000-entry weight_config.
#
#   bench/checkpoint.sh [BUILD_DIR]          (default build-bench, a Release build)
#   env: SHAPES="llama7b-layer llama70b-layer" FORMATS="fake inc gptq" STREAMS="1 4" REPS=1
#        EMBEDDINGS=1 (0: synth --no-embeddings, the decoder layer alone)
#        WORK=/tmp/rtnq-checkpoint-bench (inputs are kept there between runs) OVERHEAD=1
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
rtnq=$build/client/rtnq
server=$build/server/rtnq-server
for f in "$rtnq" "$server"; do
  [[ -x $f ]] || { echo "no $f: ninja -C $build rtnq rtnq-server" >&2; exit 1; }
done
SHAPES=${SHAPES:-llama7b-layer llama70b-layer}
FORMATS=${FORMATS:-fake inc gptq}
STREAMS=${STREAMS:-1 4}
REPS=${REPS:-1}
EMBEDDINGS=${EMBEDDINGS:-1}
echo_bench=$build/bench/rtnq_e2e_bench
WORK=${WORK:-/tmp/rtnq-checkpoint-bench}
OVERHEAD=${OVERHEAD:-1}
mkdir -p "$WORK"
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK/out" "$WORK/copy" "$WORK/port"
}
trap cleanup EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
# Peak RssAnon of process $1 in KiB, sampled every 20 ms until it exits; written to file $2.
peak_rss_anon() {
  local pid=$1 peak=0 v
  while v=$(awk '/^RssAnon:/{print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n $v ]]; do
    ((v > peak)) && peak=$v
    sleep 0.02
  done
  echo "$peak" >"$2"
}
# Starts a fresh rtnq-server (extra flags as arguments); sets SERVER_PID and PORT and samples
# its RssAnon into $WORK/server.peak until it stops.
start_server() {
  rm -f "$WORK/port" "$WORK/server.peak"
  "$server" --listen=127.0.0.1:0 --port_file="$WORK/port" --threads=0 "$@" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    [[ -s $WORK/port ]] && break
    sleep 0.05
  done
  PORT=$(cat "$WORK/port")
  peak_rss_anon "$SERVER_PID" "$WORK/server.peak" &
  SAMPLER_PID=$!
}
stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SERVER_PID=
}
# A user-space copy of file $1 with fsync; prints its seconds.
copy_seconds() {
  local t0 t1
  t0=$(now)
  dd if="$1" of="$WORK/copy" bs=4M conv=fsync status=none
  t1=$(now)
  rm -f "$WORK/copy"
  calc "$t1 - $t0"
}
# Runs rtnq quantize on $1 with the remaining arguments, output $WORK/out; prints
# "seconds client_peak_kib".
quantize_run() {
  local in=$1 t0 t1 pid
  shift
  rm -rf "$WORK/out" "$WORK/out.partial"
  t0=$(now)
  "$rtnq" quantize "$in" -o "$WORK/out" --quiet "$@" >"$WORK/client.log" 2>&1 &
  pid=$!
  peak_rss_anon "$pid" "$WORK/client.peak"
  wait "$pid" || { cat "$WORK/client.log" >&2; exit 1; }
  t1=$(now)
  rm -rf "$WORK/out"
  echo "$(calc "$t1 - $t0") $(cat "$WORK/client.peak")"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
mib() { calc "int($1 / 1024)"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$WORK/results.txt
: >"$results"
synth_flags=()
suffix=
if [[ $EMBEDDINGS == 0 ]]; then
  synth_flags=(--no-embeddings)
  suffix=-noemb
fi
for shape in $SHAPES; do
  dir=$WORK/$shape$suffix
  if [[ ! -f $dir/model.safetensors ]]; then
    rm -rf "$dir"
    nice "$rtnq" synth -o "$dir" --shape "$shape" "${synth_flags[@]}" >/dev/null
  fi
  in=$dir/model.safetensors
  bytes=$(stat -c %s "$in")
  # The bytes that go through the server: the tensors a default run quantizes.
  "$rtnq" quantize "$in" -o "$WORK/out" --quiet --report "$WORK/report.json" >/dev/null
  rm -rf "$WORK/out"
  sent=$(python3 -c 'import json, sys
print(sum(t["bytes_in"] for t in json.load(open(sys.argv[1]))["tensors"] if t["action"] == "quantized"))' \
    "$WORK/report.json")
  echo
  echo "== $shape: $in, $(calc "$bytes / 2^30") GiB, of which $(calc "$sent / 2^30") GiB quantized"
  printf "%-6s %-8s %4s  %8s %7s %9s %11s %11s\n" format mode reps seconds GB/s vs_copy client_MiB \
    server_MiB
  copies=()
  for rep in $(seq "$REPS"); do
    for fmt in $FORMATS; do
      for mode in local $(for s in $STREAMS; do echo "s$s"; done); do
        copies+=("$(copy_seconds "$in")")
        if [[ $mode == local ]]; then
          quantize_run "$in" --format "$fmt" >"$WORK/run.txt"
          srv=0
        else
          start_server
          quantize_run "$in" --format "$fmt" --server "127.0.0.1:$PORT" --streams "${mode#s}" \
            >"$WORK/run.txt"
          stop_server
          srv=$(cat "$WORK/server.peak")
        fi
        read -r secs client <"$WORK/run.txt"
        echo "$shape $fmt $mode $rep $secs $client $srv ${copies[-1]}" >>"$results"
        printf "%-6s %-8s %4s  %8.2f %7.3f %9s %11s %11s\n" "$fmt" "$mode" "$rep" "$secs" \
          "$(calc "$bytes / $secs / 1e9")" "(copy $(printf %.2f "${copies[-1]}") s)" \
          "$(mib "$client")" "$(mib "$srv")"
      done
    done
  done
  copy=$(printf "%s\n" "${copies[@]}" | median)
  echo "copy+fsync of the input: median $(printf %.2f "$copy") s = $(calc "$bytes / $copy / 1e9") GB/s over ${#copies[@]} copies"
  echo
  echo_s=()
  if [[ -x $echo_bench ]]; then
    streams_csv=$(echo "$STREAMS" | tr ' ' ',')
    "$echo_bench" --mode=raw --echo_divisor=1 --bytes="$((sent < (1 << 30) ? sent : (1 << 30)))" \
      --streams="$streams_csv" --repeat=1 >"$WORK/echo.txt"
    for n in $STREAMS; do
      echo_s+=("$(awk -v n="$n" '$2 == "streams=" n && $3 == "median" {print $4}' "$WORK/echo.txt")")
    done
    echo "raw gRPC echo, as many bytes back as in: $(for i in "${!echo_s[@]}"; do
      printf "%s streams %s GB/s; " "$(echo "$STREAMS" | cut -d' ' -f$((i + 1)))" "${echo_s[$i]}"; done)"
  fi
  echo
  echo "| $shape | mode | wall s | GB/s | x copy | vs local | GB/s via server | client RssAnon MiB | server RssAnon MiB |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for fmt in $FORMATS; do
    local_secs=$(awk -v s="$shape" -v f="$fmt" '$1==s && $2==f && $3=="local" {print $5}' "$results" | median)
    for mode in local $(for s in $STREAMS; do echo "s$s"; done); do
      sel=$(awk -v s="$shape" -v f="$fmt" -v m="$mode" '$1==s && $2==f && $3==m' "$results")
      secs=$(echo "$sel" | awk '{print $5}' | median)
      client=$(echo "$sel" | awk '{print $6}' | sort -g | tail -1)
      srv=$(echo "$sel" | awk '{print $7}' | sort -g | tail -1)
      srv_mib=-
      via=-
      if [[ $mode != local ]]; then
        srv_mib=$(mib "$srv")
        via=$(printf %.3f "$(calc "$sent / $secs / 1e9")")
      fi
      printf "| %s | %s | %.2f | %.3f | %.2f | %.2f | %s | %s | %s |\n" "$fmt" "$mode" "$secs" \
        "$(calc "$bytes / $secs / 1e9")" "$(calc "$secs / $copy")" \
        "$(calc "$secs / $local_secs")" "$via" "$(mib "$client")" "$srv_mib"
    done
  done
done

if [[ $OVERHEAD == 1 ]]; then
  # 2,000 tensors of [8, 64] bf16 (1 KiB each) and a weight_config with an exact entry for every
  # other one: what a session costs per tensor once the bytes are negligible.
  small=$WORK/small2000
  if [[ ! -f $small/model.safetensors ]]; then
    mkdir -p "$small"
    python3 - "$small" <<'PY'
import json, random, struct, sys
random.seed(1)
n, rows, cols = 2000, 8, 64
size = rows * cols * 2
specs = {f"model.layers.{i}.mlp.up_proj.weight": {"dtype": "BF16", "shape": [rows, cols],
         "data_offsets": [i * size, (i + 1) * size]} for i in range(n)}
header = json.dumps(specs).encode()
header += b" " * (-len(header) % 8)
def bf16(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16
block = struct.pack(f"<{rows * cols}H", *[bf16(random.gauss(0, 0.02)) for _ in range(rows * cols)])
with open(sys.argv[1] + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + block * n)
wc = {f"model.layers.{2 * i}.mlp.up_proj": {"bits": 8, "scheme": "sym"} for i in range(1000)}
json.dump({"bits": 4, "group_size": 32, "weight_config": wc}, open(sys.argv[1] + "/config.json", "w"))
PY
  fi
  echo
  echo "== overhead: 2000 tensors of [8, 64] bf16, weight_config of 1000 entries"
  echo "| mode | server flags | wall s | ms per tensor | config compilations | streams opened |"
  echo "|---|---|---|---|---|---|"
  quantize_run "$small/model.safetensors" --config "$small/config.json" >"$WORK/run.txt"
  read -r secs _ <"$WORK/run.txt"
  printf "| local | - | %.2f | %.3f | - | - |\n" "$secs" "$(calc "$secs * 1000 / 2000")"
  for flags in "" "--session_cache_entries=0"; do
    for s in $STREAMS; do
      # shellcheck disable=SC2086 # $flags is empty or one flag
      start_server --metrics_listen=127.0.0.1:0 $flags
      quantize_run "$small/model.safetensors" --config "$small/config.json" \
        --server "127.0.0.1:$PORT" --streams "$s" >"$WORK/run.txt"
      read -r secs _ <"$WORK/run.txt"
      mport=$(sed -n 's/.*metrics_port=\([0-9]*\).*/\1/p' "$WORK/server.log" | head -1)
      metrics=$(curl -s "http://127.0.0.1:$mport/metrics")
      stop_server
      compiled=$(echo "$metrics" | awk '/^rtnq_session_config_compilations_total/ {print $2}')
      opened=$(echo "$metrics" | awk '/^rtnq_stream_duration_seconds_count/ {print $2}')
      printf "| server, %s streams | %s | %.2f | %.3f | %s | %s |\n" "$s" "${flags:-(defaults)}" \
        "$secs" "$(calc "$secs * 1000 / 2000")" "$compiled" "$opened"
    done
  done
fi
echo
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
