#!/usr/bin/env bash
# The README's test command (CI runs it via .ci/run): installs dependencies, then runs the stages
# named in RTNQ_CI_STAGES (default: normal asan tsan fuzz, about 35 minutes on 2 cores):
#   normal  scripts/build.sh into ${BUILD_DIR:-build}, then the whole ctest suite (extra
#           arguments to this script go to this ctest)
#   asan    build-asan/, clang with -DRTNQ_FUZZ=ON (ASan+UBSan everywhere, the fuzz targets as
#           libFuzzer binaries): the whole ctest suite
#   tsan    build-tsan/, -DRTNQ_SANITIZE=thread: the server and client suites (RTNQ_TSAN_LABELS
#           narrows them, e.g. to 'server'); reports whose frames are in the uninstrumented
#           Debian libraries (oneTBB, gRPC, ...) are suppressed (tests/tsan.supp)
#   fuzz    scripts/fuzz.sh in build-asan/ (the same build, nothing more to compile): each libFuzzer
#           target for RTNQ_FUZZ_SECONDS (default 20) s, then its seed corpus
# Developers: `RTNQ_CI_STAGES=normal scripts/test.sh` runs just the ordinary suite. Build
# directories are reused between runs; each stage builds only what its tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGES=${RTNQ_CI_STAGES:-normal asan tsan fuzz}
JOBS=$(nproc)
scripts/setup-deps.sh

stage() {
  echo "== stage $1 ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
}

for s in $STAGES; do
  start=$SECONDS
  case "$s" in
    normal)
      stage normal
      scripts/build.sh
      ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$JOBS" "$@"
      ;;
    asan)
      stage asan
      # One instrumented build serves both the suite and the fuzzers (scripts/fuzz.sh configures
      # build-asan with these same options).
      FUZZ_BUILD_DIR=build-asan scripts/fuzz.sh 0 --configure-only
      ninja -C build-asan
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        ctest --test-dir build-asan --output-on-failure -j "$JOBS"
      ;;
    tsan)
      stage tsan
      # RTNQ_TSAN_LABELS: the ctest labels to run, 'server|client' by default (the reactors, work
      # pool, budgets and registry, and the clients that drive them, where the threads meet).
      labels=${RTNQ_TSAN_LABELS:-server|client}
      cmake -S . -B build-tsan -G Ninja -DRTNQ_SANITIZE=thread -DRTNQ_BUILD_BENCH=OFF >/dev/null
      targets="rtnq-server rtnq_server_tests"
      case "$labels" in *client*) targets="$targets rtnq tests/client/all" ;; esac
      ninja -C build-tsan $targets
      # TSan slows the service tests 5-10x: tests scale their deadlines by RTNQ_TEST_TIME_SCALE.
      # history_size=7 keeps enough history to restore both stacks of a report (a TBB worker's
      # stack that cannot be restored cannot be matched by the suppressions either).
      TSAN_OPTIONS=${TSAN_OPTIONS:-suppressions=$PWD/tests/tsan.supp:history_size=7:second_deadlock_stack=1} \
        RTNQ_TEST_TIME_SCALE=${RTNQ_TEST_TIME_SCALE:-3} \
        ctest --test-dir build-tsan --output-on-failure -j "$JOBS" -L "$labels"
      ;;
    fuzz)
      stage fuzz
      FUZZ_BUILD_DIR=build-asan scripts/fuzz.sh "${RTNQ_FUZZ_SECONDS:-20}"
      ;;
    *)
      echo "test.sh: unknown stage '$s' in RTNQ_CI_STAGES (normal, asan, tsan, fuzz)" >&2
      exit 2
      ;;
  esac
  echo "== stage $s done in $((SECONDS - start)) s"
done
