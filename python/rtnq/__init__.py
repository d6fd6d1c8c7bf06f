"""rtnq: round-to-nearest weight quantization as a service, from Python.

    import rtnq
    with rtnq.Client("rtnq-a:50051,rtnq-b:50051", streams=4) as client:
        result = client.quantize_state_dict(model.state_dict(), {"bits": 4, "group_size": 128,
                                            "scheme": "sym"}, format="gptq")
    result.save_pretrained("out/model-gptq", config=model.config)

rtnq.aio.Client is the asyncio twin; rtnq.quantize_local / rtnq.LocalClient run the same
quantization in this process. Planning, checkpoint rules and writing are the C++ client
library's (librtnq_c.so); numerics are the server's (or the in-process core's).
"""

from . import aio
from ._result import QuantizedStateDict, Report, save_pretrained
from .aio import Tls
from .client import Client
from .errors import RtnqError
from .local import LocalClient, quantize_local


def version() -> str:
    """The version of the C++ library this package runs."""
    from . import _capi
    return _capi.version()


__version__ = "0.1.0"
__all__ = ["Client", "LocalClient", "QuantizedStateDict", "Report", "RtnqError", "Tls",
           "quantize_local", "save_pretrained", "version"]
