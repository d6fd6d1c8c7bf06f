"""ctypes binding of librtnq_c.so (client/capi/rtnq_c.h): the C++ client library's planning,
checkpoint writing and local quantization. Every call returns Python values or raises RtnqError
with the C++ status code and message."""

import ctypes
import json
import os
import threading
from pathlib import Path

from .errors import RtnqError

ABI_VERSION = 1
c_int64_p = ctypes.POINTER(ctypes.c_int64)


class Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("shape", c_int64_p),
                ("ndim", ctypes.c_int32), ("data", ctypes.c_void_p), ("size", ctypes.c_uint64),
                ("crc32c", ctypes.c_uint32), ("has_crc32c", ctypes.c_int32)]


class Buffer(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p), ("size", ctypes.c_uint64)]


OPEN_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
QUANTIZE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(Tensor),
                               ctypes.c_void_p, ctypes.c_void_p)
CLOSE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
START_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint64)
DONE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)


class BackendCallbacks(ctypes.Structure):
    _fields_ = [("user", ctypes.c_void_p), ("open_session", OPEN_FN), ("quantize", QUANTIZE_FN),
                ("close_session", CLOSE_FN), ("describe", ctypes.c_char_p)]


class ProgressCallbacks(ctypes.Structure):
    _fields_ = [("user", ctypes.c_void_p), ("start", START_FN), ("tensor_done", DONE_FN)]


_lib = None
_lock = threading.Lock()


def _library_path() -> str:
    explicit = os.environ.get("RTNQ_C_LIBRARY")
    if explicit:
        return explicit
    return str(Path(__file__).resolve().parent / "librtnq_c.so")


def lib():
    """The loaded library (once per process)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = _library_path()
        try:
            l = ctypes.CDLL(path)
        except OSError as e:
            raise ImportError(f"rtnq: cannot load the C API library {path}: {e} (install the "
                              "package with scripts/install-python.sh)") from e
        vp, cp, ip, i32, u64 = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int32,
                                ctypes.c_uint64)
        err = ctypes.POINTER(ctypes.c_void_p)
        sigs = {
            "rtnq_abi_version": (ip, []),
            "rtnq_version": (cp, []),
            "rtnq_free": (None, [vp]),
            "rtnq_plan": (ip, [cp, err, err]),
            "rtnq_local_create": (ip, [ip, cp, ctypes.POINTER(vp), err]),
            "rtnq_local_destroy": (None, [vp]),
            "rtnq_local_describe": (vp, [vp]),
            "rtnq_local_open": (ip, [vp, cp, ctypes.POINTER(vp), err]),
            "rtnq_session_destroy": (None, [vp]),
            "rtnq_session_quantize": (ip, [vp, ctypes.POINTER(Tensor), ctypes.POINTER(vp), err]),
            "rtnq_result_json": (cp, [vp]),
            "rtnq_result_output": (ip, [vp, i32, ctypes.POINTER(vp), ctypes.POINTER(u64), err]),
            "rtnq_result_destroy": (None, [vp]),
            "rtnq_gptq_bias": (ip, [ctypes.POINTER(Tensor), vp, u64, err]),
            "rtnq_status_set": (None, [vp, i32, cp]),
            "rtnq_builder_set": (ip, [vp, cp, err]),
            "rtnq_builder_add_output": (vp, [vp, cp, cp, c_int64_p, i32, u64, err]),
            "rtnq_run_quantize": (ip, [cp, vp, ctypes.POINTER(BackendCallbacks),
                                       ctypes.POINTER(ProgressCallbacks), err, err]),
            "rtnq_save": (ip, [cp, ctypes.POINTER(Buffer), ctypes.c_int64, err, err]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(l, name)
            fn.restype = res
            fn.argtypes = args
        if l.rtnq_abi_version() != ABI_VERSION:
            raise ImportError(f"rtnq: {path} has C API version {l.rtnq_abi_version()}, this "
                              f"package needs {ABI_VERSION}; reinstall the package")
        _lib = l
        return l


def take_string(ptr) -> str:
    """Reads and frees a string the library allocated."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib().rtnq_free(ptr)


def check(code: int, error: ctypes.c_void_p, tensor: str = ""):
    if code != 0:
        raise RtnqError(code, take_string(error.value), tensor)


def call_json(fn_name: str, request: dict, *extra) -> dict:
    """Calls fn(request_json, *extra, &reply, &error) and returns the reply as a dict."""
    reply, error = ctypes.c_void_p(), ctypes.c_void_p()
    code = getattr(lib(), fn_name)(json.dumps(request).encode(), *extra, ctypes.byref(reply),
                                   ctypes.byref(error))
    check(code, error)
    return json.loads(take_string(reply.value))


def version() -> str:
    return lib().rtnq_version().decode()


def plan(request: dict) -> dict:
    """rtnq_plan: every tensor's decision and outputs, the record, the wire names."""
    return call_json("rtnq_plan", request)


def make_tensor(name: str, dtype: str, shape, address: int, size: int):
    """A rtnq_tensor over memory at `address`; returns (struct, keepalive)."""
    shape_arr = (ctypes.c_int64 * max(1, len(shape)))(*shape)
    name_b, dtype_b = name.encode(), dtype.encode()
    t = Tensor(name_b, dtype_b, shape_arr, len(shape), address, size, 0, 0)
    return t, (shape_arr, name_b, dtype_b)


def gptq_bias(name, dtype, shape, address, size, out_address, out_size):
    t, keep = make_tensor(name, dtype, shape, address, size)
    error = ctypes.c_void_p()
    check(lib().rtnq_gptq_bias(ctypes.byref(t), out_address, out_size, ctypes.byref(error)),
          error, name)
    del keep


def save(request: dict, buffers) -> dict:
    """rtnq_save over [(name, address, size)]."""
    arr = (Buffer * max(1, len(buffers)))()
    names = []
    for i, (name, address, size) in enumerate(buffers):
        names.append(name.encode())
        arr[i] = Buffer(names[-1], address, size)
    return call_json("rtnq_save", request, arr, len(buffers))


class LocalBackend:
    """The core in this process (rtnq_local): a shared engine sized by `threads`."""

    def __init__(self, threads: int = 0, kernels: str = ""):
        handle, error = ctypes.c_void_p(), ctypes.c_void_p()
        check(lib().rtnq_local_create(threads, kernels.encode(), ctypes.byref(handle),
                                      ctypes.byref(error)), error)
        self.handle = handle

    def describe(self) -> str:
        return take_string(lib().rtnq_local_describe(self.handle))

    def open(self, spec: dict) -> "LocalSession":
        handle, error = ctypes.c_void_p(), ctypes.c_void_p()
        check(lib().rtnq_local_open(self.handle, json.dumps(spec).encode(), ctypes.byref(handle),
                                    ctypes.byref(error)), error)
        return LocalSession(handle)

    def close(self):
        if self.handle:
            lib().rtnq_local_destroy(self.handle)
            self.handle = ctypes.c_void_p()

    def __del__(self):
        self.close()


class LocalSession:
    def __init__(self, handle):
        self.handle = handle

    def quantize(self, name, dtype, shape, address, size, make_output):
        """Quantizes one tensor; make_output(i, spec) returns a writable buffer (memoryview) for
        output i, filled here. Returns the result header dict."""
        t, keep = make_tensor(name, dtype, shape, address, size)
        result, error = ctypes.c_void_p(), ctypes.c_void_p()
        check(lib().rtnq_session_quantize(self.handle, ctypes.byref(t), ctypes.byref(result),
                                          ctypes.byref(error)), error, name)
        del keep
        try:
            header = json.loads(lib().rtnq_result_json(result))
            for i, spec in enumerate(header["outputs"]):
                data, size_out = ctypes.c_void_p(), ctypes.c_uint64()
                check(lib().rtnq_result_output(result, i, ctypes.byref(data),
                                               ctypes.byref(size_out), ctypes.byref(error)), error)
                dest = make_output(i, spec)
                if size_out.value:
                    ctypes.memmove(address_of(dest), data.value, size_out.value)
            return header
        finally:
            lib().rtnq_result_destroy(result)

    def close(self):
        if self.handle:
            lib().rtnq_session_destroy(self.handle)
            self.handle = ctypes.c_void_p()

    def __del__(self):
        self.close()


def address_of(buf) -> int:
    """The address of a writable contiguous buffer (memoryview or numpy array)."""
    import numpy as np
    return np.frombuffer(buf, dtype=np.uint8).ctypes.data if len(memoryview(buf)) else 0


def status_set(status_ptr, code: int, message: str):
    lib().rtnq_status_set(status_ptr, int(code), message.encode("utf-8", "replace"))


def builder_set(builder, header: dict):
    error = ctypes.c_void_p()
    check(lib().rtnq_builder_set(builder, json.dumps(header).encode(), ctypes.byref(error)), error)


def builder_add_output(builder, name, dtype, shape, size) -> memoryview:
    error = ctypes.c_void_p()
    shape_arr = (ctypes.c_int64 * max(1, len(shape)))(*shape)
    ptr = lib().rtnq_builder_add_output(builder, name.encode(), dtype.encode(), shape_arr,
                                        len(shape), size, ctypes.byref(error))
    if not ptr:
        check(3, error, name)
    if size == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_uint8 * size).from_address(ptr)).cast("B")
