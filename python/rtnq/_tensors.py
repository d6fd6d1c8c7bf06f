"""Tensors in and out: a torch tensor or numpy array seen as raw bytes without copying it, and
output bytes wrapped as numpy arrays or torch tensors."""

import numpy as np

try:  # torch is optional
    import torch
except ImportError:  # pragma: no cover - exercised on machines without torch
    torch = None

# safetensors dtype names <-> numpy dtypes (BF16 travels as uint16 bits).
_NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
          "BOOL": np.bool_}
_FROM_NUMPY = {np.dtype(v): k for k, v in _NUMPY.items() if k != "BF16"}
_FROM_NUMPY[np.dtype(np.uint16)] = "U16"
if torch is not None:
    _TORCH = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
              torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
              torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    _TORCH_BY_NAME = {v: k for k, v in _TORCH.items()}


class TensorView:
    """One input tensor as the wire sees it: safetensors dtype, shape and a flat byte view of its
    memory. `keep` holds the object owning that memory."""

    __slots__ = ("name", "dtype", "shape", "data", "array", "is_torch", "source")

    def __init__(self, name, value):
        self.name = name
        self.source = value
        self.is_torch = torch is not None and isinstance(value, torch.Tensor)
        if self.is_torch:
            t = value.detach()
            if t.device.type != "cpu":
                t = t.cpu()  # device memory must come to the host once
            if not t.is_contiguous():
                t = t.contiguous()  # documented: non-contiguous tensors are copied
            dtype = _TORCH.get(t.dtype)
            if dtype is None:
                raise TypeError(f"tensor {name!r}: torch dtype {t.dtype} is not supported")
            arr = (t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16
                   else t.numpy())
        else:
            arr = np.asarray(value)
            if getattr(arr.dtype, "name", "") == "bfloat16":  # ml_dtypes / jax bfloat16
                dtype = "BF16"
                arr = arr.view(np.uint16)
            else:
                dtype = _FROM_NUMPY.get(arr.dtype)
                if dtype is None:
                    raise TypeError(f"tensor {name!r}: numpy dtype {arr.dtype} is not supported")
            if not arr.flags.c_contiguous:
                arr = np.ascontiguousarray(arr)
        self.dtype = dtype
        self.shape = [int(d) for d in arr.shape]
        self.array = arr
        self.data = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    @property
    def address(self) -> int:
        return self.array.ctypes.data if self.array.size else 0

    def describe(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


def want_torch(kind, views) -> bool:
    """Outputs as torch tensors: kind "torch", or None with torch importable."""
    if kind == "numpy":
        return False
    if kind == "torch":
        if torch is None:
            raise ImportError("return_tensors='torch' needs torch")
        return True
    if kind is not None:
        raise ValueError(f"return_tensors must be 'torch', 'numpy' or None, got {kind!r}")
    return torch is not None


def empty_output(dtype: str, shape) -> np.ndarray:
    """An uninitialized output array; fill its bytes through byte_view()."""
    np_dtype = _NUMPY.get(dtype)
    if np_dtype is None:
        raise ValueError(f"output dtype {dtype} is not supported")
    return np.empty(shape, dtype=np_dtype)


def byte_view(arr: np.ndarray) -> memoryview:
    return memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(bytearray())


def to_user(arr: np.ndarray, dtype: str, as_torch: bool):
    """A finished output array as the caller wants it (sharing memory)."""
    if not as_torch:
        return arr
    if dtype == "BF16":
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def passthrough(view: TensorView, as_torch: bool):
    """An input tensor that is not quantized, returned as it is (no copy)."""
    if as_torch == view.is_torch:
        return view.source
    return to_user(view.array, view.dtype, as_torch)
