"""rtnq.Client: the synchronous client. It runs rtnq.aio.Client on a private event loop thread;
progress callbacks run in the calling thread, and an exception there (a KeyboardInterrupt)
cancels the run's streams before it propagates."""

import asyncio
import sys
import threading

from . import _pump, aio


class _LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rtnq-loop",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class Client:
    """The rtnq service, synchronously. Arguments as rtnq.aio.Client:

    servers: "host:port", "h1:p1,h2:p2" or a list (gRPC round_robin over all), or
    "dns:///name:port". streams: tensors in flight (one long-lived stream each). tls: None,
    True (system roots) or rtnq.Tls(ca_file=, cert_file=, key_file=, server_name=).
    token / token_file: bearer token. deadline: seconds per tensor attempt. max_attempts:
    attempts per tensor (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and ABORTED are
    retried with exponential backoff and jitter, on a new stream).
    """

    def __init__(self, servers, streams=4, tls=None, token=None, deadline=None, max_attempts=4,
                 **kwargs):
        self._aio = aio.Client(servers, streams, tls, token, deadline, max_attempts, **kwargs)
        self._loop = _LoopThread()

    def _call(self, coro):
        return self._loop.submit(coro).result()

    def _run(self, make_coro, progress, bar):
        def start(events):
            done = threading.Event()

            async def wrapper():
                try:
                    return await make_coro(events)
                finally:
                    done.set()
            fut = self._loop.submit(wrapper())

            def result():
                return fut.result()
            return done.wait, result, fut.cancel
        return _pump.pump(start, progress, bar)

    def server_info(self) -> dict:
        """GetServerInfo as a dict."""
        return self._call(self._aio.server_info())

    def health(self) -> str:
        """"SERVING" when the server is up (grpc.health.v1)."""
        return self._call(self._aio.health())

    def quantize_state_dict(self, state_dict, config=None, format="fake", *, include=None,
                            exclude=None, gptq_format=None, compression_dim=1, progress=None,
                            bar=None, return_tensors=None):
        """See rtnq.aio.Client.quantize_state_dict."""
        return self._run(lambda ev: self._aio.quantize_state_dict(
            state_dict, config, format, include=include, exclude=exclude,
            gptq_format=gptq_format, compression_dim=compression_dim,
            return_tensors=return_tensors, _events=ev), progress, bar)

    def quantize_checkpoint(self, src, dst, config=None, format="fake", *, include=None,
                            exclude=None, gptq_format=None, compression_dim=1, resume=False,
                            report_path=None, progress=None, bar=None):
        """See rtnq.aio.Client.quantize_checkpoint."""
        return self._run(lambda ev: self._aio.quantize_checkpoint(
            src, dst, config, format, include=include, exclude=exclude, gptq_format=gptq_format,
            compression_dim=compression_dim, resume=resume, report_path=report_path,
            _events=ev), progress, bar)

    save_pretrained = staticmethod(aio.Client.save_pretrained)

    def close(self):
        """Closes the channel and stops the loop thread (also done by `with` and on collection)."""
        if self._loop is not None:
            loop, self._loop = self._loop, None
            try:
                loop.submit(self._aio.close()).result(timeout=10)
            finally:
                loop.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # At interpreter exit the loop thread (a daemon) may be frozen already: never wait on it.
        if not sys.is_finalizing():
            try:
                self.close()
            except Exception:  # noqa: BLE001 - best effort on collection
                pass
