"""The generated rtnq.v1 stubs (made at install time from proto/rtnq/v1/rtnq.proto)."""

try:
    from .v1 import rtnq_pb2 as pb
    from .v1 import rtnq_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - only in an uninstalled source tree
    raise ImportError("rtnq: the generated gRPC stubs are missing; install the package with "
                      "scripts/install-python.sh (they are generated at build time)") from e

__all__ = ["pb", "pb_grpc"]
