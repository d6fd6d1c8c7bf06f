#!/usr/bin/python3
"""MoE and FP8 checkpoints through the real `rtnq` binary, checked with numpy.

FP8: the formats are decoded here from their definitions (OCP 8-bit floating point: E4M3 with
bias 7 and no infinities, E5M2 with bias 15, E8M0 exponents) and block scales applied with
numpy's float32 multiply, independently of rtnq's C++ code. `rtnq quantize --dtype fp32` leaves
every weight unquantized, so its output holds rtnq's dequantized float32 values, which must be
bit-identical to numpy's. Errors: a clear message naming the tensor, exit 1, no output left.

Usage: moe_fp8_cli_test.py RTNQ_BINARY
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

NP_DTYPES = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16, "F8_E4M3": np.uint8,
             "F8_E5M2": np.uint8, "F8_E8M0": np.uint8, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        begin, end = h["data_offsets"]
        raw = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=NP_DTYPES[h["dtype"]])
        out[name] = (h["dtype"], raw.reshape(h["shape"]))
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, array) in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def decode(codes, dtype):
    """float32 values of FP8 codes, from the format definitions."""
    c = codes.astype(np.int64)
    if dtype == "F8_E8M0":
        out = np.ldexp(np.float64(1.0), c - 127)
        out[c == 255] = np.nan
        return out.astype(np.float32)
    e, m, bias = (4, 3, 7) if dtype == "F8_E4M3" else (5, 2, 15)
    sign = np.where((c >> 7) & 1, -1.0, 1.0)
    exp = (c >> m) & ((1 << e) - 1)
    mant = (c & ((1 << m) - 1)).astype(np.float64) / (1 << m)
    normal = np.ldexp(1.0 + mant, exp - bias)
    subnormal = np.ldexp(mant, 1 - bias)
    out = sign * np.where(exp == 0, subnormal, normal)
    if dtype == "F8_E4M3":
        out[(c & 0x7F) == 0x7F] = np.nan
    else:
        top = exp == (1 << e) - 1
        out[top & ((c & 3) != 0)] = np.nan
        out[top & ((c & 3) == 0)] = sign[top & ((c & 3) == 0)] * np.inf
    return out.astype(np.float32)


def scale_values(dtype, raw):
    if dtype == "F32":
        return raw.astype(np.float32)
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F8_E8M0":
        return decode(raw, "F8_E8M0")
    raise AssertionError(dtype)


def dequantize(w_dtype, codes, s_dtype, s_raw, block):
    """w[..., i, j] = decode(code) * scale[..., i // bh, j // bw] in float32 (one rounding)."""
    values = decode(codes, w_dtype)
    scale = scale_values(s_dtype, s_raw)
    rows, cols = codes.shape[-2:]
    if scale.size == 1:
        return values * scale.reshape(())
    if scale.shape[-1] == 1 or scale.shape == codes.shape[:-1]:  # per output channel
        return values * scale.reshape(codes.shape[:-1] + (1,))
    bh, bw = block
    full = np.repeat(np.repeat(scale, bh, axis=-2), bw, axis=-1)[..., :rows, :cols]
    return values * full


def finite_codes(rng, shape, dtype):
    codes = rng.integers(0, 256, size=shape, dtype=np.uint8)
    bad = ~np.isfinite(decode(codes, dtype))
    codes[bad] = 0x3C  # 1.0 in E5M2, 1.5 in E4M3: any finite code
    return codes


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}")
    return p


def run_fails(cmd, output, *needles):
    """A run that must exit 1 with every needle in its message and leave no output behind."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 1, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{' '.join(cmd)}: message lacks {n!r}: {p.stderr}"
    for leftover in (output, output + ".partial"):
        assert not os.path.exists(leftover), f"{leftover} was left behind"
    return p


def check_dequantized(original, output, block):
    src = read_safetensors(original)
    out = read_safetensors(output)
    checked = 0
    for name, (dtype, codes) in src.items():
        if dtype not in ("F8_E4M3", "F8_E5M2"):
            continue
        scale_name = next(n for n in (name + "_scale_inv", name + "_scale") if n in src)
        want = dequantize(dtype, codes, *src[scale_name], block)
        got_dtype, got = out[name]
        assert got_dtype == "F32", (name, got_dtype)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        diff = np.count_nonzero(got.view(np.uint32) != want.view(np.uint32))
        assert diff == 0, f"{name}: {diff} of {want.size} values differ from numpy"
        assert scale_name not in out, f"{scale_name} was copied, not consumed"
        checked += 1
    for name, (dtype, array) in src.items():
        if dtype in ("F8_E4M3", "F8_E5M2") or name.endswith(("_scale_inv", "_scale")):
            continue
        assert out[name][0] == dtype and np.array_equal(out[name][1], array), name
    return checked


def test_fp8_synth_dequantized(rtnq, tmp):
    """rtnq's own synthetic FP8 checkpoint (DeepSeek-style 128x128 blocks)."""
    ck = os.path.join(tmp, "synth")
    run([rtnq, "synth", "-o", ck, "--shape", "moe-tiny", "--weight-dtype", "fp8"])
    out = os.path.join(tmp, "synth-deq")
    run([rtnq, "quantize", ck, "-o", out, "--dtype", "fp32", "--quiet"])
    n = check_dequantized(os.path.join(ck, "model.safetensors"),
                          os.path.join(out, "model.safetensors"), (128, 128))
    assert n == 24, n
    config = json.load(open(os.path.join(out, "config.json")))
    assert "quantization_config" not in config, "the FP8 quantization_config was kept"


def test_fp8_scale_layouts(rtnq, tmp):
    """Every scale layout in use, written here: partial edge blocks, per tensor, per output
    channel, stacked experts, E5M2, BF16 and E8M0 scales."""
    rng = np.random.default_rng(5)
    t = {}

    def add(name, wdtype, shape, sdtype, sshape, suffix):
        t[name] = (wdtype, finite_codes(rng, shape, wdtype))
        if sdtype == "F8_E8M0":
            s = rng.integers(110, 130, size=sshape, dtype=np.uint8)
        elif sdtype == "BF16":
            s = (rng.uniform(1e-3, 2e-3, size=sshape).astype(np.float32).view(np.uint32)
                 >> 16).astype(np.uint16)
        else:
            s = rng.uniform(1e-3, 2e-3, size=sshape).astype(np.float32)
        t[name + suffix] = (sdtype, s)

    add("a.blocks.weight", "F8_E4M3", (300, 200), "F32", (3, 2), "_scale_inv")
    add("b.e5m2.weight", "F8_E5M2", (129, 257), "F32", (2, 3), "_scale_inv")
    add("c.tensor.weight", "F8_E4M3", (64, 96), "F32", (), "_scale")
    add("d.channel.weight", "F8_E4M3", (70, 96), "BF16", (70, 1), "_scale")
    add("e.mlp.experts.gate_up_proj", "F8_E4M3", (3, 260, 130), "F32", (3, 3, 2), "_scale_inv")
    add("f.mx.weight", "F8_E4M3", (5, 128), "F8_E8M0", (5, 4), "_scale")
    t["g.norm.weight"] = ("F32", rng.standard_normal(7).astype(np.float32))
    t["h.input_scale"] = ("F32", np.array([0.5], dtype=np.float32))
    src = os.path.join(tmp, "layouts.safetensors")
    write_safetensors(src, t)
    # dtype fp32 leaves every tensor unquantized: each comes out dequantized.
    out = os.path.join(tmp, "layouts-deq.safetensors")
    run([rtnq, "quantize", src, "-o", out, "--dtype", "fp32", "--quiet"])
    # E8M0 scales default to MX blocks of 32 elements of a row.
    src_t = read_safetensors(src)
    out_t = read_safetensors(out)
    mx = dequantize("F8_E4M3", src_t["f.mx.weight"][1], "F8_E8M0", src_t["f.mx.weight_scale"][1],
                    (1, 32))
    assert np.array_equal(out_t["f.mx.weight"][1].view(np.uint32), mx.view(np.uint32))
    del src_t["f.mx.weight"], src_t["f.mx.weight_scale"]
    trimmed = os.path.join(tmp, "layouts-no-mx.safetensors")
    write_safetensors(trimmed, src_t)
    n = check_dequantized(trimmed, out, (128, 128))
    assert n == 5, n
    assert "h.input_scale" not in out_t, "an FP8 runtime scale was copied"


def test_fp8_errors(rtnq, tmp):
    codes = np.full((256, 256), 0x38, dtype=np.uint8)
    src = os.path.join(tmp, "noscale.safetensors")
    write_safetensors(src, {"m.layers.0.mlp.up_proj.weight": ("F8_E4M3", codes),
                            "m.layers.0.mlp.down_proj.weight": ("F8_E4M3", codes),
                            "m.layers.0.mlp.down_proj.weight_scale_inv":
                                ("F32", np.ones((2, 2), dtype=np.float32))})
    out = os.path.join(tmp, "noscale-out.safetensors")
    run_fails([rtnq, "quantize", src, "-o", out, "--quiet"], out,
              'FP8 tensor "m.layers.0.mlp.up_proj.weight"', "has no scale tensor",
              '"m.layers.0.mlp.up_proj.weight_scale_inv"')
    src = os.path.join(tmp, "badscale.safetensors")
    write_safetensors(src, {"m.layers.0.mlp.up_proj.weight": ("F8_E4M3", codes),
                            "m.layers.0.mlp.up_proj.weight_scale_inv":
                                ("F32", np.ones((3, 2), dtype=np.float32))})
    run_fails([rtnq, "quantize", src, "-o", out, "--quiet", "--format", "gptq"], out,
              '"m.layers.0.mlp.up_proj.weight"', "unknown scale layout", "[2, 2]")


# ---------------------------------------------------------------------------------------------
# MoE: per-expert outputs read back by a GPTQ reader written here, against the original experts
# sliced the way each family's modeling code slices them.
# ---------------------------------------------------------------------------------------------

def bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


def gptq_dequant(t, layer, bits=4):
    """What GPTQ loaders compute (v1 zero points, g_idx groups): W[n, k] = (q - z) * s."""
    qweight = t[layer + ".qweight"][1].view(np.uint32)
    qzeros = t[layer + ".qzeros"][1].view(np.uint32)
    scales = t[layer + ".scales"][1].astype(np.float32)
    g_idx = t[layer + ".g_idx"][1]
    per = 32 // bits
    mask = (1 << bits) - 1
    k = np.arange(qweight.shape[0] * per)
    q = (qweight[k // per, :] >> (bits * (k % per))[:, None]) & mask  # [in, out]
    n = np.arange(qzeros.shape[1] * per)
    z = ((qzeros[:, n // per] >> (bits * (n % per))[None, :]) & mask) + 1  # [groups, out]
    w = (q.astype(np.float32) - z[g_idx, :]) * scales[g_idx, :]
    return w.T  # [out, in]


def expert_weights(model_type, name, w, e):
    """Expert e's [out, in] weights as the family's modeling code uses them."""
    if name.endswith("down_proj"):
        return {"down_proj": w[e].T if model_type in ("gpt_oss", "llama4_text") else w[e]}
    if model_type == "gpt_oss":  # [E, H, 2I], gate = [..., ::2], up = [..., 1::2]
        return {"gate_proj": w[e][:, 0::2].T, "up_proj": w[e][:, 1::2].T}
    if model_type == "llama4_text":  # [E, H, 2I], gate, up = chunk(2, dim=-1)
        half = w.shape[2] // 2
        return {"gate_proj": w[e][:, :half].T, "up_proj": w[e][:, half:].T}
    half = w.shape[1] // 2  # transformers 5 fused: [E, 2I, H], gate rows first
    return {"gate_proj": w[e][:half], "up_proj": w[e][half:]}


def test_moe_experts_read_back(rtnq, tmp, server=None):
    for shape, model_type, ff in (("moe-tiny", "qwen3_moe", "mlp"),
                                  ("moe-tiny-interleaved", "gpt_oss", "mlp"),
                                  ("moe-tiny-transposed", "llama4_text", "feed_forward")):
        ck = os.path.join(tmp, shape)
        run([rtnq, "synth", "-o", ck, "--shape", shape, "--seed", "4"])
        outs = {}
        for fmt in ("gptq", "fake"):
            out = os.path.join(tmp, f"{shape}-{fmt}")
            run([rtnq, "quantize", ck, "-o", out, "--format", fmt, "--bits", "4",
                 "--group-size", "128", "--scheme", "sym", "--quiet"])
            outs[fmt] = read_safetensors(os.path.join(out, "model.safetensors"))
        src = read_safetensors(os.path.join(ck, "model.safetensors"))
        q, fake = outs["gptq"], outs["fake"]
        sizes = sum(a.nbytes for _, a in src.values()) / sum(a.nbytes for _, a in q.values())
        assert 3.4 < sizes < 4.0, f"{shape}: {sizes:.2f}x smaller"
        for layer in range(4):
            prefix = f"model.layers.{layer}.{ff}.experts"
            for proj in ("gate_up_proj", "down_proj"):
                name = f"{prefix}.{proj}"
                orig = bf16_to_f32(src[name][1])
                deq_fake = bf16_to_f32(fake[name][1])
                assert deq_fake.shape == orig.shape, name
                for e in (0, 5, 15):
                    want = expert_weights(model_type, name, orig, e)
                    fake_e = expert_weights(model_type, name, deq_fake, e)
                    for p, w in want.items():
                        got = gptq_dequant(q, f"{prefix}.{e}.{p}")
                        assert got.shape == w.shape, (name, e, p, got.shape, w.shape)
                        # The GPTQ expert is the fake-quantized one up to float16 scales
                        # (2^-11 of a value) and the fake output's bf16 rounding (up to 2^-8
                        # of a value); one code step off would be 1/8 of the largest...
                        rel = np.max(np.abs(got - fake_e[p])) / np.max(np.abs(fake_e[p]))
                        assert rel < 4.5e-3, f"{prefix}.{e}.{p}: {rel} from the fake values"
                        # ...and close to the original expert (4-bit: ~12 dB SNR and more).
                        snr = 10 * np.log10(np.sum(w * w) / np.sum((w - got) ** 2))
                        assert snr > 10, f"{prefix}.{e}.{p}: SNR {snr:.1f} dB"
            if model_type == "gpt_oss":  # biases de-interleaved like their weights, as F16
                b = bf16_to_f32(src[f"{prefix}.gate_up_proj_bias"][1])
                for e in (0, 15):
                    for p, sl in (("gate_proj", slice(0, None, 2)), ("up_proj", slice(1, None, 2))):
                        got = q[f"{prefix}.{e}.{p}.bias"][1]
                        assert got.dtype == np.float16
                        assert np.array_equal(got, b[e, sl].astype(np.float16)), (e, p)
            router = {"qwen3_moe": "mlp.gate", "gpt_oss": "mlp.router",
                      "llama4_text": "feed_forward.router"}[model_type]
            rname = f"model.layers.{layer}.{router}.weight"
            assert np.array_equal(q[rname][1], src[rname][1]), f"{rname} was changed"
        config = json.load(open(os.path.join(tmp, f"{shape}-gptq", "config.json")))
        assert config["quantization_config"]["quant_method"] == "gptq"


def test_moe_errors(rtnq, tmp):
    ck = os.path.join(tmp, "moe")
    run([rtnq, "synth", "-o", ck, "--shape", "moe-tiny"])
    bare = os.path.join(tmp, "bare.safetensors")
    shutil.copy(os.path.join(ck, "model.safetensors"), bare)
    out = os.path.join(tmp, "bare-out.safetensors")
    run_fails([rtnq, "quantize", bare, "-o", out, "--format", "gptq", "--scheme", "sym",
               "--group-size", "128", "--quiet"], out,
              '"model.layers.0.mlp.experts.gate_up_proj" [16, 512, 256]', "unknown layout",
              "--expert-layout")
    run([rtnq, "quantize", bare, "-o", out, "--format", "gptq", "--scheme", "sym",
         "--group-size", "128", "--expert-layout", "out-in", "--quiet"])
    os.remove(out)
    cfg = os.path.join(tmp, "split.json")
    with open(cfg, "w") as f:
        json.dump({"weight_config": {"*.layers.1.mlp.experts.down_proj": {"bits": 8}}}, f)
    out = os.path.join(tmp, "split-out")
    run_fails([rtnq, "quantize", ck, "-o", out, "--format", "gptq", "--scheme", "sym",
               "--group-size", "128", "--config", cfg, "--quiet"], out,
              'MoE layer "model.layers.1.mlp.experts"', "must share one config")
    p = subprocess.run([rtnq, "quantize", ck, "-o", out, "--expert-layout", "sideways"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--expert-layout must be" in p.stderr, p.stderr


def main():
    rtnq = sys.argv[1]
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    for name, fn in tests:
        tmp = tempfile.mkdtemp(prefix="rtnq_moe_fp8_")
        try:
            fn(rtnq, tmp)
            print(f"ok   {name}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"moe_fp8_cli_test: {len(tests)} tests OK")


if __name__ == "__main__":
    main()
