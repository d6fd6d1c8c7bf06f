#!/usr/bin/env bash
# Installs the rtnq Python package (python/) offline: the Debian packages, the C API library
# (librtnq_c.so), then `pip install` into a venv that also sees Debian's grpcio, protobuf, numpy
# and torch (Debian's own Python is externally managed, PEP 668, so not into it directly).
#   VENV       the venv to create or reuse (default .venv); its bin/python runs rtnq
#   BUILD_DIR  the CMake build directory (default build)
#   SKIP_SETUP=1 skips apt
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-0}" = 1 ] || scripts/setup-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja >/dev/null
ninja -C "$BUILD_DIR" rtnq_c
VENV=${VENV:-.venv}
# /usr/bin/python3 explicitly: the Debian packages live there, not in another python3 on PATH.
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
RTNQ_BUILD_DIR="$(cd "$BUILD_DIR" && pwd)" "$VENV/bin/python" -m pip install --quiet \
  --no-build-isolation --no-index ./python
"$VENV/bin/python" -c 'import rtnq; print("rtnq", rtnq.__version__, "installed in '"$VENV"'")'
