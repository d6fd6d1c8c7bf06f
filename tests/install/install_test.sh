#!/usr/bin/env bash
# Installs the build into a temporary prefix (`cmake --install`), checks the installed include
# tree, then configures, builds and runs tests/install/consumer against it: find_package(rtnq)
# and rtnq::core / rtnq::client as an external project uses them.
# Usage: install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CXX_COMPILER MAKE_PROGRAM [LAUNCHER]
set -euo pipefail
build=$1 consumer=$2 cxx=$3 make_program=$4 launcher=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
include=$(find "$prefix" -maxdepth 1 -name include)
test -f "$prefix/lib/cmake/rtnq/rtnqConfig.cmake" || test -f "$prefix"/lib*/cmake/rtnq/rtnqConfig.cmake \
  || { echo "no rtnqConfig.cmake under $prefix" >&2; exit 1; }
# Library users see core/, client/ and rtnq/ only; no installed header reaches tests/ or bench/.
dirs=$(cd "$include" && ls | tr '\n' ' ')
[[ $dirs == "client core rtnq " ]] || { echo "unexpected include dirs: $dirs" >&2; exit 1; }
if grep -rEn '#include "(tests|bench|server|proto)/' "$include"; then
  echo "installed headers include files that are not installed" >&2
  exit 1
fi

cmake -S "$consumer" -B "$tmp/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$make_program" \
  -DCMAKE_CXX_COMPILER="$cxx" ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"} \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build"
"$tmp/build/rtnq_consumer"
