#!/usr/bin/env python3
"""Writes the seed corpus of server_messages_fuzzer (tests/fuzz/corpus/server_messages_fuzzer/).

The input format is the fuzzer's (server_messages_fuzzer.cc): 6 bytes of limits, then
operations of one byte (stream << 5 | kind) with their arguments. Rerun after changing it.
"""
import os
import struct

CONFIG, HEADER, CHUNK, CHUNK_NAN, RAW, EMPTY_REQUEST, EMPTY_CHUNK = 0, 1, 2, 3, 4, 5, 6
HALF_CLOSE, CANCEL, WRITE_OK, WRITE_FAIL, RUN_ALL, SWEEP, WAKE, RUN_ONE = 7, 8, 9, 12, 13, 14, 15, 16
COLS = [1, 3, 8, 32, 64, 100, 256, 1000]
ELEM = {0: 4, 1: 2, 2: 2}
FAKE, CODES, CODES_GS1, INC, GPTQ, DIM0, MSE, DQ, METRICS, NONFINITE, PATTERNS, BAD, INC_CD0 = range(13)


def op(stream, kind, *args):
    return bytes([stream << 5 | kind]) + bytes(args)


def limits(streams=1, g=7, s=7, m=5, t=7, r=0):
    # global 1 KiB << g, stream 512 << s, message 256 << m, tensor 1 KiB << t, reservation
    return bytes([streams - 1, g, s, m, t, r])


def pump(stream, n=24):
    return (op(stream, RUN_ALL) + op(stream, WRITE_OK)) * n


def tensor(stream, name, dtype, rows, cols, chunk, seed=1, nan=False):
    return op(stream, HEADER, name, dtype, rows, cols, 0) + op(stream, RUN_ALL) + chunks(
        stream, ELEM[dtype] * (1 + rows % 8) * COLS[cols % 8], chunk, seed, nan)


def chunks(stream, total, chunk, seed=1, nan=False):
    out = b""
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        out += bytes([stream << 5 | (CHUNK_NAN if nan else CHUNK)]) + struct.pack("<HB", n, seed)
        out += op(stream, RUN_ALL) + op(stream, WRITE_OK) * 4
        sent += n
    return out


def session(stream, config, tensors, chunk=256):
    out = op(stream, CONFIG, config) + op(stream, RUN_ALL) + op(stream, WRITE_OK)
    for i, (dtype, rows, cols) in enumerate(tensors):
        out += tensor(stream, i, dtype, rows, cols, chunk, seed=i)
    return out + pump(stream) + op(stream, HALF_CLOSE) + pump(stream)


def invalid_utf8_header():
    name = b"t\xff\xfe.weight"
    header = b"\x0a" + bytes([len(name)]) + name + b"\x12\x03F32" + b"\x20\x04"
    request = b"\x12" + bytes([len(header)]) + header
    return op(0, RAW, len(request)) + request


SEEDS = {
    "fake_two_tensors": limits() + session(0, FAKE, [(0, 3, 4), (1, 1, 6)]),
    "codes_bf16": limits() + session(0, CODES, [(1, 7, 4)]),
    "codes_gs1_expanding": limits(g=2, s=1, m=1) + session(0, CODES_GS1, [(1, 3, 6)], chunk=200),
    "packed_inc": limits() + session(0, INC, [(0, 7, 4)]),
    "packed_inc_dim0": limits() + session(0, INC_CD0, [(0, 7, 3)]),
    "packed_gptq": limits() + session(0, GPTQ, [(0, 7, 4)]),
    "buffered_dim0_over_stream_budget": limits(g=3, s=0, m=1)
    + session(0, DIM0, [(0, 7, 4)], chunk=500),
    "mse_search": limits() + session(0, MSE, [(0, 1, 4)]),
    "double_quant": limits() + session(0, DQ, [(0, 3, 4)]),
    "metrics_only": limits() + session(0, METRICS, [(2, 1, 3)]),
    "pass_nonfinite": limits()
    + op(0, CONFIG, NONFINITE) + op(0, RUN_ALL) + tensor(0, 0, 0, 1, 4, 256, nan=True)
    + pump(0) + op(0, HALF_CLOSE) + pump(0),
    "nan_in_row_stream": limits()
    + op(0, CONFIG, FAKE) + op(0, RUN_ALL) + tensor(0, 0, 0, 3, 4, 100, nan=True)
    + tensor(0, 1, 0, 0, 3, 100) + pump(0) + op(0, HALF_CLOSE) + pump(0),
    "weight_config_patterns": limits()
    + session(0, PATTERNS, [(0, 1, 4), (0, 1, 4), (0, 1, 4)]),
    "bad_config": limits() + op(0, CONFIG, BAD) + op(0, RUN_ALL) + pump(0, 4),
    # [1, 1000] F32 rows (4000 bytes) on three streams against a 2 KiB global budget: each row is
    # reserved whole, alone when it exceeds the budgets.
    # [1, 1000] F32 rows (4000 bytes) on two streams against a 2 KiB global budget: each row is
    # reserved whole, alone when it exceeds the budgets; the second waits in line.
    "wide_rows_two_streams": limits(streams=2, g=1, s=0, m=0, t=3)
    + b"".join(op(k, CONFIG, FAKE) + op(k, RUN_ALL) + op(k, WRITE_OK) for k in range(2))
    + op(0, HEADER, 0, 0, 0, 7, 0) + op(0, RUN_ALL) + op(1, HEADER, 0, 0, 0, 7, 0) + op(1, RUN_ALL)
    + chunks(0, 4000, 256) + pump(0) + op(1, WAKE) + chunks(1, 4000, 256) + pump(1)
    + b"".join(op(k, HALF_CLOSE) for k in range(2)) + pump(0) + pump(1),
    "reservation_refused": limits(t=5, r=1) + session(0, DIM0, [(0, 7, 6)]),
    "tensor_too_large": limits() + op(0, CONFIG, FAKE) + op(0, RUN_ALL)
    + op(0, HEADER, 0, 0, 1, 4, 3) + pump(0, 4),
    "invalid_utf8_name": limits()
    + op(0, CONFIG, FAKE) + op(0, RUN_ALL) + op(0, WRITE_OK) + tensor(0, 0, 0, 1, 4, 256)
    + invalid_utf8_header() + pump(0),
    "cancel_mid_tensor": limits()
    + op(0, CONFIG, DIM0) + op(0, RUN_ALL) + op(0, HEADER, 0, 0, 7, 6, 0) + op(0, RUN_ALL)
    + op(0, CHUNK) + struct.pack("<HB", 256, 1) + op(0, CANCEL) + pump(0, 2),
    "half_close_mid_tensor": limits()
    + op(0, CONFIG, FAKE) + op(0, RUN_ALL) + op(0, HEADER, 0, 0, 7, 6, 0) + op(0, RUN_ALL)
    + op(0, CHUNK) + struct.pack("<HB", 256, 1) + op(0, HALF_CLOSE) + pump(0),
    "slow_loris_empty_chunks": limits()
    + op(0, CONFIG, FAKE) + op(0, RUN_ALL) + op(0, WRITE_OK) + op(0, HEADER, 0, 0, 7, 6, 0)
    + op(0, RUN_ALL) + (op(0, EMPTY_CHUNK) + op(0, SWEEP, 10)) * 12,
    "empty_request_and_chunk_first": limits() + op(0, EMPTY_CHUNK) + pump(0, 2),
    "third_stream_refused": limits(streams=3)
    + b"".join(op(k, CONFIG, FAKE) + op(k, RUN_ALL) for k in range(3)) + pump(2, 2),
    "idle_writer": limits()
    + op(0, CONFIG, FAKE) + op(0, RUN_ALL) + op(0, SWEEP, 60) + op(0, WRITE_OK) + op(0, RUN_ALL),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                       "server_messages_fuzzer")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
