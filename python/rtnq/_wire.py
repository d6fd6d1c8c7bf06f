"""The rtnq.v1 wire format as the clients use it: the session config from a plan, tensor
requests framed straight from the tensor's memory, responses decoded into results.

Request chunks are encoded by hand (one copy of each chunk, from the tensor's memory into the
message) and output chunks decoded by hand (one copy, from the message into the output array);
every other message goes through the generated protobuf classes."""

from . import _proto
from .errors import RtnqError

pb = _proto.pb
CHUNK_BYTES = 1 << 20


def session_config(plan: dict):
    """The SessionConfig of a plan (rtnq_plan's reply) or a run's session spec: formats map to the
    wire by enum value name, so new C++ formats need no change here."""
    cfg = pb.SessionConfig(config_json=plan["config_json"],
                           output_form=pb.OutputForm.Value(plan["output_form"]))
    if plan["output_form"] == "OUTPUT_FORM_PACKED_GPTQ":
        cfg.gptq_format = pb.GptqFormat.Value(plan["gptq_format_wire"])
    if plan["output_form"] == "OUTPUT_FORM_PACKED_INC":
        cfg.compression_dim = int(plan["compression_dim"])
    return pb.QuantizeRequest(config=cfg)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tensor_messages(name, dtype, shape, data: memoryview, chunk_bytes=CHUNK_BYTES):
    """Yields the serialized header and chunk requests of one tensor. Chunks are slices of `data`:
    the tensor itself is never copied whole."""
    header = pb.QuantizeRequest(header=pb.TensorHeader(name=name, dtype=dtype, shape=shape,
                                                       total_bytes=data.nbytes))
    yield header.SerializeToString()
    size = data.nbytes
    for off in range(0, size, chunk_bytes):
        n = min(chunk_bytes, size - off)
        # QuantizeRequest.chunk (field 3) { TensorChunk.data (field 1) }
        inner = b"\x0a" + _varint(n)
        yield b"".join((b"\x1a", _varint(len(inner) + n), inner, data[off:off + n]))


def serialize_request(msg) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


class Chunk:
    """A decoded OutputChunk: `data` is a view into the received message."""

    __slots__ = ("output_index", "offset", "data")

    def __init__(self, output_index, offset, data):
        self.output_index, self.offset, self.data = output_index, offset, data


def deserialize_response(raw: bytes):
    """QuantizeResponse, or a Chunk for the common OutputChunk case (no copy of its bytes)."""
    if raw[:1] == b"\x1a":  # QuantizeResponse.chunk (field 3, length-delimited)
        try:
            length, pos = _read_varint(raw, 1)
            end = pos + length
            if end == len(raw):
                mv = memoryview(raw)
                index = offset = 0
                data = mv[0:0]
                while pos < end:
                    tag, pos = _read_varint(raw, pos)
                    if tag == 0x08:
                        index, pos = _read_varint(raw, pos)
                    elif tag == 0x10:
                        offset, pos = _read_varint(raw, pos)
                    elif tag == 0x1A:
                        n, pos = _read_varint(raw, pos)
                        data = mv[pos:pos + n]
                        pos += n
                    else:
                        raise ValueError("unknown field")
                if pos == end:
                    return Chunk(index, offset, data)
        except (IndexError, ValueError):
            pass
    return pb.QuantizeResponse.FromString(raw)


def enum_name(value: str) -> str:
    """QUANT_DTYPE_FP4_E2M1 -> fp4_e2m1, SCHEME_SYM -> sym: the config's own spelling."""
    for prefix in ("QUANT_DTYPE_", "SCHEME_"):
        if value.startswith(prefix):
            return value[len(prefix):].lower()
    return value.lower()


def config_dict(cfg) -> dict:
    """A QuantConfig message as a config dict with INC's key names (the CLI's --report form)."""
    out = {}
    for field in cfg.DESCRIPTOR.fields:
        value = getattr(cfg, field.name)
        if field.enum_type is not None:
            value = enum_name(field.enum_type.values_by_number[value].name)
        out[field.name] = value
    return out


def json_number(x: float):
    """Non-finite floats as the C++ reports write them ("inf")."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


class Assembly:
    """Collects one tensor's answer. `sink.begin(result_header)` returns one writable buffer per
    output; chunks are copied into them; the metrics end it. A TensorError raises RtnqError
    (the stream stays usable)."""

    def __init__(self, name, sink):
        self.name = name
        self.sink = sink
        self.header = None
        self.buffers = []
        self.filled = []

    def feed(self, resp) -> bool:
        """Returns True when the tensor's answer is complete."""
        if isinstance(resp, Chunk):
            if self.header is None or resp.output_index >= len(self.buffers):
                raise self._broken(f"output chunk {resp.output_index} before its header")
            i = resp.output_index
            buf, n = self.buffers[i], len(resp.data)
            if resp.offset != self.filled[i] or resp.offset + n > len(buf):
                raise self._broken(f"output chunk out of order (index {i}, offset {resp.offset})")
            buf[resp.offset:resp.offset + n] = resp.data
            self.filled[i] += n
            return False
        kind = resp.WhichOneof("kind")
        if kind == "result":
            self.header = resp.result
            self.buffers = self.sink.begin(resp.result)
            self.filled = [0] * len(self.buffers)
            return False
        if kind == "metrics":
            for i, buf in enumerate(self.buffers):
                if self.filled[i] != len(buf):
                    raise self._broken(f"output {self.header.outputs[i].name} incomplete")
            if self.header is None:
                raise self._broken("metrics without a result header")
            self.sink.finish(self.header, resp.metrics)
            return True
        if kind == "error":
            raise RtnqError(resp.error.code, resp.error.message, self.name)
        raise self._broken(f"unexpected {kind} message")

    def _broken(self, what):
        return RtnqError(15, f"tensor {self.name!r}: {what}", self.name)  # DATA_LOSS


def result_header(header, metrics, served_by: str, attempts: int) -> dict:
    """The C API's result header (rtnq_builder_set) from the server's messages."""
    return {
        "quantized": header.quantized, "skip_reason": header.skip_reason,
        "config": config_dict(header.config), "decided_by": header.decided_by,
        "match_kind": header.match_kind, "served_by": served_by, "attempts": attempts,
        "metrics": {"elements": metrics.elements, "groups": metrics.groups,
                    "mse": json_number(metrics.mse),
                    "max_abs_error": json_number(metrics.max_abs_error),
                    "snr_db": json_number(metrics.snr_db),
                    "clip_ratio": json_number(metrics.clip_ratio),
                    "quantize_seconds": metrics.quantize_seconds,
                    "server_seconds": metrics.server_seconds},
    }
