"""The client under operational conditions: two replicas with one killed mid-run, token auth,
TLS, and cancellation (KeyboardInterrupt in a progress callback) releasing the server's memory."""

import asyncio
import subprocess

import grpc
import numpy as np
import pytest
import torch

import rtnq
from conftest import cli, same_tree


def test_two_servers_one_killed_mid_run(make_server, tiny, fresh):
    a, b = make_server(), make_server()
    killed = []

    def kill_first(event):
        if event["done"] == 3 and not killed:
            a.kill()
            killed.append(event["done"])

    ours, clean = fresh("py"), fresh("clean")
    with rtnq.Client([a.address, b.address], streams=2, max_attempts=6,
                     rotate_every=2) as client:
        report = client.quantize_checkpoint(tiny, ours, {"bits": 4}, format="gptq",
                                            progress=kill_first)
    assert killed
    cli("quantize", tiny, "-o", clean, "--format", "gptq", "--bits", "4", "--quiet")
    same_tree(ours, clean)
    assert report["summary"]["quantized"] == 14
    # The state_dict path fails over too.
    sd = {f"l{i}.weight": torch.randn(64, 128) for i in range(8)}
    with rtnq.Client(f"{a.address},{b.address}", streams=2, max_attempts=6) as client:
        r = client.quantize_state_dict(sd, {"bits": 4})
    assert len(r.report.quantized()) == 8


def test_token_auth(make_server, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = make_server("--auth_token_file", str(token))
    sd = {"x.weight": torch.randn(64, 128)}
    with rtnq.Client(s.address, max_attempts=1) as c:
        with pytest.raises(rtnq.RtnqError) as e:
            c.quantize_state_dict(sd)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with rtnq.Client(s.address, token="wrong", max_attempts=1) as c:
        with pytest.raises(rtnq.RtnqError) as e:
            c.server_info()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with rtnq.Client(s.address, token_file=token) as c:
        assert len(c.quantize_state_dict(sd).report.quantized()) == 1
        assert c.server_info()["version"]


def make_cert(d, stem, cn, ca=None):
    key, crt = d / f"{stem}.key", d / f"{stem}.crt"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-days", "1", "-subj", f"/CN={cn}", "-addext",
           "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)]
    subprocess.run(cmd, check=True, capture_output=True)
    return crt, key


def test_tls_and_mutual_tls(make_server, tmp_path):
    crt, key = make_cert(tmp_path, "server", "localhost")
    s = make_server("--tls_cert_file", str(crt), "--tls_key_file", str(key))
    sd = {"x.weight": torch.randn(64, 128)}
    with rtnq.Client(s.address, tls=rtnq.Tls(ca_file=crt)) as c:
        assert len(c.quantize_state_dict(sd).report.quantized()) == 1
    with rtnq.Client(s.address, max_attempts=1, deadline=5) as c:  # plaintext to a TLS port
        with pytest.raises(rtnq.RtnqError) as e:
            c.quantize_state_dict(sd)
        assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    ccrt, ckey = make_cert(tmp_path, "client", "client")
    m = make_server("--tls_cert_file", str(crt), "--tls_key_file", str(key),
                    "--tls_client_ca_file", str(ccrt))
    with rtnq.Client(m.address, tls=rtnq.Tls(ca_file=crt, cert_file=ccrt, key_file=ckey)) as c:
        assert len(c.quantize_state_dict(sd).report.quantized()) == 1
    with rtnq.Client(m.address, tls=rtnq.Tls(ca_file=crt), max_attempts=1, deadline=5) as c:
        with pytest.raises(rtnq.RtnqError):
            c.quantize_state_dict(sd)


def big_state_dict(n=12):
    # Tensors large enough that several are in flight when the callback interrupts.
    return {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(1024, 2048) for i in range(n)}


def interrupt_after(k):
    def cb(event):
        if event["done"] >= k:
            raise KeyboardInterrupt
    return cb


def test_keyboard_interrupt_releases_server_memory(make_server, tiny, fresh):
    s = make_server("--threads", "1")
    with rtnq.Client(s.address, streams=4) as c:
        with pytest.raises(KeyboardInterrupt):
            c.quantize_state_dict(big_state_dict(), {"bits": 4, "enable_mse_search": True},
                                  progress=interrupt_after(1))
        assert s.wait_metric("rtnq_inflight_bytes", 0) == 0
        assert s.wait_metric("rtnq_active_streams", 0) == 0
        out = fresh("py")
        with pytest.raises(KeyboardInterrupt):
            c.quantize_checkpoint(tiny, out, {"bits": 4, "enable_mse_search": True},
                                  progress=interrupt_after(2))
        assert s.wait_metric("rtnq_inflight_bytes", 0) == 0
        assert s.wait_metric("rtnq_active_streams", 0) == 0
        # The client is still usable afterwards.
        assert len(c.quantize_state_dict(big_state_dict(1)).report.quantized()) == 1


def test_aio_cancellation_releases_server_memory(make_server):
    s = make_server()

    async def main():
        async with rtnq.aio.Client(s.address, streams=4) as c:
            task = asyncio.ensure_future(c.quantize_state_dict(
                big_state_dict(), {"bits": 4, "enable_mse_search": True}))
            while s.metric("rtnq_inflight_bytes") == 0 and not task.done():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(KeyboardInterrupt):
                await c.quantize_state_dict(big_state_dict(4), progress=interrupt_after(1))
    asyncio.run(main())
    assert s.wait_metric("rtnq_inflight_bytes", 0) == 0
    assert s.wait_metric("rtnq_active_streams", 0) == 0


def test_deadline_and_unreachable_server():
    with rtnq.Client("127.0.0.1:1", max_attempts=2, initial_backoff=0.01) as c:
        with pytest.raises(rtnq.RtnqError) as e:
            c.quantize_state_dict({"x.weight": np.ones((8, 32), np.float32)})
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(rtnq.RtnqError, match="bad server entry"):
        rtnq.Client("127.0.0.1:1,nohostport")
