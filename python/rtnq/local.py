"""Local mode: quantization in this process through the C++ core (librtnq_c.so), for training
nodes without a server. Same planning, outputs and files as the client; `rtnq quantize` without
--server runs the same calls."""

import time

from . import _capi, _pump, _run, _tensors


class LocalClient:
    """The client API without a server: quantize_state_dict / quantize_checkpoint run the core
    here on `threads` threads (0: all cores); kernels forces "reference", "avx2" or "avx512"."""

    def __init__(self, threads=0, kernels=""):
        self._backend = _capi.LocalBackend(threads, kernels)

    def describe(self) -> str:
        return self._backend.describe()

    def quantize_state_dict(self, state_dict, config=None, format="fake", *, include=None,
                            exclude=None, gptq_format=None, compression_dim=1, progress=None,
                            bar=None, return_tensors=None):
        """As rtnq.Client.quantize_state_dict, in this process."""
        run = _run.StateDictRun(state_dict, config, format, include, exclude, gptq_format,
                                compression_dim, return_tensors, self.describe())
        prog = _run.Progress(progress, bar)
        try:
            prog.start(len(run.views), run.total_bytes())
            for report in run.passthrough():
                prog.emit(report)
            jobs = run.jobs()
            if not jobs:
                return run.result()
            session = self._backend.open(_session_spec(run.plan))
            try:
                for i in jobs:
                    v = run.views[i]
                    t0 = time.monotonic()
                    arrays = []

                    def make_output(k, spec, arrays=arrays):
                        arr = _tensors.empty_output(spec["dtype"], spec["shape"])
                        arrays.append((spec["name"], spec["dtype"], arr))
                        return _tensors.byte_view(arr)
                    header = session.quantize(v.name, v.dtype, v.shape, v.address, v.nbytes,
                                              make_output)
                    run.outputs[i] = arrays
                    m = dict(header["metrics"])
                    for key in ("mse", "max_abs_error", "snr_db", "clip_ratio"):
                        m[key] = _float(m[key])
                    report = run.finish(i, None, m, 1, time.monotonic() - t0)
                    report["served_by"] = "local"
                    prog.emit(report)
            finally:
                session.close()
        finally:
            prog.close()
        return run.result()

    def quantize_checkpoint(self, src, dst, config=None, format="fake", *, include=None,
                            exclude=None, gptq_format=None, compression_dim=1, streams=1,
                            resume=False, report_path=None, progress=None, bar=None):
        """`rtnq quantize SRC -o DST` in this process; returns the --report document."""
        options = _run.run_options(src, dst, config, format, include, exclude, gptq_format,
                                   compression_dim, streams, resume, report_path)
        bridge = _LocalBridge(self._backend)

        def start(events):
            c_run = _run.CheckpointRun(options, bridge, None, events.deliver, events.start,
                                       self.describe())
            events.on_error(c_run.aborted.set)
            return _pump.in_thread(c_run.run)
        return _pump.pump(start, progress, bar)

    save_pretrained = staticmethod(lambda result, path, config=None:
                                   result.save_pretrained(path, config))


def _float(x):
    return float(x) if not isinstance(x, str) else float(x.replace("inf", "Infinity"))


def _session_spec(plan):
    return {"config_json": plan["config_json"], "format": plan["format"],
            "gptq_format": plan["gptq_format"], "compression_dim": plan["compression_dim"]}


class _LocalBridge:
    """Local sessions behind the C++ run's callbacks, so a run can be cancelled between
    tensors like a remote one (outputs are copied once into the run's buffers)."""

    def __init__(self, backend):
        self.backend = backend
        self.sessions = {}

    def open_session(self, spec):
        sid = len(self.sessions)
        self.sessions[sid] = self.backend.open(spec)
        return sid

    def quantize(self, sid, name, dtype, shape, data, builder):
        import numpy as np
        arr = np.frombuffer(data, dtype=np.uint8) if len(data) else np.empty(0, np.uint8)

        def make_output(k, spec):
            return _capi.builder_add_output(builder, spec["name"], spec["dtype"], spec["shape"],
                                            spec["bytes"])
        header = self.sessions[sid].quantize(name, dtype, shape,
                                             arr.ctypes.data if arr.size else 0, arr.nbytes,
                                             make_output)
        header.pop("outputs", None)
        _capi.builder_set(builder, header)

    def close_session(self, sid):
        s = self.sessions.pop(sid, None)
        if s is not None:
            s.close()


def quantize_local(state_dict, config=None, format="fake", *, threads=0, include=None,
                   exclude=None, gptq_format=None, compression_dim=1, progress=None, bar=None,
                   return_tensors=None):
    """Quantizes a state_dict in this process (no server): as Client.quantize_state_dict."""
    return LocalClient(threads).quantize_state_dict(
        state_dict, config, format, include=include, exclude=exclude, gptq_format=gptq_format,
        compression_dim=compression_dim, progress=progress, bar=bar,
        return_tensors=return_tensors)
