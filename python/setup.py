"""Builds the rtnq package: generated gRPC stubs and the C API library go into the wheel.

Nothing generated is checked in. At build time:
  * rtnq/v1/rtnq_pb2.py and rtnq_pb2_grpc.py are generated from ../proto/rtnq/v1/rtnq.proto with
    Debian's protoc and grpc_python_plugin (Debian's grpc_tools cannot compile proto3 `optional`);
  * librtnq_c.so (client/capi, the checkpoint rules and the core) is taken from the CMake build
    directory ($RTNQ_BUILD_DIR, default ../build), built there with CMake + Ninja when missing.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROTO_ROOT = REPO / "proto"
PROTOS = ["rtnq/v1/rtnq.proto"]
LIBRARY = "librtnq_c.so"


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"rtnq: {name} not found; run scripts/setup-deps.sh (Debian packages "
                         "protobuf-compiler and protobuf-compiler-grpc)")
    return path


def generate_stubs(out_dir: Path):
    protoc = _tool("protoc")
    plugin = _tool("grpc_python_plugin")
    for proto in PROTOS:
        subprocess.run([protoc, f"--proto_path={PROTO_ROOT}", f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}",
                        f"--plugin=protoc-gen-grpc_python={plugin}", proto], check=True)
    # The grpc stub imports "rtnq.v1.rtnq_pb2": rtnq.v1 is a subpackage of this package.
    (out_dir / "rtnq" / "v1" / "__init__.py").touch()


def find_or_build_library() -> Path:
    explicit = os.environ.get("RTNQ_C_LIBRARY")
    if explicit:
        return Path(explicit)
    build_dir = Path(os.environ.get("RTNQ_BUILD_DIR", REPO / "build"))
    lib = build_dir / "client" / LIBRARY
    if not lib.exists():
        subprocess.run(["cmake", "-S", str(REPO), "-B", str(build_dir), "-G", "Ninja"], check=True)
        subprocess.run(["ninja", "-C", str(build_dir), "rtnq_c"], check=True)
    return lib


class BuildWithGenerated(build_py):
    def run(self):
        super().run()
        out = Path(self.build_lib)
        generate_stubs(out)
        shutil.copy2(find_or_build_library(), out / "rtnq" / LIBRARY)


setup(cmdclass={"build_py": BuildWithGenerated})
