"""Byte parity with the CLI: the Python client's checkpoints equal `rtnq quantize --server`'s,
for every format, through quantize_checkpoint, the asyncio client and a state_dict saved with
save_pretrained."""

import asyncio
import json

import numpy as np
import pytest
import torch

import rtnq
from conftest import cli, read_safetensors, same_tree

FORMATS = ["fake", "inc", "gptq"]
CONFIG = {"bits": 4, "group_size": 32, "scheme": "asym",
          "weight_config": {"*.down_proj": {"bits": 8}, "re:.*layers\\.1\\..*q_proj": {"scheme": "sym"}}}


def cli_quantize(src, dst, server, fmt, config_path):
    cli("quantize", src, "-o", dst, "--format", fmt, "--config", config_path, "--server",
        server.address, "--quiet")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "quant.json"
    p.write_text(json.dumps(CONFIG))
    return p


@pytest.fixture(scope="module")
def client(server):
    with rtnq.Client(server.address, streams=4) as c:
        yield c


@pytest.mark.parametrize("fmt", FORMATS)
def test_checkpoint_matches_cli(client, server, tiny, fresh, config_file, fmt):
    ours, theirs = fresh("py"), fresh("cli")
    report = client.quantize_checkpoint(tiny, ours, CONFIG, format=fmt)
    cli_quantize(tiny, theirs, server, fmt, config_file)
    same_tree(ours, theirs)
    assert report["summary"]["quantized"] == 14
    assert report["summary"]["format"] == fmt
    down = [t for t in report["tensors"] if t["name"].endswith("down_proj.weight")]
    assert down and all(t["config"]["bits"] == 8 for t in down)


def state_dict_of(path):
    tensors, _ = read_safetensors(path / "model.safetensors")
    return {k: (torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
                if v.dtype == np.uint16 else torch.from_numpy(v)) for k, v in tensors.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_saved_state_dict_matches_cli(client, server, tiny, fresh, config_file, fmt):
    sd = state_dict_of(tiny)
    result = client.quantize_state_dict(sd, CONFIG, format=fmt)
    ours, theirs = fresh("py"), fresh("cli")
    files = result.save_pretrained(ours, config=tiny / "config.json")
    cli_quantize(tiny, theirs, server, fmt, config_file)
    assert sorted(files) == sorted(p.name for p in theirs.iterdir())
    same_tree(ours, theirs)
    if fmt == "gptq":
        qc = json.loads((ours / "config.json").read_text())["quantization_config"]
        assert qc["quant_method"] == "gptq" and qc["bits"] == 4


def test_aio_client_matches_cli(server, tiny, fresh, config_file):
    ours, theirs = fresh("py"), fresh("cli")
    sd = state_dict_of(tiny)

    async def main():
        async with rtnq.aio.Client(server.address, streams=2) as c:
            r = await c.quantize_state_dict(sd, CONFIG, format="gptq")
            rep = await c.quantize_checkpoint(tiny, ours, CONFIG, format="gptq")
            return r, rep
    result, report = asyncio.run(main())
    cli_quantize(tiny, theirs, server, "gptq", config_file)
    same_tree(ours, theirs)
    saved = fresh("sd")
    result.save_pretrained(saved, config=tiny / "config.json")
    same_tree(saved, theirs)
    assert report["summary"]["quantized"] == 14


def test_local_mode_matches_cli(tiny, fresh, config_file):
    ours, theirs = fresh("py"), fresh("cli")
    rtnq.LocalClient(threads=1).quantize_checkpoint(tiny, ours, CONFIG, format="inc")
    cli("quantize", tiny, "-o", theirs, "--format", "inc", "--config", config_file, "--quiet")
    same_tree(ours, theirs)
    saved = fresh("sd")
    rtnq.quantize_local(state_dict_of(tiny), CONFIG, format="inc", threads=1).save_pretrained(
        saved, config=tiny / "config.json")
    same_tree(saved, theirs)
