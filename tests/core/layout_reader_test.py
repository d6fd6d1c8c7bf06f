#!/usr/bin/python3
"""An independent reader of the compressed-tensors and AWQ layouts rtnq writes.

Written from the format definitions, not from rtnq's writer:
- safetensors: 8-byte little-endian header length, JSON header, raw little-endian data.
- compressed-tensors `pack-quantized` (compressed-tensors compressors/pack_quantized/helpers.py
  pack_to_int32 / unpack_from_int32 and base.py PackedQuantizationCompressor): codes are signed
  in [-2^(b-1), 2^(b-1)-1] and stored +2^(b-1); element i of a row sits at bit position i*b of
  the row's bit stream (weights packed along dim 1, zero points along dim 0); W = (q - zp) * scale
  with one scale per group of `group_size` input columns (`channel`: one per row).
- AWQ GEMM (AutoAWQ awq/utils/packing_utils.py unpack_awq, reverse_awq_order, dequantize_gemm):
  qweight [in, out/8], nibble k of a word read as (w >> 4k) & 15, columns put back in order with
  AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]; W^T = (q - z) * s with z, s per group of input rows.

With --checkpoint PACKED_DIR FAKE_DIR it reads a checkpoint `rtnq quantize` wrote in either
layout, guided by its config.json quantization_config alone, and compares every layer with the
`--format fake` output of the same config (tests/client/formats_cli_test.sh).

Otherwise it runs `layout_fixtures DIR` (tests/core/layout_fixtures.cc), which writes each case's packed
tensors next to what rtnq computed (codes, float32 scales, zero points, dequantized values), and
checks: the unpacked codes and zero points are rtnq's; stored scales are the float32 scales
(F32) or them rounded to nearest even (F16, BF16); the dequantized weights equal rtnq's
fake-quantized values exactly with float32 scales, and otherwise differ by no more than the scale
rounding allows.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_rne(x):
    """float32 -> bfloat16 bits, round to nearest even (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    numpy_types = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2"}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        arr = np.frombuffer(raw, dtype=numpy_types[info["dtype"]]).reshape(info["shape"])
        tensors[name] = (info["dtype"], arr)
    return tensors, meta


def widen(dtype, arr):
    if dtype == "BF16":
        return bf16_to_f32(arr)
    return arr.astype(np.float32)


def rounded_scales(dtype, scales_f32):
    """What a narrower scale dtype must hold: the float32 scale rounded to nearest even."""
    if dtype == "F32":
        return scales_f32
    if dtype == "F16":
        return scales_f32.astype(np.float16).astype(np.float32)
    return bf16_to_f32(f32_to_bf16_rne(scales_f32))


def field(words, pos, bits):
    """The `bits`-bit field at bit `pos` of each row's stream of uint32 words (no straddling)."""
    assert 32 % bits == 0
    return (words[:, pos // 32] >> (pos % 32).astype(np.uint32)) & np.uint32((1 << bits) - 1)


def read_compressed_tensors(t, layer, bits, sym, group_size):
    shape = t[layer + ".weight_shape"][1]
    out, inp = int(shape[0]), int(shape[1])
    packed = t[layer + ".weight_packed"][1].view(np.uint32)
    assert packed.shape == (out, -(-inp * bits // 32)), packed.shape
    u = field(packed, np.arange(inp) * bits, bits).astype(np.int64)
    q = u - (1 << (bits - 1))
    scale_dtype, scale = t[layer + ".weight_scale"]
    groups = 1 if group_size == -1 else inp // group_size
    assert scale.shape == (out, groups), scale.shape
    if sym:
        assert layer + ".weight_zero_point" not in t
        zp = np.zeros((out, groups), dtype=np.int64)
        zu = None
    else:
        zpacked = t[layer + ".weight_zero_point"][1].view(np.uint32)
        assert zpacked.shape == (-(-out * bits // 32), groups), zpacked.shape
        zu = field(zpacked.T.copy(), np.arange(out) * bits, bits).T.astype(np.int64)
        zp = zu - (1 << (bits - 1))
    gsize = inp if group_size == -1 else group_size
    g = np.arange(inp) // gsize
    s = widen(scale_dtype, scale)
    w = (q - zp[:, g]).astype(np.float32) * s[:, g]
    # rtnq's own codes: signed for sym, the unsigned stored value for asym.
    codes = q if sym else u
    return codes, zu, s, scale_dtype, w


def read_awq(t, layer, group_size):
    qweight = t[layer + ".qweight"][1].view(np.uint32)
    inp, words = qweight.shape
    out = words * 8
    gsize = inp if group_size == -1 else group_size
    shifts = np.arange(0, 32, 4, dtype=np.uint32)

    def unpack(x):
        slots = (x[:, :, None] >> shifts[None, None, :]) & np.uint32(15)
        slots = slots.reshape(x.shape[0], -1).astype(np.int64)
        order = np.arange(slots.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
        return slots[:, order]

    iweight = unpack(qweight)  # [in, out]
    izeros = unpack(t[layer + ".qzeros"][1].view(np.uint32))  # [in/gs, out]
    scale_dtype, scales = t[layer + ".scales"]
    assert scale_dtype == "F16", scale_dtype
    assert izeros.shape == (inp // gsize, out) and scales.shape == (inp // gsize, out)
    s = widen(scale_dtype, scales)
    g = np.arange(inp) // gsize
    wt = (iweight - izeros[g, :]).astype(np.float32) * s[g, :]
    return iweight.T, izeros.T, s.T, scale_dtype, wt.T


def check(path):
    t, meta = read_safetensors(path)
    layer, bits = meta["layer"], int(meta["bits"])
    sym, group_size = meta["scheme"] == "sym", int(meta["group_size"])
    if meta["format"] == "awq":
        codes, zeros, scales, scale_dtype, w = read_awq(t, layer, group_size)
    else:
        codes, zeros, scales, scale_dtype, w = read_compressed_tensors(t, layer, bits, sym, group_size)
    where = "%s (%s, %d-bit %s g%d, %s weights)" % (
        path, meta["format"], bits, meta["scheme"], group_size, meta["weight_dtype"])
    ref_codes = t["ref.codes"][1].astype(np.int64)
    ref_scales = t["ref.scales"][1]
    ref_w = t["ref.dequant"][1]
    problems = []
    if not np.array_equal(codes, ref_codes):
        problems.append("codes differ at %d places" % np.count_nonzero(codes != ref_codes))
    if not sym and not np.array_equal(zeros, t["ref.zeros"][1].astype(np.int64)):
        problems.append("zero points differ")
    if not np.array_equal(scales, rounded_scales(scale_dtype, ref_scales)):
        problems.append("stored %s scales are not the float32 scales rounded to nearest even"
                        % scale_dtype)
    if scale_dtype == "F32":
        if not np.array_equal(w, ref_w):
            problems.append("dequantized weights differ from the fake-quant values at %d places"
                            % np.count_nonzero(w != ref_w))
    else:
        # A scale rounded to p fraction bits moves by at most half an ulp: 2^-(p+1) relative.
        rel = 2.0 ** -11 if scale_dtype == "F16" else 2.0 ** -8
        bound = np.abs(ref_w) * rel * 1.0001 + np.abs(ref_w) * 2.0 ** -23
        worst = np.max(np.abs(w - ref_w) - bound)
        if worst > 0:
            problems.append("dequantized weights exceed the scale-rounding bound by %g" % worst)
        if np.array_equal(w, ref_w) and not np.array_equal(scales, ref_scales):
            problems.append("narrow scales but identical weights: the check is not biting")
    return where, problems


def read_checkpoint(d):
    """Every tensor of the .safetensors files in directory `d`, and config.json."""
    tensors = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(d, f))[0])
    with open(os.path.join(d, "config.json")) as f:
        return tensors, json.load(f)


def check_checkpoint(packed_dir, fake_dir):
    """A checkpoint rtnq wrote in a packed format against the fake-quantized checkpoint of the
    same config: every packed layer dequantizes to the fake weights (exactly with float32 scales,
    within the scale rounding otherwise); its quantization_config decides how to read it."""
    t, config = read_checkpoint(packed_dir)
    fake, _ = read_checkpoint(fake_dir)
    q = config["quantization_config"]
    layers = []  # (layer, reader)
    if q["quant_method"] == "compressed-tensors":
        assert q["format"] == "pack-quantized" and q["quantization_status"] == "compressed", q
        for group in q["config_groups"].values():
            w = group["weights"]
            gs = -1 if w["group_size"] is None else w["group_size"]
            assert w["type"] == "int" and w["strategy"] == ("channel" if gs == -1 else "group"), w
            for layer in group["targets"]:
                layers.append((layer, lambda l, w=w, gs=gs: read_compressed_tensors(
                    t, l, w["num_bits"], w["symmetric"], gs)))
    else:
        assert q["quant_method"] == "awq" and q["version"] == "gemm" and q["zero_point"], q
        assert q["bits"] == 4, q
        for name in t:
            if name.endswith(".qweight"):
                layer = name[: -len(".qweight")]
                layers.append((layer, lambda l: read_awq(t, l, q["group_size"])))
    problems = []
    for layer, reader in layers:
        if layer + ".weight" not in fake:
            problems.append("%s: no %s.weight in the fake-quantized checkpoint" % (layer, layer))
            continue
        _, _, _, scale_dtype, w = reader(layer)
        dtype, ref = fake[layer + ".weight"]
        ref = widen(dtype, ref)
        if scale_dtype == "F32" and dtype == "F32":
            if not np.array_equal(w, ref):
                problems.append("%s: differs from the fake-quantized weights at %d places"
                                % (layer, np.count_nonzero(w != ref)))
            continue
        # Narrower scales (2^-(p+1) relative) and a fake weight rounded to its own dtype.
        rel = {"F32": 0.0, "F16": 2.0 ** -11, "BF16": 2.0 ** -8}
        bound = np.abs(ref) * (rel[scale_dtype] + rel[dtype]) * 1.0001 + np.abs(ref) * 2.0 ** -23
        worst = np.max(np.abs(w - ref) - bound)
        if worst > 0:
            problems.append("%s: exceeds the scale-rounding bound by %g" % (layer, worst))
    if not layers:
        problems.append("no packed layer found")
    return len(layers), problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", help="the layout_fixtures executable")
    parser.add_argument("--checkpoint", nargs=2, metavar=("PACKED_DIR", "FAKE_DIR"),
                        help="compare a packed checkpoint with the fake-quantized one")
    args = parser.parse_args()
    if args.checkpoint:
        n, problems = check_checkpoint(*args.checkpoint)
        for p in problems:
            print("FAIL %s: %s" % (args.checkpoint[0], p))
        print("%d packed layers of %s dequantize to the fake-quantized weights"
              % (n - len(problems), args.checkpoint[0]))
        return 1 if problems else 0
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([args.fixtures, d], check=True)
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        if len(files) < 10:
            print("FAIL: only %d fixture files" % len(files))
            return 1
        failed = 0
        for f in files:
            where, problems = check(os.path.join(d, f))
            for p in problems:
                print("FAIL %s: %s" % (where, p))
            failed += bool(problems)
        print("%d of %d layout files read back as rtnq computed them" % (len(files) - failed, len(files)))
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
