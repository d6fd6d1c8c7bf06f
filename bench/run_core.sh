#!/usr/bin/env bash
# Runs rtnq_core_bench and prints one markdown table: GB/s of float input and the ratio to the
# memory-read baseline (same buffer, same thread count, same run) per case, 1 and all threads.
#
#   bench/run_core.sh [BUILD_DIR]          (default build-bench; configure it with Release)
#   env: REPS (default 3, the median is shown), FILTER (a --benchmark_filter regex, default all),
#        JSON (keep Google Benchmark's JSON output at this path)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
bin=$build/bench/rtnq_core_bench
[[ -x $bin ]] || { echo "no $bin: ninja -C $build rtnq_core_bench" >&2; exit 1; }
json=${JSON:-$(mktemp /tmp/rtnq-core-bench.XXXXXX.json)}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" --benchmark_filter="${FILTER:-.}" --benchmark_repetitions="${REPS:-3}" \
  --benchmark_report_aggregates_only=true --benchmark_out="$json" --benchmark_out_format=json \
  >/dev/null 2>"$json.log" || { cat "$json.log" >&2; exit 1; }
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$json" <<'PY'
import json, re, sys
CASES = {0: "int4 asym g32", 1: "int4 sym g128", 2: "int8 sym per-channel", 3: "nf4 g64",
         4: "int4 asym g32 + MSE search", 5: "int4 sym g32 + PackGptq"}
SHAPES = {0: "4096x4096", 1: "11008x4096"}
rows = {}  # (bench, case, shape, dtype) -> {threads: (GB/s, ratio)}
results = json.load(open(sys.argv[1]))["benchmarks"]
for b in results:
    if b.get("error_occurred"):
        print("ERROR %s: %s" % (b["name"], b.get("error_message")))
# The median of the repetitions, or the single run when REPS=1.
have_median = any(b.get("aggregate_name") == "median" for b in results)
for b in results:
    if b.get("aggregate_name", "") != ("median" if have_median else ""):
        continue
    if "bytes_per_second" not in b:
        continue
    name = b["run_name"]
    args = dict((k, int(v)) for k, v in re.findall(r"(\w+):(\d+)", name))
    bench = name.split("/")[0][3:]
    case = {"MemoryRead": "memory read", "GptqPack": "PackGptq alone (int4 sym g32 codes)",
            "LayoutPack": ("PackAwq" if args.get("awq") else "PackCompressedTensors")
                          + " alone (int4 asym g32 codes)"}.get(bench, CASES.get(args.get("case")))
    key = (bench, case, SHAPES[args["shape"]], "bf16" if args["bf16"] else "f32")
    threads = "1" if args.get("threads", 1) == 1 else "all"
    ratio = b.get("mem_ratio", 1.0)
    rows.setdefault(key, {})[threads] = (b["bytes_per_second"] / 1e9, ratio)
print()
print("| benchmark | case | shape | dtype | 1 thread GB/s | ratio | all threads GB/s | ratio | all/1 |")
print("|---|---|---|---|---|---|---|---|---|")
for (bench, case, shape, dtype), t in rows.items():
    one, all_ = t.get("1"), t.get("all")
    cell = lambda v: ("%.2f" % v[0], "%.2f" % v[1]) if v else ("-", "-")
    speedup = "%.2f" % (all_[0] / one[0]) if one and all_ else "-"
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        bench, case, shape, dtype, *cell(one), *cell(all_), speedup))
PY
