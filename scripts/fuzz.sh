#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan) into ${FUZZ_BUILD_DIR:-build-fuzz},
# fuzzes each for SECONDS_PER_TARGET (default 60; 0 = skip fuzzing), then always replays each seed
# corpus (tests/fuzz/corpus/<target>/). Exits non-zero on any crash, leak or sanitizer report; the
# reproducer is left as crash-*/leak-*/timeout-* in ${FUZZ_BUILD_DIR}/findings/<target>/.
# New inputs the fuzzer finds go to ${FUZZ_BUILD_DIR}/corpus/<target>/ (not the repo's seed corpus).
# A dictionary tests/fuzz/<target>.dict, when present, guides the mutations.
# Extra arguments go to every libFuzzer run (e.g. -jobs=2, -max_len=4096); `--configure-only` as
# the only extra argument just configures the build directory (scripts/test.sh builds all of it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DRTNQ_FUZZ=ON \
  -DRTNQ_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
if [ "${1:-}" = "--configure-only" ]; then exit 0; fi
# Every target registered with rtnq_add_fuzzer has a ctest fuzz_<target>_corpus.
mapfile -t TARGETS < <(ctest --test-dir "$BUILD_DIR" -N -L fuzz |
  sed -n 's/^ *Test *#[0-9]*: fuzz_\(.*\)_corpus$/\1/p')
if [ ${#TARGETS[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets registered" >&2
  exit 1
fi
ninja -C "$BUILD_DIR" "${TARGETS[@]}"

# Leak checking stays on (the default); a report aborts the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
for t in "${TARGETS[@]}"; do
  seeds=tests/fuzz/corpus/$t
  if [ "$SECONDS_PER_TARGET" -gt 0 ]; then
    work=$BUILD_DIR/corpus/$t
    findings=$BUILD_DIR/findings/$t
    mkdir -p "$work" "$findings"
    echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
    dict=()
    if [ -f "tests/fuzz/$t.dict" ]; then dict=(-dict="tests/fuzz/$t.dict"); fi
    "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" "$@" "$work" "$seeds"
  fi
  echo "== corpus $t"
  "$BUILD_DIR/tests/fuzz/$t" -runs=0 "$seeds"
done
echo "fuzz.sh: ${#TARGETS[@]} targets, no findings"
