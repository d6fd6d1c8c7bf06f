#!/usr/bin/env bash
# Installs the Debian 12 packages rtnq builds with. Idempotent: does nothing when all are present.
# The Dockerfile and CI call this same script, so the package list lives in one place.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libabsl-dev libtbb-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libisal-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc prometheus-cpp-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # linear-time regexes for weight_config patterns
  libre2-dev
  # fuzzers (tests/fuzz, scripts/fuzz.sh): clang's libFuzzer and sanitizer runtimes
  clang libfuzzer-14-dev
  python3 openssl
  # the independent readers of packed layouts (tests/core/layout_reader_test.py)
  # FP8 decoding checked against numpy (tests/client/moe_fp8_cli_test.py)
  python3-numpy
  # deploy tests (tests/deploy/): compose file validation, promtool + a real Prometheus for the
  # scale-out test, YAML parsing of the manifests, HTTP queries
  docker-compose prometheus python3-yaml curl
  # the Python client (python/, tests/python/): gRPC, stubs, numpy/torch tensors, a venv to
  # install into without network, pytest; tqdm for its optional progress bar
  python3-grpcio python3-protobuf python3-numpy python3-torch python3-pytest python3-tqdm
  python3-venv python3-pip python3-setuptools python3-wheel
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
