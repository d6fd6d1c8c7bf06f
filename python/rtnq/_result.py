"""What a quantization returns: the output tensors, a report per tensor, and saving them as a
checkpoint (written by the C++ client library, so the files follow `rtnq quantize`'s rules)."""

import json
import math
import os
from collections.abc import Mapping

from . import _capi


class Report:
    """Per-tensor entries in the CLI's --report form (name, action, reason, dtype, shape,
    bytes_in, bytes_out; quantized ones also config, decided_by, match_kind, metrics, timings,
    served_by, attempts) and a summary."""

    def __init__(self, tensors, summary=None):
        self.tensors = list(tensors)
        self.summary = summary if summary is not None else self._summarize()

    def quantized(self):
        return [t for t in self.tensors if t["action"] == "quantized"]

    def worst(self, n: int = 5):
        """The n quantized tensors with the lowest SNR, worst first: [(name, snr_db)]."""
        q = sorted(self.quantized(), key=lambda t: _float(t["metrics"]["snr_db"]))
        return [(t["name"], _float(t["metrics"]["snr_db"])) for t in q[:n]]

    def _summarize(self):
        counts = {"quantized": 0, "skipped": 0, "copied": 0}
        for t in self.tensors:
            counts[t["action"]] = counts.get(t["action"], 0) + 1
        snrs = [_float(t["metrics"]["snr_db"]) for t in self.quantized()]
        finite = [s for s in snrs if math.isfinite(s)]
        return dict(counts, bytes_before=sum(t["bytes_in"] for t in self.tensors),
                    bytes_after=sum(t["bytes_out"] for t in self.tensors),
                    snr_mean_db=sum(finite) / len(finite) if finite else float("inf"),
                    worst=[{"name": n, "snr_db": s} for n, s in self.worst(3)])

    def to_json(self) -> dict:
        return {"summary": self.summary, "tensors": self.tensors}

    def __repr__(self):
        s = self.summary
        return (f"Report(quantized={s.get('quantized')}, skipped={s.get('skipped')}, "
                f"copied={s.get('copied')}, snr_mean_db={s.get('snr_mean_db')})")


def _float(x):
    return float(x) if not isinstance(x, str) else float(x.replace("inf", "Infinity"))


class QuantizedStateDict(Mapping):
    """The output tensors of a quantized state_dict, by name in the input's order (a quantized
    `X.weight` becomes the format's tensors: `X.qweight`, `X.scales`, ... for gptq/inc), with
    `report` and `plan`. Save it with save_pretrained()."""

    def __init__(self, tensors, report, plan, request, buffers):
        self._tensors = tensors
        self.report = report
        self.plan = plan
        self._request = request
        self._buffers = buffers  # name -> numpy array holding the bytes to save

    def __getitem__(self, name):
        return self._tensors[name]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    @property
    def format(self) -> str:
        return self.plan["format"]

    @property
    def quantization_config(self) -> dict:
        """The record config.json gets (gptq: the quantization_config loaders read)."""
        return self.plan["record"]

    def save_pretrained(self, path, config=None):
        """Writes the outputs as a checkpoint directory `path` (new or empty): model.safetensors
        with rtnq's manifest, config.json (the given model config - a dict, an object with
        to_dict() such as a transformers config, or a config.json path - plus the quantization
        record) and, for gptq, quantize_config.json. Returns the file names."""
        request = dict(self._request, output=os.fspath(path), model_config=_model_config(config))
        buffers = [(name, arr.ctypes.data if arr.size else 0, arr.nbytes)
                   for name, arr in self._buffers.items()]
        return _capi.save(request, buffers)["files"]


def _model_config(config):
    if config is None:
        return None
    if isinstance(config, (str, os.PathLike)):
        with open(config) as f:
            return json.load(f)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(config)


def save_pretrained(result: QuantizedStateDict, path, config=None):
    """rtnq.save_pretrained(result, path, config=None): see QuantizedStateDict.save_pretrained."""
    return result.save_pretrained(path, config)
