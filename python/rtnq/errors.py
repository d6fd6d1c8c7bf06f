"""Exceptions of the rtnq client: every failure carries a gRPC status code and the message of
whoever found it (the server, the C++ planner or the transport), naming the tensor and field."""

import grpc

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a canonical code number (absl and gRPC share the numbering)."""
    return _BY_NUMBER.get(int(number), grpc.StatusCode.UNKNOWN)


class RtnqError(Exception):
    """A failed quantization request.

    Attributes:
        code: the grpc.StatusCode (INVALID_ARGUMENT for a bad config or tensor, UNAVAILABLE when
            no server answered, ...).
        details: the message, naming the tensor, field and value where one applies.
        tensor: the tensor concerned, when the failure was one tensor's.
    """

    def __init__(self, code, details: str, tensor: str = ""):
        self.code = code if isinstance(code, grpc.StatusCode) else status_code(code)
        self.details = details
        self.tensor = tensor
        super().__init__(f"{self.code.name}: {details}")

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, tensor: str = "") -> "RtnqError":
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", tensor)


TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
"""Codes retried with backoff, on a new stream (round_robin may pick another replica), as the
C++ client does."""
