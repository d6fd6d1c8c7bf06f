"""The work of a quantization, shared by rtnq.Client, rtnq.aio.Client and local mode: planning
through the C API, per-tensor bookkeeping, progress, results and cancellation. Transport-free."""

import threading
import time

from . import _capi, _tensors
from ._result import QuantizedStateDict, Report
from .errors import RtnqError

INTERNAL = 13


def plan_request(views, config, format, include, exclude, gptq_format, compression_dim):
    return {"config": _config_value(config), "format": format, "gptq_format": gptq_format,
            "compression_dim": int(compression_dim), "include": _patterns(include),
            "exclude": _patterns(exclude), "tensors": [v.describe() for v in views]}


def _config_value(config):
    if config is None:
        return {}
    if isinstance(config, (dict, str)):
        return config
    raise TypeError(f"config must be a dict or JSON text, got {type(config).__name__}")


def _patterns(p):
    if p is None:
        return []
    return [p] if isinstance(p, str) else list(p)


def views_of(state_dict):
    if not hasattr(state_dict, "items"):
        raise TypeError("state_dict must be a mapping of names to tensors")
    return [_tensors.TensorView(str(name), value) for name, value in state_dict.items()]


class Progress:
    """Counts finished tensors and hands events to the user's callback and an optional tqdm bar.
    deliver() may be called from any thread; the owner decides where emit() runs."""

    def __init__(self, callback=None, bar=None):
        self.callback = callback
        self.bar_wanted = bar
        self.bar = None
        self.total = self.done = 0
        self.bytes_total = self.bytes_done = 0
        self.start_time = time.monotonic()

    def start(self, tensors, nbytes):
        self.total, self.bytes_total = tensors, nbytes
        self.start_time = time.monotonic()
        if self.bar_wanted is None or self.bar_wanted:
            self.bar = _make_bar(tensors, force=bool(self.bar_wanted))

    def emit(self, report: dict):
        self.done += 1
        self.bytes_done += report.get("bytes_in", 0)
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback({"done": self.done, "total": self.total, "bytes_done": self.bytes_done,
                           "bytes_total": self.bytes_total,
                           "elapsed": time.monotonic() - self.start_time, "tensor": report})

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _make_bar(total, force):
    try:
        import tqdm
    except ImportError:
        return None
    import sys
    if not force and not sys.stderr.isatty():
        return None
    return tqdm.tqdm(total=total, unit="tensor", desc="rtnq")


class StateDictRun:
    """One state_dict quantization: the plan, what to send, and the results as they arrive."""

    def __init__(self, state_dict, config, format, include, exclude, gptq_format,
                 compression_dim, return_tensors, served_by):
        self.views = views_of(state_dict)
        self.request = plan_request(self.views, config, format, include, exclude, gptq_format,
                                    compression_dim)
        self.plan = _capi.plan(self.request)  # a bad config or selection fails here
        self.as_torch = _tensors.want_torch(return_tensors, self.views)
        self.served_by = served_by
        self.entries = self.plan["tensors"]
        self.reports = [None] * len(self.views)
        self.outputs = [None] * len(self.views)  # per input: [(name, dtype, array)]
        self.lock = threading.Lock()

    def jobs(self):
        """Indices of the tensors to quantize, largest first (no long one starts last)."""
        q = [i for i, e in enumerate(self.entries) if e["action"] == "quantize"]
        return sorted(q, key=lambda i: -self.views[i].nbytes)

    def passthrough(self):
        """Finishes every tensor that is not quantized; yields its report."""
        for i, e in enumerate(self.entries):
            if e["action"] == "quantize":
                continue
            v = self.views[i]
            out = e["outputs"][0]
            if e["bias_to_f16"]:
                arr = _tensors.empty_output(out["dtype"], out["shape"])
                _capi.gptq_bias(v.name, v.dtype, v.shape, v.address, v.nbytes,
                                arr.ctypes.data if arr.size else 0, arr.nbytes)
            else:
                arr = v.array
            self.outputs[i] = [(out["name"], out["dtype"], arr)]
            self.reports[i] = {"name": v.name, "action": "skipped" if e["action"] == "skip"
                               else "copied", "reason": e["reason"], "dtype": v.dtype,
                               "shape": v.shape, "bytes_in": v.nbytes, "bytes_out": arr.nbytes}
            yield self.reports[i]

    def sink(self, i):
        return _ArraySink(self, i)

    def finish(self, i, header, metrics, attempts, wall_seconds):
        from . import _wire
        v, e = self.views[i], self.entries[i]
        outs = self.outputs[i]
        self.reports[i] = {
            "name": v.name, "action": "quantized", "dtype": v.dtype, "shape": v.shape,
            "bytes_in": v.nbytes, "bytes_out": sum(a.nbytes for _, _, a in outs),
            "config": _wire.config_dict(header.config) if header is not None else e["config"],
            "decided_by": e["decided_by"], "match_kind": e["match_kind"],
            "metrics": {"elements": metrics["elements"], "groups": metrics["groups"],
                        "mse": metrics["mse"], "max_abs_error": metrics["max_abs_error"],
                        "snr_db": metrics["snr_db"], "clip_ratio": metrics["clip_ratio"]},
            "timings": {"quantize_seconds": metrics["quantize_seconds"],
                        "server_seconds": metrics["server_seconds"],
                        "wall_seconds": wall_seconds},
            "served_by": self.served_by, "attempts": attempts}
        return self.reports[i]

    def total_bytes(self):
        return sum(v.nbytes for v in self.views)

    def result(self) -> QuantizedStateDict:
        tensors, buffers = {}, {}
        for i, outs in enumerate(self.outputs):
            for name, dtype, arr in outs:
                buffers[name] = arr
                if self.entries[i]["action"] == "quantize":
                    tensors[name] = _tensors.to_user(arr, dtype, self.as_torch)
                else:
                    tensors[name] = (_tensors.passthrough(self.views[i], self.as_torch)
                                     if not self.entries[i]["bias_to_f16"]
                                     else _tensors.to_user(arr, dtype, self.as_torch))
        return QuantizedStateDict(tensors, Report(self.reports), self.plan, self.request, buffers)


class _ArraySink:
    """Output arrays of one quantized tensor, checked against the plan as the C++ run does."""

    def __init__(self, run, i):
        self.run, self.i = run, i

    def begin(self, header):
        planned = self.run.entries[self.i]["outputs"]
        got = [(o.name, o.dtype, list(o.shape)) for o in header.outputs]
        want = [(o["name"], o["dtype"], o["shape"]) for o in planned]
        if got != want or not header.quantized:
            raise RtnqError(INTERNAL, f"tensor {self.run.views[self.i].name!r}: the server "
                            f"returned {got} (quantized={header.quantized}), the plan has {want}",
                            self.run.views[self.i].name)
        arrays = [(o["name"], o["dtype"], _tensors.empty_output(o["dtype"], o["shape"]))
                  for o in planned]
        self.run.outputs[self.i] = arrays
        return [_tensors.byte_view(a) for _, _, a in arrays]

    def finish(self, header, metrics):
        pass


def metrics_dict(m) -> dict:
    return {"elements": m.elements, "groups": m.groups, "mse": m.mse,
            "max_abs_error": m.max_abs_error, "snr_db": m.snr_db, "clip_ratio": m.clip_ratio,
            "quantize_seconds": m.quantize_seconds, "server_seconds": m.server_seconds}


def run_options(src, dst, config, format, include, exclude, gptq_format, compression_dim,
                streams, resume, report_path):
    import os
    return {"input": os.fspath(src), "output": os.fspath(dst), "config": _config_value(config),
            "format": format, "gptq_format": gptq_format, "compression_dim": int(compression_dim),
            "include": _patterns(include), "exclude": _patterns(exclude), "streams": int(streams),
            "resume": bool(resume), "report_path": os.fspath(report_path) if report_path else ""}


class CheckpointRun:
    """rtnq_run_quantize with Python callbacks: the C++ client plans and writes; `backend`
    (None for local mode's rtnq_local) answers open/quantize/close. Runs synchronously in the
    calling thread; `deliver(report)` gets each finished tensor from the C++ worker threads."""

    def __init__(self, options, backend, local, deliver, on_start, describe="python"):
        self.options = options
        self.backend = backend
        self.local = local
        self.deliver = deliver
        self.on_start = on_start
        self.describe = describe.encode()
        self.aborted = threading.Event()

    def run(self) -> dict:
        import ctypes
        import json
        cbs = None
        if self.backend is not None:
            cbs = _capi.BackendCallbacks(None, _capi.OPEN_FN(self._open),
                                         _capi.QUANTIZE_FN(self._quantize),
                                         _capi.CLOSE_FN(self._close), self.describe)
        prog = _capi.ProgressCallbacks(None, _capi.START_FN(self._start),
                                       _capi.DONE_FN(self._done))
        outcome, error = ctypes.c_void_p(), ctypes.c_void_p()
        code = _capi.lib().rtnq_run_quantize(
            json.dumps(self.options).encode(), self.local.handle if self.local else None,
            ctypes.byref(cbs) if cbs is not None else None, ctypes.byref(prog),
            ctypes.byref(outcome), ctypes.byref(error))
        _capi.check(code, error)
        return json.loads(_capi.take_string(outcome.value))

    # Callbacks run on C++ threads: nothing may escape them.
    def _open(self, _user, spec_json, status):
        try:
            if self.aborted.is_set():
                raise RtnqError(1, "cancelled")
            import json
            return self.backend.open_session(json.loads(spec_json))
        except BaseException as e:  # noqa: BLE001 - reported to C++ as a status
            _fail(status, e)
            return -1

    def _quantize(self, _user, session, tensor_p, builder, status):
        try:
            if self.aborted.is_set():
                raise RtnqError(1, "cancelled")
            t = tensor_p.contents
            name = t.name.decode()
            data = (memoryview((ctypes_u8(t.size)).from_address(t.data)).cast("B")
                    if t.size else memoryview(b""))
            self.backend.quantize(session, name, t.dtype.decode(), list(t.shape[:t.ndim]),
                                  data, builder)
        except BaseException as e:  # noqa: BLE001
            _fail(status, e)

    def _close(self, _user, session, status):
        try:
            self.backend.close_session(session)
        except BaseException as e:  # noqa: BLE001
            _fail(status, e)

    def _start(self, _user, tensors, nbytes):
        self.on_start(tensors, nbytes)

    def _done(self, _user, report_json):
        import json
        try:
            self.deliver(json.loads(report_json))
        except BaseException:  # noqa: BLE001 - the owner records its own errors
            pass


def ctypes_u8(n):
    import ctypes
    return ctypes.c_uint8 * n


def _fail(status, e):
    if isinstance(e, RtnqError):
        _capi.status_set(status, e.code.value[0], e.details)
    else:
        _capi.status_set(status, 2, f"{type(e).__name__}: {e}")


class BuilderSink:
    """The outputs of one tensor of a C++ run, written straight into the C++ result's buffers.
    A retried attempt reuses the buffers of an earlier one (the same outputs are rewritten)."""

    def __init__(self, builder):
        self.builder = builder
        self.buffers = None
        self.layout = None

    def begin(self, header):
        layout = [(o.name, o.dtype, list(o.shape), o.total_bytes) for o in header.outputs]
        if self.buffers is None:
            self.buffers = [_capi.builder_add_output(self.builder, n, d, s, b)
                            for n, d, s, b in layout]
            self.layout = layout
        elif layout != self.layout:
            raise RtnqError(INTERNAL, "a retried attempt returned other outputs")
        return self.buffers

    def finish(self, header, metrics):
        pass
