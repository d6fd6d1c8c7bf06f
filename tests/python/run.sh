#!/usr/bin/env bash
# The Python client's test suite (ctest: python_client): installs python/ into a venv in the
# build directory exactly as scripts/install-python.sh does, then runs pytest against the
# build's rtnq-server and rtnq. Arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="$(cd "${RTNQ_BUILD_DIR:-$ROOT/build}" && pwd)"
VENV="$BUILD_DIR/python-venv"
# Debian's interpreter: grpcio, protobuf, numpy, torch and pytest are Debian packages.
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
(cd "$ROOT" && RTNQ_BUILD_DIR="$BUILD_DIR" "$VENV/bin/python" -m pip install --quiet \
  --no-build-isolation --no-index ./python)
cd "$ROOT/tests/python"
RTNQ_BUILD_DIR="$BUILD_DIR" exec "$VENV/bin/python" -m pytest -p no:cacheprovider -p no:hypothesispytest \
  -o faulthandler_timeout=240 -q "$@"
