"""``LocalEndpoint``: a real HTTP/1.1 server (h11 + anyio) imitating Azure ML chat endpoints."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import h11

from ._app import ChatApp
from ._capacity import Capacity, CapacityStats
from ._faults import Fault, FaultQueue, apply_fault, fault_reply, wire_plan
from ._models import RecordedRequest, Responder
from ._reply import Reply, azure_error, json_reply, reason_phrase

__all__ = ["LocalEndpoint"]

logger: logging.Logger = logging.getLogger("azml_chat.testing")
#: One INFO line per request (``azml-chat serve`` shows them); silent unless configured.
access_log: logging.Logger = logging.getLogger("azml_chat.testing.access")

_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
    h11.LocalProtocolError,
)
_LINGER_SECONDS = 2.0

T = TypeVar("T")


class _Forwarded(Generic[T]):
    """A ``LocalEndpoint`` attribute that reads and writes a setting of the objects it holds.

    ``path`` is dotted from the endpoint (default ``app.<attribute name>``).
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def __set_name__(self, owner: type, name: str) -> None:
        if self.path is None:
            self.path = f"app.{name}"

    def _holder(self, endpoint: LocalEndpoint) -> tuple[Any, str]:
        assert self.path is not None
        *parents, name = self.path.split(".")
        holder: Any = endpoint
        for parent in parents:
            holder = getattr(holder, parent)
        return holder, name

    @overload
    def __get__(self, endpoint: None, owner: type) -> _Forwarded[T]: ...
    @overload
    def __get__(self, endpoint: LocalEndpoint, owner: type) -> T: ...
    def __get__(self, endpoint: LocalEndpoint | None, owner: type) -> T | _Forwarded[T]:
        if endpoint is None:
            return self
        holder, name = self._holder(endpoint)
        value: T = getattr(holder, name)
        return value

    def __set__(self, endpoint: LocalEndpoint, value: T) -> None:
        holder, name = self._holder(endpoint)
        setattr(holder, name, value)


class LocalEndpoint:
    """A local HTTP server that behaves like an Azure chat endpoint of one ``kind``.

    Use ``async with LocalEndpoint() as ep`` to serve in the current event loop (asyncio or
    trio), or ``with LocalEndpoint() as ep`` / ``start()``/``stop()`` to serve from a
    background thread.

    - ``kind``: which Azure endpoint to imitate, with its routes, key header and api-version
      rules (see ``azml_chat.testing._routes``): ``"serverless"`` and ``"dedicated"`` (Azure
      ML: both serve ``/score`` and the chat-completions routes; ``dedicated`` takes the key
      as Bearer only), ``"foundry"`` (``/models/chat/completions``, ``/openai/v1`` and
      project-scoped ``/openai/v1``; ``model`` required) and ``"azure-openai"``
      (``/openai/v1`` and ``/openai/deployments/<d>``). ``kind`` also picks ``url``.

    - ``family``: body of ``/score``: ``"llama"`` (aliases ``"hf"``, ``"phi"``, ``"mistral"``:
      chat dicts in ``input_data.input_string``), ``"text-generation"`` (prompt strings) or
      ``"openai"`` (an OpenAI chat body).
    - ``reply_shape``: ``/score`` reply: ``"output"``, ``"list0"``, ``"generated_text"``,
      ``"output_list"``, ``"list"``, ``"openai"`` or ``"double_encoded"`` (default by family).
    - ``api_key`` / ``token_validator``: accepted credentials (``Authorization: Bearer`` or
      ``api-key``); auth is off when both are None.
    - ``deployments``: allowed values of the ``azureml-model-deployment`` header (Azure ML
      kinds), or the model deployments a Foundry / Azure OpenAI resource has (the body's
      ``model``, the path's deployment); None: any.
    - ``responder``: ``ChatTurn -> str | ScriptedReply`` (may be async); default echoes the
      last user message. Sync responders run in the event loop: keep them fast.
    - ``max_body_bytes``: larger request bodies get 413.
    - ``sse_comments``: start streams with a ``: ping`` comment line and send another before
      ``data: [DONE]``, for tests of comment handling. Off by default, as on Azure (some of
      Microsoft's own clients fail on comment lines).

    The capacity model (for adaptive clients and batch runners; see ``capacity_stats``):

    - ``capacity``: at most this many model requests (chat and ``/score`` routes) in
      flight; beyond, 429 ``TooManyRequests`` at once. A request holds its slot from
      arrival until its reply is fully sent (or its connection is dropped). None: no limit.
    - ``service_time``: seconds every admitted model request takes before its reply
      starts, holding its slot (with ``capacity=8, service_time=0.05`` the endpoint serves
      at most 160 requests/s).
    - ``requests_per_minute``: a budget of admissions in any ``rate_window`` seconds
      (scaled: ``requests_per_minute * rate_window / 60``); beyond, 429 with the exact wait
      in ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``. Replies of
      admitted requests carry ``x-ratelimit-limit-requests`` and
      ``x-ratelimit-remaining-requests``. Refused requests spend no budget.
    - ``rate_window``: the budget's sliding window in seconds (default 60).
    - ``retry_after``: seconds announced on 429s of the ``capacity`` limit (None: no header,
      as managed online endpoints send none).
    - ``clock``: the time source of the budget, in seconds (default: the serving event
      loop's clock); tests pass a fake one for exact, repeatable windows.

    Faults come first: a fault that replaces the reply is sent without taking capacity.

    The settings above are attributes too (forwarded to ``app``, the ``ChatApp`` that
    answers requests) and may be changed while the server runs.
    """

    kind: _Forwarded[str] = _Forwarded()
    family: _Forwarded[str] = _Forwarded()
    reply_shape: _Forwarded[str] = _Forwarded()
    api_key: _Forwarded[str | None] = _Forwarded()
    token_validator: _Forwarded[Callable[[str], bool] | None] = _Forwarded()
    deployments: _Forwarded[list[str] | None] = _Forwarded()
    model_name: _Forwarded[str] = _Forwarded()
    responder: _Forwarded[Responder] = _Forwarded()
    sse_comments: _Forwarded[bool] = _Forwarded()
    capacity: _Forwarded[int | None] = _Forwarded("app.limits.max_in_flight")
    service_time: _Forwarded[float] = _Forwarded("app.limits.service_time")
    requests_per_minute: _Forwarded[float | None] = _Forwarded("app.limits.requests_per_minute")
    rate_window: _Forwarded[float] = _Forwarded("app.limits.rate_window")
    retry_after: _Forwarded[float | None] = _Forwarded("app.limits.retry_after")

    def __init__(
        self,
        *,
        kind: Literal["serverless", "dedicated", "foundry", "azure-openai"] = "serverless",
        family: str = "llama",
        reply_shape: str | None = None,
        api_key: str | None = "test-key",
        token_validator: Callable[[str], bool] | None = None,
        deployments: Sequence[str] | None = None,
        model_name: str = "local-model",
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 10_000_000,
        sse_comments: bool = False,
        capacity: int | None = None,
        service_time: float = 0.0,
        requests_per_minute: float | None = None,
        rate_window: float = 60.0,
        retry_after: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        limits = Capacity(
            max_in_flight=capacity,
            requests_per_minute=requests_per_minute,
            rate_window=rate_window,
            retry_after=retry_after,
            service_time=service_time,
        )
        self.app: ChatApp = ChatApp(
            kind=kind,
            family=family,
            reply_shape=reply_shape,
            api_key=api_key,
            token_validator=token_validator,
            deployments=deployments,
            model_name=model_name,
            responder=responder,
            sse_comments=sse_comments,
            limits=limits,
            clock=clock,
        )
        self.host = host
        self.max_body_bytes = max_body_bytes
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()  # guards _requests
        self._faults = FaultQueue()
        self._requests: list[RecordedRequest] = []
        self._active = 0  # requests being answered (from their head to their last byte)
        self._idle: anyio.Event | None = None  # set when _active drops to 0 during drain()
        self._accept_scopes: list[anyio.CancelScope] = []
        self._listener: anyio.abc.Listener[Any] | None = None
        self.open_connections: int = 0  #: currently open TCP connections
        self.total_connections: int = 0  #: connections accepted since start
        self._stack: contextlib.AsyncExitStack | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<LocalEndpoint {self.kind} {self.family} {where}>"

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening TCP port (raises ``RuntimeError`` before start)."""
        if self._port is None:
            raise RuntimeError("LocalEndpoint is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def score_url(self) -> str:
        """The dedicated scoring URL (``/score``)."""
        return self.base_url + "/score"

    @property
    def chat_url(self) -> str:
        """The serverless chat completions URL (``/v1/chat/completions``)."""
        return self.base_url + "/v1/chat/completions"

    @property
    def models_url(self) -> str:
        """The Azure AI model inference URL (``/models/chat/completions``; add ``?api-version=``)."""
        return self.base_url + "/models/chat/completions"

    @property
    def openai_v1_url(self) -> str:
        """The OpenAI v1 chat URL of Foundry and Azure OpenAI (``/openai/v1/chat/completions``)."""
        return self.base_url + "/openai/v1/chat/completions"

    def project_url(self, project: str) -> str:
        """A Foundry project's OpenAI v1 chat URL (``/api/projects/<project>/openai/v1/...``)."""
        return f"{self.base_url}/api/projects/{project}/openai/v1/chat/completions"

    def deployment_url(self, deployment: str) -> str:
        """An Azure OpenAI deployment's chat URL (``/openai/deployments/<d>/...``; add ``?api-version=``)."""
        return f"{self.base_url}/openai/deployments/{deployment}/chat/completions"

    @property
    def url(self) -> str:
        """The endpoint URL for ``kind``: ``/score`` (dedicated), ``/v1/chat/completions``
        (serverless), ``/models/chat/completions`` (foundry), ``/openai/v1/chat/completions``
        (azure-openai)."""
        urls = {"dedicated": self.score_url, "foundry": self.models_url, "azure-openai": self.openai_v1_url}
        return urls.get(self.kind, self.chat_url)

    # -- scripting and recording -----------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; a request consumes the first queued fault whose ``path`` matches."""
        self._faults.add(fault)

    def clear(self) -> None:
        """Forget queued faults and recorded requests."""
        self._faults.clear()
        with self._lock:
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def capacity_stats(self) -> CapacityStats:
        """Counters of the capacity model: admitted, 429s by cause, in flight now and at peak."""
        return self.app.limits.stats()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not yet (fully) consumed."""
        return self._faults.pending()

    # -- async lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> LocalEndpoint:
        """Start serving in the current event loop; enter and exit in the same task."""
        if self._stack is not None:
            raise RuntimeError("LocalEndpoint is already running")
        async with contextlib.AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self._requested_port)
            await stack.enter_async_context(listener)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # runs first on exit: stop everything
            self._port = listener.extra(anyio.abc.SocketAttribute.local_port)
            self.open_connections = self.total_connections = 0
            self._listener = listener
            for sub in listener.listeners:
                assert isinstance(sub, anyio.abc.SocketListener)
                tg.start_soon(self._accept_loop, sub, tg)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every connection and stop listening."""
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.__aexit__(exc_type, exc, tb)
            finally:
                self._port = None
                self._listener = None
                self._accept_scopes.clear()

    async def _accept_loop(self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        with anyio.CancelScope() as scope:
            self._accept_scopes.append(scope)
            while True:
                try:
                    stream = await listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # drain() closed the listener
                except OSError as exc:  # e.g. EMFILE: back off instead of dying
                    logger.warning("accept failed: %s", exc)
                    await anyio.sleep(0.05)
                    continue
                self.open_connections += 1
                self.total_connections += 1
                tg.start_soon(self._serve_connection, stream)

    async def drain(self, grace: float) -> None:
        """Stop taking connections, then wait up to ``grace`` seconds for requests in progress.

        For a graceful shutdown in async mode: call it before leaving ``async with``, which
        then closes whatever is still open (idle keep-alive connections, requests that
        outlived the grace period).
        """
        for scope in self._accept_scopes:
            scope.cancel()
        self._accept_scopes.clear()
        if self._listener is not None:
            await self._listener.aclose()
        if self._active:
            self._idle = anyio.Event()
            with anyio.move_on_after(grace):
                await self._idle.wait()

    async def serve_until_signal(
        self, *, grace: float = 5.0, on_ready: Callable[[LocalEndpoint], None] | None = None
    ) -> int:
        """Serve in the current event loop (main thread) until SIGINT or SIGTERM, then shut down.

        ``on_ready(self)`` is called once listening. On a signal, new connections are
        refused, requests in progress get up to ``grace`` seconds to finish, and the rest
        is closed. Returns the signal's number. This is ``azml-chat serve``.
        """
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with self:
                if on_ready is not None:
                    on_ready(self)
                async for signum in signals:
                    logger.info("received signal %d: finishing requests in progress (up to %gs)", signum, grace)
                    await self.drain(grace)
                    return int(signum)
        raise RuntimeError("the signal receiver ended without a signal")  # pragma: no cover

    # -- thread lifecycle ------------------------------------------------------------------

    def start(self, backend: str = "asyncio") -> LocalEndpoint:
        """Serve from a daemon thread running its own event loop; return once listening."""
        if self._thread is not None or self._stack is not None:
            raise RuntimeError("LocalEndpoint is already running")
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            try:
                anyio.run(self._serve_until_stopped, ready, backend=backend)
            except BaseException as exc:
                if ready.is_set():
                    logger.exception("LocalEndpoint thread crashed")
                errors.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=main, name="azml-local-endpoint", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    async def _serve_until_stopped(self, ready: threading.Event) -> None:
        async with self:
            self._stop_event = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            ready.set()
            await self._stop_event.wait()

    def stop(self) -> None:
        """Stop a server started with ``start()``: close all connections and join the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._stop_event is not None and self._token is not None and thread.is_alive():
            with contextlib.suppress(anyio.RunFinishedError):
                anyio.from_thread.run_sync(self._stop_event.set, token=self._token)
        thread.join()
        self._stop_event = self._token = None

    def __enter__(self) -> LocalEndpoint:
        """Same as ``start()``."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Same as ``stop()``."""
        self.stop()

    # -- HTTP/1.1 --------------------------------------------------------------------------

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await self._next_event(conn, stream)
                if not isinstance(event, h11.Request):
                    break
                req, too_large = await self._read_request(conn, stream, event)
                if not await self._answer(conn, stream, req, too_large):
                    break
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(*_STREAM_ERRORS):
                status = exc.error_status_hint
                reply = json_reply(status, {"message": f"Bad HTTP request: {exc}"})
                await self._send_reply(conn, stream, reply, {"connection": "close"}, None)
        except _STREAM_ERRORS:
            pass
        except Exception:
            logger.exception("LocalEndpoint connection handler failed")
        finally:
            self.open_connections -= 1
            try:
                with anyio.move_on_after(_LINGER_SECONDS):
                    await _lingering_close(stream)
            finally:
                await anyio.aclose_forcefully(stream)

    async def _next_event(self, conn: h11.Connection, stream: anyio.abc.SocketStream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await stream.receive(65536)
            except anyio.EndOfStream:
                data = b""
            conn.receive_data(data)

    async def _read_request(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, head: h11.Request
    ) -> tuple[RecordedRequest, bool]:
        if conn.client_is_waiting_for_100_continue:
            await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(conn, stream)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size <= self.max_body_bytes:
                    chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # pragma: no cover - h11 only yields Data/EndOfMessage here
                raise anyio.EndOfStream
        too_large = size > self.max_body_bytes
        body = b"" if too_large else b"".join(chunks)
        headers: dict[str, str] = {}
        for name, value in head.headers:
            key, val = name.decode("latin-1"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {val}" if key in headers else val
        target = urlsplit(head.target.decode("latin-1"))
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = RecordedRequest(
            method=head.method.decode("ascii", "replace"),
            path=unquote(target.path),
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            json=parsed,
        )
        return req, too_large

    async def _answer(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        req: RecordedRequest,
        too_large: bool,
    ) -> bool:
        started = time.perf_counter()
        with self._lock:
            self._requests.append(req)
        self._active += 1
        status, completed = 0, False
        try:
            fault = self._faults.take(req.method, req.path)
            if too_large:
                msg = f"Request body exceeds {self.max_body_bytes} bytes."
                reply = azure_error(413, "PayloadTooLarge", msg)
            elif fault is not None and fault.replaces_reply:
                reply = fault_reply(fault)
            else:
                reply = await self.app.handle(req)
            if fault is not None:
                reply = apply_fault(reply, fault)
            status = reply.status
            headers = self.app.reply_headers(req) | reply.headers
            try:
                completed = await self._send_reply(conn, stream, reply, headers, fault)
                return completed
            finally:
                if reply.on_sent is not None:
                    reply.on_sent()
        finally:
            self._active -= 1
            if not self._active and self._idle is not None:
                self._idle.set()
            if access_log.isEnabledFor(logging.INFO):
                self._log_request(req, status, completed, time.perf_counter() - started)

    def _log_request(self, req: RecordedRequest, status: int, completed: bool, seconds: float) -> None:
        """One access-log line: method, path (no query), status, latency, deployment; never a key."""
        deployment = self.app.deployment_name(req) or "-"
        outcome = "" if completed else " (connection closed)"
        access_log.info(
            "%s %s %s %.1fms deployment=%s%s",
            req.method,
            req.path,
            status or "-",
            seconds * 1000,
            deployment,
            outcome,
        )

    async def _send_reply(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        reply: Reply,
        headers: dict[str, str],
        fault: Fault | None,
    ) -> bool:
        """Put ``reply`` on the wire, misbehaving as ``fault`` says; False: close the connection."""
        plan = wire_plan(reply, fault)
        if plan.delay_before_headers > 0:
            await anyio.sleep(plan.delay_before_headers)
        if not plan.send_head:
            return False
        headers = {"content-type": reply.content_type, **headers}
        if reply.events is None:
            headers["content-length"] = str(len(reply.body))
        else:
            headers["transfer-encoding"] = "chunked"
        head = h11.Response(
            status_code=reply.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            reason=reason_phrase(reply.status).encode(),
        )
        # Bytes are gathered and written at once unless a gap separates them: one write per
        # reply keeps the server cheap under load (each SSE event is still its own chunk).
        out = [conn.send(head) or b""]
        for i, piece in enumerate(plan.pieces):
            if i and plan.gap > 0:
                await stream.send(b"".join(out))
                out = []
                await anyio.sleep(plan.gap)
            out.append(conn.send(h11.Data(data=piece)) or b"")
        if plan.complete:
            out.append(conn.send(h11.EndOfMessage()) or b"")
        await stream.send(b"".join(out))
        return plan.complete


async def _lingering_close(stream: anyio.abc.SocketStream) -> None:
    """Send FIN after all data, then read until the client closes (avoids RST losing data)."""
    with contextlib.suppress(*_STREAM_ERRORS):
        await stream.send_eof()
        while True:
            await stream.receive(65536)
