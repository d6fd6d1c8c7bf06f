#!/usr/bin/env bash
# rtnq plan on the synthetic Llama-7B layer (`rtnq synth --shape llama7b-layer`, BF16):
#  1. speed: measuring every selected tensor under 4 candidates with 1 thread and all threads
#     (wall and CPU seconds, GB/s of weights measured = input bytes of the measured tensors per
#     wall second, each read once for all candidates);
#  2. quality at equal size: for every candidate used uniformly, a plan whose budget is exactly
#     that candidate's bytes (both objectives), reporting the size-weighted mean SNR and total
#     squared error of both. The plan is exact, so it is never worse on its own objective.
# Usage: bench/plan.sh [BUILD_DIR]   (env: PLAN_DIR, CANDIDATES, FORMAT, REPS)
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/client/rtnq"
DIR=${PLAN_DIR:-out/bench-plan}
CANDIDATES=${CANDIDATES:-int4:g128:sym,int4:g32:asym,int8:g128:sym,nf4:g64}
FORMAT=${FORMAT:-inc}  # gptq has no nf4 layout
REPS=${REPS:-1}
mkdir -p "$DIR"
[ -f "$DIR/l7/model.safetensors" ] || "$BIN" synth -o "$DIR/l7" --shape llama7b-layer
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$1" "$2"; }

echo "== speed: $CANDIDATES, --format $FORMAT, --target-bpw 4.5"
printf '%-8s %10s %10s %12s %10s\n' threads wall_s cpu_s measured_GB GB/s
for threads in 1 0; do
  for _ in $(seq "$REPS"); do
    /usr/bin/time -f "%e %U %S" -o "$DIR/time.txt" "$BIN" plan "$DIR/l7" --candidates "$CANDIDATES" \
      --target-bpw 4.5 --format "$FORMAT" --threads "$threads" -o "$DIR/speed.json" \
      --report "$DIR/speed-report.json" --quiet
    read -r wall user sys <"$DIR/time.txt"
    bytes=$(field "$DIR/speed-report.json" measured_bytes)
    secs=$(field "$DIR/speed-report.json" measure_seconds)
    printf '%-8s %10.2f %10.2f %12.3f %10.3f\n' "$threads" "$wall" "$(echo "$user + $sys" | bc)" \
      "$(echo "$bytes / 1000000000" | bc -l)" "$(echo "$bytes / $secs / 1000000000" | bc -l)"
  done
done

echo "== quality at the size of each uniform candidate (size-weighted mean SNR, dB; total error)"
printf '%-16s %8s %10s %10s %10s %12s %12s\n' uniform bpw snr_unif snr_plan snr_planS err_unif err_plan
python3 - "$DIR/speed-report.json" <<'PY' >"$DIR/uniform.txt"
import json, sys
r = json.load(open(sys.argv[1]))
for u in r["uniform"]:
    if u["possible"]:
        # A budget of exactly this candidate's bytes (the margin only absorbs float rounding).
        print(u["candidate"], repr(u["bits_per_weight"] + 1e-9), u["snr_mean_db"], u["error"])
PY
while read -r name bpw snr_u err_u; do
  "$BIN" plan "$DIR/l7" --candidates "$CANDIDATES" --target-bpw "$bpw" --format "$FORMAT" \
    -o "$DIR/q.json" --report "$DIR/q-error.json" --quiet
  "$BIN" plan "$DIR/l7" --candidates "$CANDIDATES" --target-bpw "$bpw" --format "$FORMAT" \
    --objective snr -o "$DIR/q.json" --report "$DIR/q-snr.json" --quiet
  printf '%-16s %8.4f %10.3f %10.3f %10.3f %12.5g %12.5g\n' "$name" "$bpw" "$snr_u" \
    "$(field "$DIR/q-error.json" snr_mean_db)" "$(field "$DIR/q-snr.json" snr_mean_db)" "$err_u" \
    "$(field "$DIR/q-error.json" total_error)"
done <"$DIR/uniform.txt"
echo "== budgets between the uniform sizes: the best uniform candidate that fits against the plan"
printf '%-8s %-16s %10s %12s %10s %10s %12s\n' target best_unif snr_unif err_unif snr_plan snr_planS err_plan
for target in ${BETWEEN:-4.75 6.5}; do
  read -r name snr_u err_u < <(python3 - "$DIR/uniform.txt" "$target" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
fit = [r for r in rows if float(r[1]) <= float(sys.argv[2])]
best = max(fit, key=lambda r: float(r[2]))
print(best[0], best[2], best[3])
PY
)
  "$BIN" plan "$DIR/l7" --candidates "$CANDIDATES" --target-bpw "$target" --format "$FORMAT" \
    -o "$DIR/q.json" --report "$DIR/b-error.json" --quiet
  "$BIN" plan "$DIR/l7" --candidates "$CANDIDATES" --target-bpw "$target" --format "$FORMAT" \
    --objective snr -o "$DIR/q.json" --report "$DIR/b-snr.json" --quiet
  printf '%-8s %-16s %10.3f %12.5g %10.3f %10.3f %12.5g\n' "$target" "$name" "$snr_u" "$err_u" \
    "$(field "$DIR/b-error.json" snr_mean_db)" "$(field "$DIR/b-snr.json" snr_mean_db)" \
    "$(field "$DIR/b-error.json" total_error)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
