#!/usr/bin/env bash
# End-to-end benchmark on loopback: the raw gRPC transport ceiling (an Echo service, 1 MiB chunks
# up, 1/8 of the bytes back), rtnq-server quantizing ~1 GiB of Llama-shaped float32 tensors to
# int4 g32 packed GPTQ with 1 and 4 streams, and the server's peak RSS under 32 streams with a
# 1 GiB memory budget. Prints every run, a table of medians and the ratios.
#
#   bench/e2e.sh [BUILD_DIR] [extra rtnq_e2e_bench flags]   (default build-bench, Release)
#   e.g. bench/e2e.sh build-bench --repeat=5 --streams=1,2,4
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
shift || true
bin=$build/bench/rtnq_e2e_bench
for f in "$bin" "$build/server/rtnq-server"; do
  [[ -x $f ]] || { echo "no $f: ninja -C $build rtnq_e2e_bench rtnq-server" >&2; exit 1; }
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$bin" --server="$build/server/rtnq-server" --bytes=$((1 << 30)) --streams=1,4 --repeat=3 \
  --rss_streams=32 --rss_bytes=$((2 << 30)) --memory_budget_bytes=$((1 << 30)) "$@" || status=$?
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
