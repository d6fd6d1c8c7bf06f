"""quantize_state_dict as a training script uses it: torch and numpy tensors in fp32/fp16/bf16,
weight_config patterns, outputs and reports, errors that name the tensor and field."""

import grpc
import numpy as np
import pytest
import torch

import rtnq

OUT, IN = 64, 128


def layer_dict(dtype, lib="torch", seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(2):
        for proj in ["q_proj", "down_proj"]:
            sd[f"model.layers.{i}.{proj}.weight"] = torch.randn(OUT, IN, generator=g).to(dtype)
        sd[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(IN, dtype=dtype)
    sd["lm_head.weight"] = torch.randn(OUT, IN, generator=g).to(dtype)
    if lib == "numpy":
        return {k: v.float().numpy().astype(np.float16 if dtype == torch.float16 else np.float32)
                for k, v in sd.items()}
    return sd


@pytest.fixture(scope="module")
def client(server):
    with rtnq.Client(server.address, streams=3) as c:
        yield c


def as_bits(t):
    if isinstance(t, torch.Tensor):
        return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
    return t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fmt", ["fake", "gptq"])
def test_torch_dtypes_match_local_core(client, dtype, fmt):
    sd = layer_dict(dtype)
    cfg = {"bits": 4, "group_size": 32, "scheme": "sym"}
    remote = client.quantize_state_dict(sd, cfg, format=fmt)
    local = rtnq.quantize_local(sd, cfg, format=fmt, threads=1)
    assert list(remote) == list(local)
    for name in remote:
        assert remote[name].dtype == local[name].dtype, name
        np.testing.assert_array_equal(as_bits(remote[name]), as_bits(local[name]), err_msg=name)
    if fmt == "fake":
        # Fake quantization keeps dtype and shape; lm_head and norms pass through untouched.
        w = remote["model.layers.0.q_proj.weight"]
        assert w.dtype == dtype and tuple(w.shape) == (OUT, IN)
        assert remote["lm_head.weight"] is sd["lm_head.weight"]
    else:
        assert remote["model.layers.0.q_proj.qweight"].dtype == torch.int32
        assert remote["model.layers.0.q_proj.scales"].dtype == torch.float16
    assert [t["action"] for t in remote.report.tensors].count("quantized") == 4


@pytest.mark.parametrize("np_dtype", [np.float32, np.float16])
def test_numpy_inputs_give_numpy_outputs(client, np_dtype):
    sd = {"blk.0.fc.weight": np.linspace(-1, 1, OUT * IN, dtype=np.float32).reshape(OUT, IN)
          .astype(np_dtype)}
    r = client.quantize_state_dict(sd, {"bits": 8}, return_tensors="numpy")
    out = r["blk.0.fc.weight"]
    assert isinstance(out, np.ndarray) and out.dtype == np_dtype and out.shape == (OUT, IN)
    assert np.abs(out.astype(np.float32) - sd["blk.0.fc.weight"].astype(np.float32)).max() < 0.01
    assert r.report.tensors[0]["metrics"]["snr_db"] > 30


def test_non_contiguous_and_views(client):
    base = torch.randn(IN, OUT)
    sd = {"a.weight": base.t(), "b.weight": base[:OUT, :].clone()}  # a transposed view
    r = client.quantize_state_dict(sd, {"bits": 4})
    l = rtnq.quantize_local({"a.weight": base.t().contiguous(), "b.weight": sd["b.weight"]},
                            {"bits": 4})
    assert torch.equal(r["a.weight"], l["a.weight"]) and torch.equal(r["b.weight"], l["b.weight"])


def test_weight_config_patterns(client):
    sd = layer_dict(torch.float32)
    cfg = {"bits": 4, "group_size": 32, "weight_config": {
        "*.down_proj": {"bits": 8},
        "re:model\\.layers\\.1\\..*": {"group_size": 64},
        "model.layers.0.q_proj.weight": {"dtype": "fp32"},
        "lm_head": {"bits": 2}}}
    r = client.quantize_state_dict(sd, cfg, format="fake")
    by = {t["name"]: t for t in r.report.tensors}
    assert by["model.layers.0.down_proj.weight"]["config"]["bits"] == 8
    assert by["model.layers.0.down_proj.weight"]["decided_by"] == 'pattern "*.down_proj"'
    assert by["model.layers.1.q_proj.weight"]["config"]["group_size"] == 64
    assert by["model.layers.0.q_proj.weight"]["action"] == "skipped"
    # An entry naming lm_head exactly brings it back into quantization.
    assert by["lm_head.weight"]["action"] == "quantized"
    assert by["lm_head.weight"]["config"]["bits"] == 2
    assert by["model.layers.0.input_layernorm.weight"]["action"] == "copied"
    worst = r.report.worst(2)
    assert worst[0][0] == "lm_head.weight" and worst[0][1] < worst[1][1]


def test_include_exclude(client):
    sd = layer_dict(torch.float32)
    r = client.quantize_state_dict(sd, {"bits": 4}, include=["*.q_proj"],
                                   exclude="model.layers.1.q_proj")
    q = [t["name"] for t in r.report.quantized()]
    assert q == ["model.layers.0.q_proj.weight"]


def test_progress_callback_and_bar(client, capsys):
    events = []
    sd = layer_dict(torch.float16)
    client.quantize_state_dict(sd, {"bits": 4}, progress=events.append, bar=True)
    assert [e["done"] for e in events] == list(range(1, len(sd) + 1))
    assert events[-1]["total"] == len(sd)
    assert events[-1]["bytes_done"] == events[-1]["bytes_total"]
    assert "rtnq" in capsys.readouterr().err  # tqdm drew its bar on stderr


def test_bad_config_fails_before_any_tensor(client, server):
    before = server.metric("rtnq_tensors_total")
    sd = layer_dict(torch.float32)
    for cfg, field in [({"bits": 9}, "bits"), ({"bitz": 4}, "bitz"),
                       ({"weight_config": {"re:(": {"bits": 4}}}, "re:("),
                       ({"group_size": 0}, "group_size")]:
        with pytest.raises(rtnq.RtnqError) as e:
            client.quantize_state_dict(sd, cfg)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in e.value.details
    with pytest.raises(rtnq.RtnqError, match="format"):
        client.quantize_state_dict(sd, {}, format="gguf")
    # GPTQ cannot hold in_features indivisible by the group size: refused while planning.
    with pytest.raises(rtnq.RtnqError, match="model.layers.0.q_proj.weight"):
        client.quantize_state_dict(sd, {"group_size": 48}, format="gptq")
    assert server.metric("rtnq_tensors_total") == before


def test_non_finite_tensor_names_tensor_and_element(client):
    w = torch.randn(OUT, IN)
    w[3, 5] = float("nan")
    sd = {"good.weight": torch.randn(OUT, IN), "bad.weight": w}
    with pytest.raises(rtnq.RtnqError) as e:
        client.quantize_state_dict(sd, {"bits": 4})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.tensor == "bad.weight"
    assert "bad.weight" in e.value.details and "NaN" in e.value.details


def test_unsupported_inputs(client):
    with pytest.raises(TypeError, match="complex"):
        client.quantize_state_dict({"x.weight": np.zeros((4, 4), np.complex64)})
    with pytest.raises(rtnq.RtnqError, match="x.weight"):
        # An include naming a 1-D tensor exactly is an error naming it.
        client.quantize_state_dict({"x.weight": torch.ones(8)}, include=["x.weight"])


def test_empty_and_passthrough_only(client):
    assert len(client.quantize_state_dict({})) == 0
    r = client.quantize_state_dict({"norm.weight": torch.ones(4)})
    assert r.report.tensors[0]["action"] == "copied"
