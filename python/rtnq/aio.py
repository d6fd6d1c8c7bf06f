"""rtnq.aio.Client: the rtnq service from asyncio, on grpc.aio. rtnq.Client (the synchronous
client) runs this same code on a private event loop thread.

Each of `streams` workers keeps one long-lived Quantize stream (rotated every `rotate_every`
tensors so round_robin spreads load over replicas that join later) and sends one tensor at a
time on it, writing chunks and reading results concurrently. A transient failure
(UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED) drops the stream and resends the
tensor on a new one after an exponential backoff with jitter, up to `max_attempts` attempts."""

import asyncio
import concurrent.futures
import random
import socket
import threading
import time

import grpc
import grpc.aio

from . import _run, _wire
from ._proto import pb
from .errors import TRANSIENT, RtnqError

CANCELLED = 1


class Tls:
    """TLS settings: PEM files of the CA roots (None: the system's), a client certificate and
    key for mutual TLS, and the name to expect in the server's certificate."""

    def __init__(self, ca_file=None, cert_file=None, key_file=None, server_name=None):
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.server_name = server_name

    def credentials(self):
        def read(path):
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()
        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file),
                                            read(self.cert_file))


def resolve_target(servers) -> str:
    """A gRPC target: "host:port" and "dns:///name:port" pass through; a comma list (or a Python
    list) is resolved into "ipv4:a:p,b:q" (or ipv6) for round_robin, as the C++ client does."""
    if isinstance(servers, (list, tuple)):
        servers = ",".join(servers)
    servers = str(servers).strip()
    if not servers:
        raise RtnqError(3, "empty server address")
    if "://" in servers or "," not in servers:
        return servers
    v4, v6 = [], []
    for entry in (e.strip() for e in servers.split(",")):
        if not entry:
            raise RtnqError(3, f"empty entry in server list {servers!r}")
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit():
            raise RtnqError(3, f"bad server entry {entry!r}: expected host:port")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise RtnqError(3, f"cannot resolve server entry {entry!r}: {e}") from None
        info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        if info[0] == socket.AF_INET6:
            v6.append(f"[{info[4][0]}]:{port}")
        else:
            v4.append(f"{info[4][0]}:{port}")
    if v4 and v6:
        raise RtnqError(3, f"server list {servers!r} mixes IPv4 and IPv6 addresses")
    return "ipv6:" + ",".join(v6) if v6 else "ipv4:" + ",".join(v4)


class _Stream:
    """One Quantize call: the session config, then tensors one at a time."""

    def __init__(self, client, first):
        self.client = client
        self.first = first
        self.call = None
        self.count = 0

    async def open(self):
        self.call = self.client._rpc(metadata=self.client._metadata)
        try:
            await self.call.write(self.first)
            resp = await self.call.read()
        except grpc.aio.AioRpcError as e:
            raise RtnqError.from_rpc(e) from None
        if resp is grpc.aio.EOF:
            raise await self._ended()
        if isinstance(resp, _wire.Chunk) or resp.WhichOneof("kind") != "started":
            raise RtnqError(13, "server did not answer the session config with SessionStarted")

    async def _ended(self) -> RtnqError:
        code = await self.call.code()
        if code == grpc.StatusCode.OK:
            return RtnqError(grpc.StatusCode.UNAVAILABLE, "stream ended unexpectedly")
        return RtnqError(code, await self.call.details())

    async def _write(self, name, dtype, shape, data):
        for msg in _wire.tensor_messages(name, dtype, shape, data, self.client.chunk_bytes):
            await self.call.write(msg)

    async def exchange(self, name, dtype, shape, data, sink):
        """Sends one tensor while reading its answer; returns (ResultHeader, TensorMetrics)."""
        assembly = _wire.Assembly(name, sink)
        writer = asyncio.ensure_future(self._write(name, dtype, shape, data))
        try:
            while True:
                try:
                    resp = await self.call.read()
                except grpc.aio.AioRpcError as e:
                    raise RtnqError.from_rpc(e, name) from None
                if resp is grpc.aio.EOF:
                    raise await self._ended()
                try:
                    if assembly.feed(resp):
                        break
                except RtnqError as e:
                    if isinstance(resp, _wire.Chunk) or resp.WhichOneof("kind") != "error":
                        raise
                    e.in_band = True  # the stream goes on: let the tensor's bytes finish
                    await writer
                    raise
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            elif not writer.cancelled() and writer.exception() is not None:
                exc = writer.exception()
                if isinstance(exc, grpc.aio.AioRpcError):
                    raise RtnqError.from_rpc(exc, name) from None
        self.count += 1
        return assembly.header, resp.metrics

    def cancel(self):
        if self.call is not None:
            self.call.cancel()

    async def close(self):
        """Half-closes and drains the summary; how the stream ends cannot lose a result."""
        try:
            await self.call.done_writing()
            while await self.call.read() is not grpc.aio.EOF:
                pass
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass


class _Worker:
    """A stream slot with retries: what one of `streams` workers sends tensors through."""

    def __init__(self, client, plan):
        self.client = client
        self.first = _wire.session_config(plan)
        self.stream = None
        self.rng = random.Random()

    async def _backoff(self, attempt):
        c = self.client
        s = c.initial_backoff
        for _ in range(2, attempt):
            if s >= c.max_backoff:
                break
            s *= 2
        await asyncio.sleep(min(s, c.max_backoff) * self.rng.uniform(0.5, 1.0))

    async def start(self):
        """Opens the first stream (retrying transient failures): a bad config fails here,
        before any tensor is sent."""
        last = None
        for attempt in range(1, max(1, self.client.max_attempts) + 1):
            if attempt > 1:
                await self._backoff(attempt)
            try:
                await self._open()
                return
            except RtnqError as e:
                self.drop()
                if e.code not in TRANSIENT:
                    raise
                last = e
        raise last

    async def _open(self):
        self.stream = _Stream(self.client, self.first)
        await self.stream.open()

    async def quantize(self, name, dtype, shape, data, sink):
        """(header, metrics, attempts); per-tensor errors raise RtnqError naming the tensor."""
        last = None
        for attempt in range(1, max(1, self.client.max_attempts) + 1):
            if attempt > 1:
                await self._backoff(attempt)
            try:
                if self.stream is None:
                    await self._open()
                coro = self.stream.exchange(name, dtype, shape, data, sink)
                if self.client.deadline:
                    try:
                        header, metrics = await asyncio.wait_for(coro, self.client.deadline)
                    except asyncio.TimeoutError:
                        raise RtnqError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                        f"{name}: no answer within {self.client.deadline} s",
                                        name) from None
                else:
                    header, metrics = await coro
                if self.stream.count >= self.client.rotate_every:
                    await self.end()
                return header, metrics, attempt
            except RtnqError as e:
                if getattr(e, "in_band", False):
                    raise
                self.drop()
                if e.code not in TRANSIENT:
                    raise
                last = e
            except BaseException:
                self.drop()
                raise
        raise last

    def drop(self):
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None

    async def end(self):
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.close()


class Client:
    """The rtnq service from asyncio (grpc.aio). Use it inside one event loop.

    servers: "host:port", "h1:p1,h2:p2" or a list (round_robin over all), or "dns:///name:port".
    streams: tensors in flight, one stream each. tls: None (plaintext), True (system roots) or a
    Tls. token / token_file: sent as "authorization: Bearer <token>". deadline: seconds per
    tensor attempt (None: none). max_attempts: attempts per tensor, the first included.
    """

    def __init__(self, servers, streams=4, tls=None, token=None, deadline=None, max_attempts=4,
                 *, token_file=None, initial_backoff=0.1, max_backoff=5.0, chunk_bytes=1 << 20,
                 rotate_every=64, max_message_bytes=64 << 20):
        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        self.target = resolve_target(servers)
        self.servers = servers if isinstance(servers, str) else ",".join(servers)
        self.streams = int(streams)
        self.tls = Tls() if tls is True else tls
        if token_file is not None:
            with open(token_file) as f:
                token = f.read().strip()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.deadline = deadline
        self.max_attempts = int(max_attempts)
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.chunk_bytes = int(chunk_bytes)
        self.rotate_every = max(1, int(rotate_every))
        self.max_message_bytes = int(max_message_bytes)
        self._channel = None

    # -- channel --------------------------------------------------------------------------
    def _ensure_channel(self):
        if self._channel is None:
            options = [("grpc.lb_policy_name", "round_robin"),
                       ("grpc.max_receive_message_length", self.max_message_bytes),
                       ("grpc.max_send_message_length", self.max_message_bytes)]
            if self.tls is not None:
                if self.tls.server_name:
                    options.append(("grpc.ssl_target_name_override", self.tls.server_name))
                self._channel = grpc.aio.secure_channel(self.target, self.tls.credentials(),
                                                        options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options)
            self._rpc = self._channel.stream_stream(
                "/rtnq.v1.Quantizer/Quantize", request_serializer=_wire.serialize_request,
                response_deserializer=_wire.deserialize_response)
        return self._channel

    def describe(self) -> str:
        return f"{self.servers} (round_robin)"

    async def close(self):
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # -- unary calls ----------------------------------------------------------------------
    async def server_info(self) -> dict:
        """GetServerInfo as a dict (version, dtypes, formats, limits, kernel, threads)."""
        from google.protobuf import json_format
        ch = self._ensure_channel()
        rpc = ch.unary_unary("/rtnq.v1.Quantizer/GetServerInfo",
                             request_serializer=pb.GetServerInfoRequest.SerializeToString,
                             response_deserializer=pb.ServerInfo.FromString)
        try:
            info = await rpc(pb.GetServerInfoRequest(), metadata=self._metadata,
                             timeout=self.deadline)
        except grpc.aio.AioRpcError as e:
            raise RtnqError.from_rpc(e) from None
        return json_format.MessageToDict(info, preserving_proto_field_name=True)

    async def health(self) -> str:
        """grpc.health.v1 Check for the whole server: "SERVING", "NOT_SERVING", ..."""
        ch = self._ensure_channel()
        rpc = ch.unary_unary("/grpc.health.v1.Health/Check")  # raw bytes: request {} is empty
        try:
            raw = await rpc(b"", timeout=self.deadline or 10)
        except grpc.aio.AioRpcError as e:
            raise RtnqError.from_rpc(e) from None
        status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
        return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}.get(status,
                                                                                      "UNKNOWN")

    # -- quantization ---------------------------------------------------------------------
    async def quantize_state_dict(self, state_dict, config=None, format="fake", *, include=None,
                                  exclude=None, gptq_format=None, compression_dim=1,
                                  progress=None, bar=None, return_tensors=None, _events=None):
        """Quantizes a {name: torch.Tensor | numpy.ndarray} mapping on the servers.

        The tensors are selected and their outputs planned by the rules of `rtnq quantize`
        (include/exclude patterns, the config's weight_config; see the README), the config is
        checked before any tensor is sent, and each tensor is streamed in chunks sliced from
        its own memory. Returns a QuantizedStateDict (outputs as torch tensors when torch is
        importable, else numpy; return_tensors="numpy"/"torch" to choose) with a report;
        progress(event) is called per finished tensor, bar=True/False forces a tqdm bar."""
        self._ensure_channel()
        run = _run.StateDictRun(state_dict, config, format, include, exclude, gptq_format,
                                compression_dim, return_tensors, self.describe())
        events = _events or _InLoop(_run.Progress(progress, bar))
        try:
            events.start(len(run.views), run.total_bytes())
            for report in run.passthrough():
                events.deliver(report)
            jobs = run.jobs()
            if jobs:
                await self._run_jobs(run, jobs, events)
        except _Abort as e:
            raise e.__cause__ from None
        finally:
            events.close()
        return run.result()

    async def _run_jobs(self, run, jobs, events):
        workers = [_Worker(self, run.plan) for _ in range(min(self.streams, len(jobs)))]
        # Every stream is open (its config accepted) before any tensor is sent.
        await _all_or_cancel([w.start() for w in workers], workers)
        queue = list(reversed(jobs))

        async def work(w):
            ok = False
            try:
                while queue:
                    i = queue.pop()
                    v = run.views[i]
                    t0 = time.monotonic()
                    header, metrics, attempts = await w.quantize(v.name, v.dtype, v.shape,
                                                                 v.data, run.sink(i))
                    events.deliver(run.finish(i, header, _run.metrics_dict(metrics), attempts,
                                              time.monotonic() - t0))
                ok = True
            finally:
                if ok:
                    await w.end()
                else:
                    w.drop()

        await _all_or_cancel([work(w) for w in workers], workers)

    async def quantize_checkpoint(self, src, dst, config=None, format="fake", *, include=None,
                                  exclude=None, gptq_format=None, compression_dim=1,
                                  resume=False, report_path=None, progress=None, bar=None,
                                  _events=None):
        """Quantizes a checkpoint (a .safetensors file, a sharded or a Hugging Face directory)
        into `dst` exactly as `rtnq quantize SRC -o DST --server ...` does, byte for byte: the
        C++ client plans, writes and journals (resume=True reuses a failed run's finished
        tensors) while this client streams each tensor. Returns the --report document."""
        self._ensure_channel()
        loop = asyncio.get_running_loop()
        events = _events or _Threadsafe(loop, _InLoop(_run.Progress(progress, bar)))
        bridge = _Bridge(self, loop)
        options = _run.run_options(src, dst, config, format, include, exclude, gptq_format,
                                   compression_dim, self.streams, resume, report_path)
        c_run = _run.CheckpointRun(options, bridge, None, events.deliver, events.start,
                                   self.describe())
        bridge.c_run = c_run
        events.on_error(bridge.abort)
        fut = loop.run_in_executor(None, c_run.run)
        try:
            return await _wait_thread(fut, bridge.abort, events)
        finally:
            events.close()

    @staticmethod
    def save_pretrained(result, path, config=None):
        """Writes a quantize_state_dict result as a checkpoint (see rtnq.save_pretrained)."""
        return result.save_pretrained(path, config)


class _InLoop:
    """Progress delivered in the event loop. An exception from the user's callback (say a
    KeyboardInterrupt) is kept and cancels the run, which then raises it."""

    def __init__(self, prog):
        self.prog = prog
        self.error = None
        self._on_error = []

    def on_error(self, f):
        self._on_error.append(f)

    def start(self, tensors, nbytes):
        self.prog.start(tensors, nbytes)

    def deliver(self, report):
        if self.error is not None:
            return
        try:
            self.prog.emit(report)
        except BaseException as e:  # noqa: BLE001 - re-raised by the run
            self.error = e
            for f in self._on_error:
                f()
            if asyncio.current_task() is not None:
                raise _Abort() from e

    def close(self):
        self.prog.close()


class _Threadsafe:
    """Hands progress from the C++ run's threads to the event loop."""

    def __init__(self, loop, inner):
        self.loop, self.inner = loop, inner

    @property
    def error(self):
        return self.inner.error

    def on_error(self, f):
        self.inner.on_error(f)

    def start(self, tensors, nbytes):
        self.loop.call_soon_threadsafe(self.inner.start, tensors, nbytes)

    def deliver(self, report):
        self.loop.call_soon_threadsafe(self.inner.deliver, report)

    def close(self):
        self.inner.close()


class _Abort(Exception):
    """Unwinds a run after the progress callback raised; the callback's exception follows."""


async def _all_or_cancel(coros, workers):
    """Runs coroutines until all finish; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                raise failed[0].exception()
    except BaseException:
        for t in tasks:
            t.cancel()
        for w in workers:
            w.drop()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _wait_thread(fut, on_cancel, events):
    """Awaits a C++ run in an executor thread; if this task is cancelled or the progress
    callback raised, cancels the run and still waits for the thread before raising."""
    try:
        result = await asyncio.shield(fut)
    except BaseException:
        on_cancel()
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                continue
            except BaseException:  # noqa: BLE001 - the run's own error after cancelling
                break
        if events.error is not None:
            raise events.error from None
        raise
    await asyncio.sleep(0)  # let queued progress run before judging
    if events.error is not None:
        raise events.error
    return result


class _Bridge:
    """The C++ run's sessions, served by workers on the event loop."""

    def __init__(self, client, loop):
        self.client = client
        self.loop = loop
        self.workers = {}
        self.lock = threading.Lock()
        self.c_run = None

    def _call(self, coro):
        # Once the run is aborted no C++ thread waits on the loop: a call still running then is
        # cancelled (its stream with it) and this thread returns, so the run always ends.
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        while True:
            try:
                return fut.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if self.c_run is not None and self.c_run.aborted.is_set():
                    fut.cancel()
                    raise asyncio.CancelledError() from None
            except concurrent.futures.CancelledError:
                raise asyncio.CancelledError() from None

    def open_session(self, spec):
        w = _Worker(self.client, spec)
        with self.lock:
            sid = len(self.workers)
            self.workers[sid] = w
        self._call(w.start())
        return sid

    def quantize(self, sid, name, dtype, shape, data, builder):
        w = self.workers[sid]
        try:
            header, metrics, attempts = self._call(
                w.quantize(name, dtype, shape, data, _run.BuilderSink(builder)))
        except asyncio.CancelledError:
            raise RtnqError(CANCELLED, f"tensor {name!r}: cancelled", name) from None
        from . import _capi
        _capi.builder_set(builder, _wire.result_header(header, metrics,
                                                       self.client.describe(), attempts))

    def close_session(self, sid):
        w = self.workers.get(sid)
        if w is not None:
            self._call(w.end())

    def abort(self):
        if self.c_run is not None:
            self.c_run.aborted.set()

        def drop_all():
            for w in list(self.workers.values()):
                w.drop()
        self.loop.call_soon_threadsafe(drop_all)


__all__ = ["Client", "Tls", "resolve_target"]
