#!/usr/bin/env python3
"""The same checkpoint through the Python client (rtnq.Client.quantize_checkpoint and
quantize_state_dict) and through the C++ client (`rtnq quantize --server`), against one
rtnq-server, in one run; prints throughput, the Python/C++ ratio and each client's peak RSS.

Run with the interpreter that has the package (scripts/install-python.sh):
    .venv/bin/python bench/python_client.py [--shape llama7b-layer] [--streams 4] [--runs 3]
Each client runs in its own subprocess so that its peak RSS (ru_maxrss) is its own."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PY_CHILD = r"""
import json, resource, sys, time
import rtnq
mode, address, src, dst, streams, config, fmt = sys.argv[1:8]
streams, config = int(streams), json.loads(config)
with rtnq.Client(address, streams=streams) as c:
    t = time.monotonic()
    if mode == "checkpoint":
        c.quantize_checkpoint(src, dst, config, format=fmt)
    else:
        import numpy as np, struct, torch
        raw = open(src + "/model.safetensors", "rb").read()  # a state_dict in memory
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n]); header.pop("__metadata__", None)
        np_dt = {"BF16": np.int16, "F32": np.float32, "F16": np.float16}
        sd = {}
        for k, e in header.items():
            a, b = e["data_offsets"]
            arr = np.frombuffer(raw, np_dt[e["dtype"]], (b - a) // np.dtype(np_dt[e["dtype"]]).itemsize,
                                8 + n + a).reshape(e["shape"])
            t_ = torch.from_numpy(arr.copy())
            sd[k] = t_.view(torch.bfloat16) if e["dtype"] == "BF16" else t_
        del raw
        t = time.monotonic()
        r = c.quantize_state_dict(sd, config, format=fmt)
    seconds = time.monotonic() - t
print(json.dumps({"seconds": seconds,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--shape", default="llama7b-layer")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--format", default="gptq")
    ap.add_argument("--server-threads", type=int, default=0)
    args = ap.parse_args()
    build = Path(args.build)
    config = {"bits": 4, "group_size": 128, "scheme": "sym"}
    work = Path(tempfile.mkdtemp(prefix="rtnq-pybench-"))
    try:
        src = work / "src"
        subprocess.run([build / "client/rtnq", "synth", "-o", src, "--shape", args.shape],
                       check=True, capture_output=True)
        size = sum(p.stat().st_size for p in src.glob("*.safetensors"))
        (work / "cfg.json").write_text(json.dumps(config))
        log = open(work / "server.log", "w")
        server = subprocess.Popen([build / "server/rtnq-server", "--listen", "127.0.0.1:0",
                                   "--port_file", work / "port", "--log_level", "warn",
                                   "--threads", str(args.server_threads)],
                                  stdout=log, stderr=subprocess.STDOUT)
        while not (work / "port").exists() or not (work / "port").read_text().strip():
            time.sleep(0.05)
        address = f"127.0.0.1:{(work / 'port').read_text().strip()}"
        results = {"cpp": [], "py-checkpoint": [], "py-state_dict": []}
        rss = {k: 0 for k in results}
        for run in range(args.runs):
            for kind in results:
                dst = work / f"out-{kind}-{run}"
                if kind == "cpp":
                    cmd = ["/usr/bin/time", "-f", "RSSKB %M", build / "client/rtnq", "quantize",
                           src, "-o", dst, "--format", args.format, "--config", work / "cfg.json",
                           "--server", address, "--streams", str(args.streams), "--quiet"]
                    t = time.monotonic()
                    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    seconds = time.monotonic() - t
                    peak = int(re.search(r"RSSKB (\d+)", p.stderr).group(1)) * 1024
                else:
                    mode = kind.split("-", 1)[1]
                    p = subprocess.run([sys.executable, "-c", PY_CHILD, mode, address, str(src),
                                        str(dst), str(args.streams), json.dumps(config),
                                        args.format], check=True, capture_output=True, text=True)
                    m = json.loads(p.stdout.strip().splitlines()[-1])
                    seconds, peak = m["seconds"], m["peak_rss"]
                results[kind].append(size / seconds / 1e6)
                rss[kind] = max(rss[kind], peak)
                shutil.rmtree(dst, ignore_errors=True)
        server.terminate()
        server.wait()
        print(f"checkpoint: synth --shape {args.shape}, {size / 2**20:.0f} MiB, format "
              f"{args.format} int4 sym g128, {args.streams} streams, {args.runs} runs, "
              f"{os.cpu_count()} cores shared with the server")
        best_cpp = max(results["cpp"])
        for kind, mbs in results.items():
            print(f"  {kind:14s} MB/s {' '.join(f'{x:7.1f}' for x in mbs)}   best {max(mbs):7.1f}"
                  f"   ratio to C++ {max(mbs) / best_cpp:5.2f}   peak RSS {rss[kind] / 2**20:6.0f} MiB")
        ratios = [p / c for p, c in zip(results["py-checkpoint"], results["cpp"])]
        print(f"  per-run Python checkpoint / C++: {' '.join(f'{r:.2f}' for r in ratios)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
