"""Memory: a state_dict holding a 1 GiB tensor is streamed in chunks sliced from the tensor's
memory, so the client's peak RSS stays under the state_dict's size + 20% (measured in a fresh
subprocess: peak RSS minus the RSS before the tensor existed)."""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r"""
    import json, resource, sys
    import numpy as np, torch, rtnq

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    address, rows, cols, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    client = rtnq.Client(address, streams=4)
    client.server_info()  # channel, threads and stubs up before the baseline
    base = rss()
    if kind == "torch":
        w = torch.empty(rows, cols, dtype=torch.float32)
        view = w.numpy()
    else:
        w = view = np.empty((rows, cols), dtype=np.float32)
    step = 256
    for r in range(0, rows, step):  # filled in place: no temporary as large as the tensor
        block = view[r:r + step]
        block[...] = np.sin(np.arange(r * cols, r * cols + block.size, dtype=np.float32)
                            .reshape(block.shape) * 0.001)
    sd = {"model.layers.0.mlp.up_proj.weight": w}
    result = client.quantize_state_dict(sd, {"bits": 4, "group_size": 128, "scheme": "sym"},
                                        format="gptq")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = sum(t.numel() * t.element_size() if hasattr(t, "numel") else t.nbytes
              for t in result.values())
    print(json.dumps({"base": base, "peak": peak, "tensor": w.numel() * 4 if kind == "torch"
                      else w.nbytes, "outputs": out,
                      "snr": result.report.tensors[0]["metrics"]["snr_db"]}))
""")


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_one_gib_tensor_peak_rss(server, kind):
    rows, cols = 16384, 16384  # float32: exactly 1 GiB
    proc = subprocess.run([sys.executable, "-c", SCRIPT, server.address, str(rows), str(cols),
                           kind], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["tensor"] == 1 << 30
    growth = m["peak"] - m["base"]
    # The tensor itself plus its GPTQ outputs (1/8 of it) must fit in +20%: no whole copy.
    assert growth < 1.2 * m["tensor"], m
    assert m["outputs"] > m["tensor"] // 8
    print(f"\n{kind}: peak RSS growth {growth / 2**20:.0f} MiB for a 1024 MiB state_dict "
          f"(outputs {m['outputs'] / 2**20:.0f} MiB)")
