"""The core's decisions, without sockets: every test here runs in milliseconds.

Status mapping, retry decisions and waits, the attempt machine (driven by :class:`Pump`,
a scripted transport that performs the flow's actions and checks the release rule),
``prepare()``, redaction and :class:`StreamState`. The same behaviour is checked over
real HTTP by the client suites (``test_faults.py``, ``test_streaming.py``, ...).
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from azml_chat import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    ChatFormatter,
    ChatResponse,
    InvalidRequestError,
    Message,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    StreamChunk,
    StreamError,
    ToolCall,
)
from azml_chat._auth import TokenProvider
from azml_chat._core import (
    GET_TOKEN,
    Attempts,
    Call,
    Emit,
    Notify,
    Read,
    Release,
    Send,
    Sleep,
    StreamState,
    info_call,
    is_retryable,
    parse_retry_after,
    prepare,
    redact,
    retry_delay,
    status_error,
)
from azml_chat._json import dumps, loads, loads_exact
from azml_chat._wire import coerce_messages, plain_wire_messages, split_think
from azml_chat.config import ClientSettings
from azml_chat.hooks import AttemptInfo, CallInfo

SERVERLESS = "https://ep.eastus.models.ai.azure.com/v1/chat/completions"
DEDICATED = "https://ep.eastus.inference.ml.azure.com/score"
KEY = "sk-test-0123456789abcdef"
POLICY = RetryPolicy(initial_backoff=1.0, max_backoff=4.0, max_retry_after=20.0)
OK_BODY = json.dumps(
    {"id": "c1", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
).encode()
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}


def make_settings(url: str = SERVERLESS, **options: Any) -> ClientSettings:
    options.setdefault("api_key", KEY)
    options.setdefault("retry_policy", POLICY)
    return ClientSettings.create("ChatClient", url, options)


def make_call(settings: ClientSettings, *, stream: bool = False, **params: Any) -> Call:
    return prepare(settings, "hello", params, stream=stream, owner="ChatClient.chat", include_defaults=False)


def call_info() -> CallInfo:
    return CallInfo("chat", "serverless", "v1-chat", SERVERLESS, "ep", 443, None, None, {}, (), "rid")


# --- a scripted transport that pumps a flow --------------------------------------------------


@dataclass
class Reply:
    """What one send gets: a status, headers, and the body pieces (an error raises on that read)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON))
    pieces: list[bytes | AzureMLChatError] = field(default_factory=lambda: [OK_BODY])


class Handle:
    def __init__(self, number: int, reply: Reply) -> None:
        self.number = number
        self.pieces = list(reply.pieces)
        self.released = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pump:
    """Performs a flow's actions against scripted outcomes, the way the clients' pumps do.

    ``outcomes`` are, in order, what each ``Send`` gets (a :class:`Reply`, or an error the
    transport raised). Every read advances ``clock`` by ``read_seconds``. It records every
    action and checks the transport's release rule: each handle released exactly once,
    never read after its release.
    """

    def __init__(
        self, outcomes: list[Reply | AzureMLChatError], *, clock: Clock | None = None, read_seconds: float = 0.0
    ) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock or Clock()
        self.read_seconds = read_seconds
        self.actions: list[str] = []
        self.sent: list[Any] = []
        self.handles: list[Handle] = []
        self.slept: list[float] = []
        self.emitted: list[StreamChunk] = []
        self.notified: list[AttemptInfo] = []
        self.tokens: Any = None

    def run(self, flow: Any) -> Any:
        value: Any = None
        try:
            while True:
                try:
                    action = flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value = self.perform(action)
        finally:
            flow.close()
            self.check_released()

    def perform(self, action: Any) -> Any:
        if isinstance(action, Send):
            self.actions.append("send")
            self.sent.append(action.request)
            outcome = self.outcomes.pop(0)
            if isinstance(outcome, AzureMLChatError):
                return outcome
            handle = Handle(len(self.handles), outcome)
            self.handles.append(handle)
            return outcome.status, outcome.headers, handle
        if isinstance(action, Read):
            handle = action.handle
            assert not handle.released, "read after release"
            self.actions.append("read")
            self.clock.now += self.read_seconds
            return handle.pieces.pop(0) if handle.pieces else b""
        if isinstance(action, Release):
            self.actions.append("release")
            action.handle.released += 1
            return None
        if isinstance(action, Sleep):
            self.actions.append(f"sleep {action.seconds:g}")
            self.slept.append(action.seconds)
            return None
        if isinstance(action, Emit):
            self.actions.append("emit")
            self.emitted.append(action.chunk)
            return None
        if isinstance(action, Notify):
            self.actions.append("notify")
            self.notified.append(action.info)
            return None
        assert action is GET_TOKEN, action
        self.actions.append("token")
        return self.tokens.get()

    def check_released(self) -> None:
        assert [handle.released for handle in self.handles] == [1] * len(self.handles), "a handle not released once"


def attempts(
    settings: ClientSettings,
    *,
    stream: bool = False,
    tokens: Any = None,
    clock: Clock | None = None,
    info: CallInfo | None = None,
    **params: Any,
) -> Attempts:
    call = make_call(settings, stream=stream, **params)
    return Attempts(call, settings, tokens, clock=clock or Clock(), info=info)


def chunk(content: str, index: int = 0, **extra: Any) -> bytes:
    """One SSE event carrying a content delta."""
    delta = {"choices": [{"index": index, "delta": {"content": content}, **extra}]}
    return b"data: " + json.dumps(delta).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
STATUS_BODY = b'{"error": {"code": "Busy", "message": "try later"}}'


@dataclass(frozen=True)
class Flow:
    """One row of the attempt-machine table."""

    name: str
    method: str  # chat | stream | info
    outcomes: list[Reply | AzureMLChatError]
    actions: list[str]
    result: str | type[AzureMLChatError]  # the reply's content, or the error raised
    match: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    read_seconds: float = 0.0
    slept: tuple[float, ...] | None = None  # exact waits, where no jitter applies
    emitted: tuple[str, ...] | None = None


def busy(status: int = 503, **headers: str) -> Reply:
    return Reply(status, {**JSON, **headers}, [STATUS_BODY])


OK = ["send", "read", "read", "release"]  # a reply read to its end and released
FAILED = ["send", "read", "read", "release"]  # the same for an error status: its body is read for the message

FLOWS = [
    Flow("ok", "chat", [Reply()], OK, "hi"),
    Flow("send fails, then ok", "chat", [APIConnectionError("refused"), Reply()], ["send", "sleep", *OK], "hi"),
    Flow(
        "503 with retry-after-ms, then ok",
        "chat",
        [busy(**{"retry-after-ms": "1500"}), Reply()],
        [*FAILED, "sleep", *OK],
        "hi",
        slept=(1.5,),
    ),
    Flow(
        "retries exhausted",
        "chat",
        [busy(**{"retry-after": "2"})] * 3,
        [*FAILED, "sleep", *FAILED, "sleep", *FAILED],
        ServerError,
        "try later",
        slept=(2.0, 2.0),
    ),
    Flow("per-call max_retries=0", "chat", [busy()], FAILED, ServerError, params={"max_retries": 0}),
    Flow("404 is not retried", "chat", [busy(404)], FAILED, NotFoundError, "check the URL path"),
    Flow(
        "a wait beyond max_retry_after fails at once",
        "chat",
        [busy(429, **{"retry-after": "100"})],
        FAILED,
        RateLimitError,
        "asked to wait 100s, more than RetryPolicy.max_retry_after=20s",
    ),
    Flow(
        "the error body cannot be read",
        "chat",
        [Reply(500, JSON, [APIConnectionError("reset")])],
        ["send", "read", "release"],
        ServerError,
        "500 error",
        params={"max_retries": 0},
    ),
    Flow(
        "the error body is over the limit",
        "chat",
        [Reply(500, JSON, [b"x" * 40])],
        ["send", "read", "release"],
        ServerError,
        "500 error",
        options={"max_response_bytes": 32},
        params={"max_retries": 0},
    ),
    Flow(
        "the body is over the limit",
        "chat",
        [Reply(200, JSON, [OK_BODY[:20], OK_BODY[20:]])],
        ["send", "read", "read", "release"],
        ResponseFormatError,
        "larger than max_response_bytes=32",
        options={"max_response_bytes": 32},
    ),
    Flow(
        "the body breaks off: not retried",
        "chat",
        [Reply(200, JSON, [OK_BODY[:10], APIConnectionError("reset")]), Reply()],
        ["send", "read", "read", "release"],
        APIConnectionError,
        "reset",
    ),
    Flow(
        "the whole reply outlasts the per-attempt deadline",
        "chat",
        [Reply(200, JSON, [OK_BODY[:10], OK_BODY[10:20], OK_BODY[20:]])],
        ["send", "read", "read", "release"],
        APITimeoutError,
        "the whole reply took longer than timeout=5s",
        options={"timeout": 5},
        read_seconds=3.0,
    ),
    Flow(
        "the same reply within the deadline",
        "chat",
        [Reply(200, JSON, [OK_BODY[:10], OK_BODY[10:20], OK_BODY[20:]])],
        ["send", "read", "read", "read", "read", "release"],
        "hi",
        options={"timeout": 5},
        read_seconds=1.0,
    ),
    Flow("a 200 error body", "chat", [Reply(200, JSON, [b'{"error": "boom"}'])], OK, ModelError, "boom"),
    Flow("an HTML page", "chat", [Reply(200, JSON, [b"<html>hi</html>"])], OK, ResponseFormatError, "HTML page"),
    Flow(
        "stream: SSE",
        "stream",
        [Reply(200, SSE, [chunk("a") + chunk("b"), chunk("c", finish_reason="stop") + DONE])],
        ["send", "read", "emit", "emit", "read", "emit", "read", "release"],  # read to the end: back to the pool
        "abc",
        emitted=("a", "b", "c"),
    ),
    Flow(
        "stream: not SSE, the whole reply as one chunk",
        "stream",
        [Reply()],
        [*OK, "emit"],
        "hi",
        emitted=("hi",),
    ),
    Flow(
        "stream: failure before the first chunk is retried",
        "stream",
        [busy(**{"retry-after-ms": "0"}), Reply(200, SSE, [chunk("a") + DONE])],
        [*FAILED, "sleep", "send", "read", "emit", "read", "release"],
        "a",
        slept=(0.0,),
    ),
    Flow(
        "stream: what follows [DONE] is ignored, even an error",
        "stream",
        [Reply(200, SSE, [chunk("a") + DONE + b"data: {broken\n\n", APIConnectionError("reset")])],
        ["send", "read", "emit", "read", "release"],
        "a",
    ),
    Flow(
        "stream: after [DONE] at most 64 KiB is drained",
        "stream",
        [Reply(200, SSE, [chunk("a") + DONE, b"x" * 70_000, b"never read"])],
        ["send", "read", "emit", "read", "release"],
        "a",
    ),
    Flow(
        "stream: an error event mid-stream",
        "stream",
        [Reply(200, SSE, [chunk("a"), b'event: error\ndata: {"error": {"message": "overloaded"}}\n\n', DONE])],
        ["send", "read", "emit", "read", "release"],
        StreamError,
        "overloaded",
    ),
    Flow(
        "stream: the connection breaks mid-stream: not retried",
        "stream",
        [Reply(200, SSE, [chunk("a"), APIConnectionError("reset")]), Reply()],
        ["send", "read", "emit", "read", "release"],
        StreamError,
        "the stream broke before \\[DONE\\]: reset",
    ),
    Flow(
        "stream: a read time-out mid-stream stays a time-out",
        "stream",
        [Reply(200, SSE, [chunk("a"), APITimeoutError("timed out waiting")])],
        ["send", "read", "emit", "read", "release"],
        APITimeoutError,
        "timed out waiting",
    ),
    Flow(
        "stream: the body ends before [DONE]",
        "stream",
        [Reply(200, SSE, [chunk("a")])],
        ["send", "read", "emit", "read", "release"],
        StreamError,
        "before \\[DONE\\]: the connection was closed early",
    ),
    Flow(
        "stream: over the limit",
        "stream",
        [Reply(200, SSE, [chunk("a" * 40)])],
        ["send", "read", "release"],
        ResponseFormatError,
        "max_response_bytes=32",
        options={"max_response_bytes": 32},
    ),
    Flow("info", "info", [Reply(200, JSON, [b'{"model_name": "phi"}'])], OK, "phi"),
    Flow("info: not an object", "info", [Reply(200, JSON, [b"[1]"])], OK, ResponseFormatError, "not return a JSON"),
    Flow("info: 404 is not retried", "info", [busy(404)], FAILED, NotFoundError, "GET /info"),
    Flow(
        "info: 503 is retried",
        "info",
        [busy(**{"retry-after-ms": "0"}), Reply(200, JSON, [b'{"model_name": "phi"}'])],
        [*FAILED, "sleep", *OK],
        "phi",
        slept=(0.0,),
    ),
    Flow(
        "info: the body breaks off",
        "info",
        [Reply(200, JSON, [APIConnectionError("reset")])],
        ["send", "read", "release"],
        APIConnectionError,
    ),
    Flow(
        "stream: not SSE, and the body breaks off",
        "stream",
        [Reply(200, JSON, [OK_BODY[:5], APIConnectionError("reset")])],
        ["send", "read", "read", "release"],
        APIConnectionError,
        "reset",
    ),
]


@pytest.mark.parametrize("case", FLOWS, ids=[case.name for case in FLOWS])
def test_attempt_machine(case: Flow) -> None:
    settings = make_settings(**case.options)
    pump = Pump(case.outcomes, read_seconds=case.read_seconds)
    if case.method == "info":
        machine = Attempts(info_call(settings, False), settings, clock=pump.clock)
        flow = machine.info()
    else:
        call = make_call(settings, stream=case.method == "stream", **case.params)
        machine = Attempts(call, settings, clock=pump.clock)
        flow = machine.chat() if case.method == "chat" else machine.stream()
    if isinstance(case.result, str):
        reply = pump.run(flow)
        assert (reply.model_name if case.method == "info" else reply.content) == case.result
    else:
        with pytest.raises(case.result, match=case.match) as caught:
            pump.run(flow)
        assert "sk-test" not in str(caught.value)
    assert [action.split()[0] for action in pump.actions] == case.actions
    assert machine.sent == pump.actions.count("send")
    if case.slept is not None:
        assert tuple(pump.slept) == case.slept
    if case.emitted is not None:
        assert tuple(chunk.content for chunk in pump.emitted if chunk.content) == case.emitted


def test_backoff_waits_without_retry_after_follow_the_policy() -> None:
    settings = make_settings(max_retries=3)
    pump = Pump([APIConnectionError("refused")] * 3 + [Reply()])
    assert pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat()).content == "hi"
    # initial_backoff * 2**attempt, at most max_backoff, minus up to 25% jitter
    for wait, high in zip(pump.slept, (1.0, 2.0, 4.0), strict=True):
        assert 0.75 * high <= wait <= high


# --- 401 and the token provider --------------------------------------------------------------


class Credential:
    """A credential handing out ``token-1``, ``token-2``, ... valid for an hour."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str) -> Any:
        import time

        self.calls += 1
        return type("Token", (), {"token": f"token-{self.calls}", "expires_on": time.time() + 3600})()


def unauthorized(token: str = "") -> Reply:
    return Reply(401, JSON, [b'{"error": {"message": "bad token ' + token.encode() + b'"}}'])


@pytest.mark.parametrize(
    ("outcomes", "actions", "tokens_sent", "raised"),
    [
        ([Reply()], ["token", *OK], ["token-1"], None),
        ([unauthorized(), Reply()], ["token", *FAILED, "token", *OK], ["token-1", "token-2"], None),
        (
            [unauthorized(), unauthorized("token-2")],  # a fresh token is tried once, not twice
            ["token", *FAILED, "token", *FAILED],
            ["token-1", "token-2"],
            AuthenticationError,
        ),
        (
            [unauthorized(), busy(), Reply()],  # the fresh token's retry does not use up max_retries
            ["token", *FAILED, "token", *FAILED, "sleep", "token", *OK],
            ["token-1", "token-2", "token-2"],
            None,
        ),
    ],
    ids=["ok", "401 then a fresh token", "401 twice", "401, then 503, then ok"],
)
def test_a_401_gets_one_fresh_token(
    outcomes: list[Reply], actions: list[str], tokens_sent: list[str], raised: type[Exception] | None
) -> None:
    settings = ClientSettings.create(
        "ChatClient", DEDICATED, {"credential": Credential(), "retry_policy": POLICY, "max_retries": 1}
    )
    pump = Pump(outcomes)
    pump.tokens = TokenProvider(settings.credential, "https://ml.azure.com/.default")
    machine = Attempts(make_call(settings), settings, pump.tokens, clock=pump.clock)
    if raised is None:
        assert pump.run(machine.chat()).content == "hi"
    else:
        with pytest.raises(raised) as caught:
            pump.run(machine.chat())
        assert "token-2" not in str(caught.value)  # the echoed token is redacted
        assert "[redacted]" in str(caught.value)
    assert [action.split()[0] for action in pump.actions] == actions
    assert [request.headers["authorization"] for request in pump.sent] == [f"Bearer {t}" for t in tokens_sent]
    assert machine.attempt == actions.count("sleep")  # a re-authentication is no retry


def test_a_401_with_a_key_is_not_retried_and_gets_no_hint() -> None:
    settings = make_settings()
    pump = Pump([unauthorized(), Reply()])
    with pytest.raises(AuthenticationError) as caught:
        pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())
    assert pump.actions == FAILED
    assert "no key or credential" not in str(caught.value)


def test_a_401_without_any_key_says_how_to_pass_one() -> None:
    settings = ClientSettings.create("ChatClient", SERVERLESS, {})
    pump = Pump([unauthorized()])
    with pytest.raises(AuthenticationError, match="no key or credential is configured: pass api_key="):
        pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())


# --- hooks: Notify actions -------------------------------------------------------------------


def test_notify_only_when_hooks_listen() -> None:
    outcomes: list[Reply | AzureMLChatError] = [APIConnectionError("refused"), busy(**{"retry-after": "2"}), Reply()]
    settings = make_settings()
    quiet = Pump(list(outcomes))
    quiet.run(Attempts(make_call(settings), settings, clock=quiet.clock).chat())
    assert "notify" not in quiet.actions

    heard = Pump(list(outcomes), read_seconds=0.5)
    machine = Attempts(make_call(settings), settings, clock=heard.clock, info=call_info())
    heard.run(machine.chat())
    assert [a.split()[0] for a in heard.actions] == [
        *["send", "notify", "sleep"],
        *[*FAILED, "notify", "sleep"],
        *["send", "notify", "read", "read", "release"],  # told when the headers arrive
    ]
    first, second, third = heard.notified
    assert (first.attempt, first.status_code, type(first.error), first.retry_in) == (
        0,
        None,
        APIConnectionError,
        heard.slept[0],
    )
    assert (second.attempt, second.status_code, second.retry_in, second.elapsed) == (1, 503, 2.0, 1.0)
    assert (third.attempt, third.status_code, third.error, third.retry_in) == (2, 200, None, None)
    assert all(info.call is machine.call_info for info in heard.notified)


def test_notify_of_the_last_failed_attempt_has_no_retry() -> None:
    settings = make_settings()
    pump = Pump([busy(404)])
    with pytest.raises(NotFoundError):
        pump.run(Attempts(make_call(settings), settings, clock=pump.clock, info=call_info()).chat())
    (info,) = pump.notified
    assert (info.status_code, info.retry_in, type(info.error)) == (404, None, NotFoundError)


# --- status -> error, and which are retried --------------------------------------------------

MODEL_HEADERS = {"ms-azureml-model-error-statuscode": "503", "ms-azureml-model-error-reason": "model_not_ready"}


@pytest.mark.parametrize(
    ("status", "headers", "error", "retried", "retried_dedicated"),
    [
        (400, {}, BadRequestError, False, False),
        (401, {}, AuthenticationError, False, False),
        (403, {}, PermissionDeniedError, False, False),
        (404, {}, NotFoundError, False, False),
        (408, {}, ServerError, True, False),  # a managed online endpoint's 408 repeats
        (409, {}, APIStatusError, False, False),
        (413, {}, APIStatusError, False, False),
        (422, {}, BadRequestError, False, False),
        (424, MODEL_HEADERS, ModelError, True, True),
        (424, {**MODEL_HEADERS, "ms-azureml-model-error-statuscode": "400"}, ModelError, False, False),
        (424, {"ms-azureml-model-error-statuscode": "n/a"}, ModelError, False, False),
        (424, {}, ModelError, False, False),
        (429, {}, RateLimitError, True, True),
        (500, {}, ServerError, True, True),
        (501, {}, ServerError, False, False),
        (502, {}, ServerError, True, True),
        (503, {}, ServerError, True, True),
        (504, {}, ServerError, True, True),
        (505, {}, ServerError, False, False),
        (599, {}, ServerError, False, False),
    ],
)
def test_status_to_error(
    status: int, headers: dict[str, str], error: type[APIStatusError], retried: bool, retried_dedicated: bool
) -> None:
    raised = status_error(status, {**headers, "X-Request-ID": "req-1"}, STATUS_BODY, url=SERVERLESS)
    assert type(raised) is error
    assert (raised.status_code, raised.request_id, raised.code, raised.message[:9]) == (
        status,
        "req-1",
        "Busy",
        "try later",
    )
    assert str(raised).startswith(f"HTTP {status} Busy: try later")
    assert str(raised).endswith("(request id: req-1)")
    assert is_retryable(raised) is retried
    assert is_retryable(raised, dedicated=True) is retried_dedicated


def test_424_carries_the_model_status_and_reason() -> None:
    raised = status_error(424, MODEL_HEADERS, b'{"message": "container crashed"}')
    assert isinstance(raised, ModelError)
    assert (raised.model_status, raised.model_reason) == (503, "model_not_ready")
    assert raised.message == "container crashed (model: model_not_ready)"
    reason_in_message = status_error(424, MODEL_HEADERS, b'{"message": "model_not_ready: loading"}')
    assert reason_in_message.message == "model_not_ready: loading"  # not said twice


@pytest.mark.parametrize(
    ("status", "dedicated", "authenticated", "url", "hint"),
    [
        (404, False, True, SERVERLESS, "(POST /v1/chat/completions: check the URL path and deployment name)"),
        (404, False, True, "", None),
        (401, False, False, SERVERLESS, "no key or credential is configured"),
        (401, False, True, SERVERLESS, None),
        (408, True, True, DEDICATED, "raise request_settings.request_timeout_ms of the deployment, up to 180000"),
        (408, False, True, SERVERLESS, None),
        (403, False, False, SERVERLESS, None),
    ],
)
def test_status_hints(status: int, dedicated: bool, authenticated: bool, url: str, hint: str | None) -> None:
    raised = status_error(status, {}, b'{"detail": "nope"}', url=url, dedicated=dedicated, authenticated=authenticated)
    assert raised.message.startswith("nope")
    if hint is None:
        assert raised.message == "nope"
    else:
        assert hint in raised.message


@pytest.mark.parametrize(
    ("body", "headers", "message", "code", "kept"),
    [
        (b'{"error": {"code": "E1", "message": "bad"}}', {}, "bad", "E1", {"error": {"code": "E1", "message": "bad"}}),
        (b'{"error": "plain"}', {"x-ms-error-code": "E2"}, "plain", "E2", {"error": "plain"}),
        (b'{"detail": [{"loc": ["body", "x"], "msg": "extra"}]}', {}, "body.x: extra", None, None),
        (b'{"message": "run() failed"}', {}, "run() failed", None, {"message": "run() failed"}),
        (b"upstream connect error", {}, "upstream connect error", None, "upstream connect error"),
        (b"", {}, "502 error", None, ""),
        (b"<html><body>Bad Gateway</body></html>", {}, "502 error (an HTML page: '<html>", None, None),
        (b'{"unexpected": 1}', {}, '{"unexpected": 1}', None, {"unexpected": 1}),
    ],
)
def test_error_bodies(body: bytes, headers: dict[str, str], message: str, code: str | None, kept: Any) -> None:
    raised = status_error(502, headers, body)
    assert raised.message.startswith(message)
    assert raised.code == code
    if kept is not None:
        assert raised.body == kept


def test_header_names_are_matched_whatever_their_case() -> None:
    raised = status_error(429, {"Retry-After-Ms": "250", "APIM-Request-Id": "apim-1"}, b"")
    assert (raised.retry_after, raised.request_id) == (0.25, "apim-1")


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (APIConnectionError("refused"), True),
        (APITimeoutError("slow"), True),
        (StreamError("cut"), False),
        (ResponseFormatError("junk"), False),
        (InvalidRequestError("bad"), False),
        (ModelError("boom", status_code=200), False),  # an error body sent with 200
    ],
)
def test_transport_and_other_failures(error: AzureMLChatError, retried: bool) -> None:
    assert is_retryable(error) is retried
    assert is_retryable(error, policy=RetryPolicy(retry_timeouts=False)) is (
        retried and type(error) is APIConnectionError
    )


# --- retry waits -----------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after-ms": "100", "retry-after": "9"}, 0.1),  # milliseconds win
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),  # an unreadable one is skipped
        ({"retry-after-ms": "nan", "x-ms-retry-after-ms": "40"}, 0.04),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "Wed, 99 Foo 2024"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "nan"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


def rate_limited(retry_after: float | None) -> RateLimitError:
    return RateLimitError("slow down", status_code=429, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "attempt", "max_retries", "low", "high"),
    [
        (APIConnectionError("x"), 0, 2, 0.75, 1.0),
        (APIConnectionError("x"), 1, 2, 1.5, 2.0),
        (APIConnectionError("x"), 2, 2, None, None),  # no retries left
        (APIConnectionError("x"), 5, 9, 3.0, 4.0),  # capped at max_backoff
        (rate_limited(None), 0, 2, 0.75, 1.0),
        (rate_limited(7.0), 0, 2, 7.0, 7.0),  # the server's wait, exactly, no jitter
        (rate_limited(20.0), 0, 2, 20.0, 20.0),  # at the budget: honoured
        (rate_limited(20.5), 0, 2, None, None),  # over the budget: raised at once
        (rate_limited(0.0), 1, 2, 0.0, 0.0),
        (status_error(408, {}, b"", dedicated=True), 0, 2, None, None),
        (NotFoundError("x", status_code=404), 0, 2, None, None),
    ],
)
def test_retry_delay(
    error: AzureMLChatError, attempt: int, max_retries: int, low: float | None, high: float | None
) -> None:
    wait = retry_delay(error, attempt, max_retries, POLICY, dedicated=True)
    if low is None:
        assert wait is None
    else:
        assert wait is not None
        assert low <= wait <= high  # type: ignore[operator]


def test_a_wait_over_the_budget_is_named_on_the_error() -> None:
    error = rate_limited(86_400.0)
    assert retry_delay(error, 0, 2, POLICY) is None
    assert error.retry_after == 86_400.0
    assert "the service asked to wait 86400s, more than RetryPolicy.max_retry_after=20s: not retried" in str(error)
    exhausted = rate_limited(86_400.0)
    assert retry_delay(exhausted, 2, 2, POLICY) is None
    assert "asked to wait" not in str(exhausted)  # no retry was left to refuse


def test_timeouts_are_not_retried_when_the_policy_says_so() -> None:
    policy = RetryPolicy(retry_timeouts=False)
    assert retry_delay(APITimeoutError("slow"), 0, 2, policy) is None
    assert retry_delay(APIConnectionError("refused"), 0, 2, policy) is not None


# --- prepare() -------------------------------------------------------------------------------


def body_of(call: Call) -> Any:
    assert call.request.content is not None
    return json.loads(call.request.content)


def test_options_merge_into_new_dicts_and_nothing_passed_is_changed() -> None:
    model_kwargs = {"temperature": 0.1, "top_p": 0.9, "stop": ["\n"], "extra": {"nested": [1]}}
    settings = make_settings(model_kwargs=model_kwargs)
    extra_body = {"top_k": 5, "top_p": None, "stop": ["END"]}
    params: dict[str, Any] = {"temperature": 0.5, "max_tokens": 10, "extra_body": extra_body, "timeout": 3}
    messages = [{"role": "user", "content": "hi"}]
    snapshot = json.dumps([model_kwargs, params, messages, dict(settings.model_kwargs)])

    call = prepare(settings, messages, params, stream=False, owner="ChatClient.chat", include_defaults=False)

    assert body_of(call) == {
        "temperature": 0.5,
        "stop": ["END"],
        "extra": {"nested": [1]},
        "max_tokens": 10,
        "top_k": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert json.dumps([model_kwargs, params, messages, dict(settings.model_kwargs)]) == snapshot
    assert call.params is not settings.model_kwargs
    assert call.params["temperature"] == 0.5
    assert (call.timeout, call.request.timeout, call.max_retries) == (3.0, 3.0, 2)
    second = make_call(settings)  # one call's options never leak into the next
    assert body_of(second) == {**model_kwargs, "messages": [{"role": "user", "content": "hello"}]}
    assert second.timeout == settings.timeout


def test_none_removes_a_default() -> None:
    settings = make_settings(model_kwargs={"temperature": 0.1, "seed": 7})
    assert "temperature" not in body_of(make_call(settings, temperature=None))
    assert "seed" not in body_of(make_call(settings, extra_body={"seed": None}))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"temprature": 0.5}, TypeError, r"ChatClient.chat\(\) got unexpected keyword argument\(s\) 'temprature'"),
        ({"top_k": 5}, TypeError, r"model-specific parameters go in extra_body=\{'top_k': ...\}"),
        ({"extra_body": ["top_k"]}, InvalidRequestError, "extra_body must be a dict, not list"),
        ({"extra_query": "a=b"}, InvalidRequestError, "extra_query must be a dict, not str"),
        ({"extra_headers": "x: y"}, InvalidRequestError, "extra_headers must be a dict"),
        ({"extra_headers": {"bad name": "x"}}, InvalidRequestError, "not a valid HTTP header name"),
        ({"extra_headers": {"x-a": "two\nlines"}}, InvalidRequestError, "printable ASCII"),
        ({"timeout": 0}, InvalidRequestError, "timeout must be a positive number"),
        ({"timeout": "5"}, InvalidRequestError, "timeout must be a positive number"),
        ({"max_retries": -1}, InvalidRequestError, "max_retries must be a whole number"),
        ({"max_retries": True}, InvalidRequestError, "max_retries must be a whole number"),
        ({"tools": "get_weather"}, InvalidRequestError, "tools must be a list"),
        ({"tools": [{"type": "function"}]}, InvalidRequestError, "a tool dict must look like"),
    ],
)
def test_bad_call_options(params: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make_call(make_settings(), **params)


def test_extra_headers_and_extra_query() -> None:
    call = make_call(make_settings(), extra_headers={"X-Trace": "t1"}, extra_query={"a": "b c"})
    assert call.request.headers["x-trace"] == "t1"
    assert call.request.url == SERVERLESS + "?a=b+c"
    foundry = make_settings("https://r.services.ai.azure.com/models/chat/completions")
    with_version = make_call(foundry, extra_query={"a": "1"}).request.url
    assert with_version.endswith("/models/chat/completions?api-version=2024-05-01-preview&a=1")


def test_request_ids_and_default_headers() -> None:
    settings = make_settings(headers={"X-Team": "red"})
    ours = make_call(settings)  # the transport's own client holds the defaults
    ids = {make_call(settings).request.headers["x-ms-client-request-id"] for _ in range(50)}
    assert set(ours.request.headers) == {"x-ms-client-request-id"}
    assert len(ids) == 50
    for request_id in ids:
        assert len(request_id) == 36
        assert request_id[14] == "4"  # a UUID4
        assert request_id[19] in "89ab"
    theirs = prepare(settings, "hi", {}, stream=False, owner="ChatClient.chat", include_defaults=True)
    assert theirs.request.headers["authorization"] == f"Bearer {KEY}"
    assert theirs.request.headers["api-key"] == KEY
    assert theirs.request.headers["x-team"] == "red"
    assert ours.secrets == (KEY,)


def test_a_rotating_key_is_read_per_request() -> None:
    class KeyCredential:
        key = "first"

    credential = KeyCredential()
    settings = make_settings(api_key=credential, auth_header="api-key")
    assert make_call(settings).request.headers["api-key"] == "first"
    credential.key = "second"
    call = make_call(settings)
    assert call.request.headers["api-key"] == "second"
    assert "authorization" not in call.request.headers
    assert call.secrets == ("second",)


@pytest.mark.parametrize(
    ("url", "options", "params", "header"),
    [
        (SERVERLESS, {}, {"temperature": 0.5}, None),  # standard keys only
        (SERVERLESS, {}, {"extra_body": {"top_k": 5}}, "pass-through"),
        (SERVERLESS, {}, {"n": 2}, "pass-through"),  # a ChatParams key that is no standard key
        (SERVERLESS, {"model_kwargs": {"logprobs": True}}, {}, "pass-through"),
        (SERVERLESS, {"extra_parameters": "drop"}, {}, "drop"),
        (SERVERLESS, {"extra_parameters": "error"}, {"extra_body": {"top_k": 5}}, "error"),
        ("https://ep.eastus.models.ai.azure.com/chat/completions", {}, {"n": 2}, "pass-through"),
        ("https://r.services.ai.azure.com/models/chat/completions", {}, {"n": 2}, "pass-through"),
        ("https://r.services.ai.azure.com/openai/v1/chat/completions", {}, {"n": 2}, None),
        ("https://r.openai.azure.com/openai/v1/chat/completions", {}, {"n": 2}, None),
        ("https://ep.eastus.inference.ml.azure.com/v1/chat/completions", {}, {"n": 2}, None),  # vLLM
        (DEDICATED, {}, {"extra_body": {"top_k": 5}}, None),
    ],
)
def test_extra_parameters_header_per_route(
    url: str, options: dict[str, Any], params: dict[str, Any], header: str | None
) -> None:
    call = make_call(make_settings(url, **options), **params)
    assert call.request.headers.get("extra-parameters") == header


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return "sunny"


@dataclass
class Answer:
    text: str


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tool_choice": "auto"}, {"tool_choice": "auto"}),
        ({"tool_choice": "required"}, {"tool_choice": "required"}),
        ({"tool_choice": "get_weather"}, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        ({"tool_choice": get_weather}, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        ({"response_format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
        ({"model": "phi-4"}, {"model": "phi-4"}),
    ],
)
def test_call_features_in_their_wire_shape(params: dict[str, Any], expected: dict[str, Any]) -> None:
    body = body_of(make_call(make_settings(), **params))
    for key, value in expected.items():
        assert body[key] == value


def test_tools_and_response_format_from_python_types() -> None:
    tool_dict = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = body_of(make_call(make_settings(), tools=[get_weather, tool_dict], response_format=Answer))
    described, given = body["tools"]
    assert given == tool_dict
    assert described["type"] == "function"
    assert described["function"]["name"] == "get_weather"
    assert described["function"]["description"] == "The weather in a city."
    assert described["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["text"]


def test_the_model_setting_goes_in_chat_completions_bodies_only() -> None:
    assert body_of(make_call(make_settings(model="phi-4")))["model"] == "phi-4"
    assert body_of(make_call(make_settings(model="phi-4"), model="other"))["model"] == "other"
    assert "model" not in body_of(make_call(make_settings(DEDICATED, model="phi-4")))["input_data"]["parameters"]


@pytest.mark.parametrize("formatter", ["llama", "mistral", "phi", "text-generation"])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"tools": [get_weather]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": Answer}, "response_format"),
        ({"model": "phi-4"}, "model"),
    ],
)
def test_call_features_are_refused_on_score_formatters(formatter: str, params: dict[str, Any], named: str) -> None:
    settings = make_settings(DEDICATED, formatter=formatter)
    with pytest.raises(
        InvalidRequestError, match=f"^{named} cannot be sent to a /score container with the '{formatter}'"
    ):
        make_call(settings, **params)


def test_score_bodies_rename_portable_names() -> None:
    body = body_of(make_call(make_settings(DEDICATED), max_tokens=64, extra_body={"do_sample": True}))
    assert body["input_data"]["parameters"] == {"max_new_tokens": 64, "do_sample": True}
    text = body_of(make_call(make_settings(DEDICATED, formatter="text-generation")))
    assert text["input_data"]["parameters"] == {"return_full_text": False}


@pytest.mark.parametrize(
    ("url", "stream", "streams", "accept"),
    [
        (SERVERLESS, True, True, "text/event-stream"),
        (SERVERLESS, False, False, None),
        (DEDICATED, True, False, None),  # /score cannot stream: one chunk
    ],
)
def test_streaming_requests(url: str, stream: bool, streams: bool, accept: str | None) -> None:
    call = make_call(make_settings(url), stream=stream, extra_body={"stream": True})
    assert call.stream is streams
    assert call.request.headers.get("accept") == accept
    if url == SERVERLESS:
        assert body_of(call).get("stream") is (True if streams else None)


def test_a_formatters_own_mistake_is_an_invalid_request() -> None:
    class Broken(ChatFormatter):
        def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
            return params["missing"]

        def parse_response(self, payload: Any) -> ChatResponse | str:
            return str(payload)

    with pytest.raises(InvalidRequestError, match="Broken could not format the request \\(KeyError: 'missing'\\)"):
        make_call(make_settings(DEDICATED, formatter=Broken()))


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "secrets", "expected"),
    [
        (b'{"error": "bad key sk-test-0123456789abcdef"}', (KEY,), b'{"error": "bad key [redacted]"}'),
        (b"Bearer sk-test-0123456789abcdef.", (KEY,), b"Bearer [redacted]."),
        (b'"api-key":"sk-test-0123456789abcdef"', (KEY,), b'"api-key":"[redacted]"'),
        (b"k=abc, k=abc", ("abc",), b"k=[redacted], k=[redacted]"),  # every whole occurrence
        (b"Check the logs", ("he",), b"Check the logs"),  # a short key inside words: left alone
        (b"Check the logs", ("heck",), b"Check the logs"),
        (b"Check the logs", ("Check the logs",), b"[redacted]"),
        (b"xabc abcx abc_ abc", ("abc",), b"xabc abcx abc_ [redacted]"),
        (b"k/abc abc+1 =abc abc= .abc.", ("abc",), b"k/[redacted] [redacted]+1 =[redacted] [redacted]= .[redacted]."),
        (b"a token-1 and token-12", ("token-1",), b"a [redacted] and token-12"),
        (b"t.a.b t.a.bc", ("t.a.b",), b"[redacted] t.a.bc"),  # dots in a JWT are no wildcard
        (b"nothing here", (), b"nothing here"),
        (b"one two", ("one", "two"), b"[redacted] [redacted]"),
        (b"", (KEY,), b""),
    ],
)
def test_redact_removes_whole_occurrences_only(body: bytes, secrets: tuple[str, ...], expected: bytes) -> None:
    assert redact(body, secrets) == expected


def test_an_echoed_key_never_reaches_the_error() -> None:
    settings = make_settings()
    echo = b'{"error": {"message": "invalid key sk-test-0123456789abcdef for this deployment"}}'
    pump = Pump([Reply(403, JSON, [echo])])
    with pytest.raises(PermissionDeniedError) as caught:
        pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())
    assert caught.value.message == "invalid key [redacted] for this deployment"
    assert KEY not in repr(caught.value.body)


# --- StreamState ------------------------------------------------------------------------------


def sse_of(pieces: list[str], index: int = 0) -> bytes:
    body = b"".join(chunk(piece, index) for piece in pieces)
    return body + chunk("", index, finish_reason="stop") + DONE


THINK_TEXTS = [
    "<think>plan it</think>\n\nThe answer.",
    "  <think>a</think>b",
    "<think>x</think>",
    "<think></think>Hi",  # an empty think block: no reasoning
    "<think>never closed",
    "<thi",
    "<thinker>not a tag</thinker>",
    "hello <think>inline</think>",
    " \n plain text",
    "<think>a</thin",
    "<think>one</think><think>two</think>",
]


def cuts_of(text: str) -> list[list[str]]:
    """``text`` whole, and cut in two and in three at every position."""
    splits = [[text]]
    for i in range(1, len(text)):
        splits.append([text[:i], text[i:]])
        for j in range(i + 1, len(text)):
            splits.append([text[:i], text[i:j], text[j:]])
    return splits


@pytest.mark.parametrize("text", THINK_TEXTS)
def test_think_is_split_alike_at_every_cut(text: str) -> None:
    """Streamed, a leading <think>...</think> becomes reasoning exactly as in a whole reply."""
    answer, reasoning = split_think(text)
    for pieces in cuts_of(text):
        state = StreamState(None)
        chunks = list(state.feed(sse_of(pieces)))
        reply = state.finish(0.0)
        assert (reply.content, reply.reasoning_content) == (answer, reasoning or None), pieces
        assert "".join(c.content for c in chunks) == answer, pieces
        if reasoning is not None or "<think>" not in text:  # an unclosed one was streamed as reasoning
            assert "".join(c.reasoning_content for c in chunks).strip() == (reasoning or ""), pieces


@pytest.mark.parametrize("text", THINK_TEXTS)
def test_think_is_split_alike_in_a_whole_reply(text: str) -> None:
    settings = make_settings()
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()
    pump = Pump([Reply(200, JSON, [body])])
    reply = pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())
    streamed = StreamState(None)
    list(streamed.feed(sse_of([text])))
    expected = streamed.finish(0.0)
    assert (reply.content, reply.reasoning_content) == (expected.content, expected.reasoning_content)


def test_reasoning_content_deltas_turn_think_splitting_off() -> None:
    state = StreamState(None)
    events = b"data: " + json.dumps({"choices": [{"delta": {"reasoning_content": "hmm "}}]}).encode() + b"\n\n"
    list(state.feed(events + sse_of(["<think>kept</think> as is"])))
    reply = state.finish(0.0)
    assert reply.reasoning_content == "hmm "
    assert reply.content == "<think>kept</think> as is"


def test_choices_are_assembled_per_index() -> None:
    state = StreamState("rid")
    body = b"".join(
        [
            chunk("A", 0),
            chunk("x", 1),
            chunk("B", 0),
            chunk("y", 1, finish_reason="length"),
            chunk("", 0, finish_reason="stop"),
            b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}\n\n',
            DONE,
        ]
    )
    chunks = list(state.feed(body))
    assert [(c.index, c.content) for c in chunks if c.content] == [(0, "A"), (1, "x"), (0, "B"), (1, "y")]
    assert chunks[-1].usage is not None
    reply = state.finish(1.5, {"x-request-id": "rid"})
    assert [(c.index, c.message.content, c.finish_reason) for c in reply.choices] == [
        (0, "AB", "stop"),
        (1, "xy", "length"),
    ]
    assert (reply.content, reply.finish_reason, reply.request_id, reply.elapsed) == ("AB", "stop", "rid", 1.5)
    assert reply.usage is not None
    assert reply.usage.total_tokens == 7


def test_a_chunk_of_several_choices_hands_out_choice_0() -> None:
    state = StreamState(None)
    both = {"choices": [{"index": 1, "delta": {"content": "one"}}, {"index": 0, "delta": {"content": "zero"}}]}
    (handed,) = list(state.feed(b"data: " + json.dumps(both).encode() + b"\n\n"))
    assert (handed.index, handed.content) == (0, "zero")


def test_tool_call_fragments_are_joined_per_choice() -> None:
    def calls(choice: int, **call: Any) -> bytes:
        payload = {"choices": [{"index": choice, "delta": {"tool_calls": [call]}}]}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    state = StreamState(None)
    body = b"".join(
        [
            calls(0, index=0, id="c1", function={"name": "f", "arguments": '{"a"'}),
            calls(1, index=0, id="c9", function={"name": "g", "arguments": "{}"}),
            calls(0, index=0, function={"arguments": ": 1}"}),
            DONE,
        ]
    )
    list(state.feed(body))
    reply = state.finish(0.0)
    assert [(call.id, call.name, call.arguments) for call in reply.tool_calls] == [("c1", "f", '{"a": 1}')]
    assert reply.choices[1].message.tool_calls[0].name == "g"
    assert reply.message.content is None  # tool calls and no text


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "no events received"),
        (chunk("a"), "before \\[DONE\\]: the connection was closed early"),
        (chunk("a")[:-1], "in the middle of an event"),
        (b"data: {bad\n\n", "not JSON"),
        (b"data: [1]\n\n", "not a JSON object"),
        (b'data: {"error": {"message": "quota"}}\n\n', "the stream reported an error: quota"),
        (b"event: error\ndata: plain words\n\n", "the stream reported an error: plain words"),
    ],
)
def test_stream_failures(body: bytes, match: str) -> None:
    state = StreamState("rid")

    def run() -> None:
        list(state.feed(body))
        state.finish(0.0)

    with pytest.raises(StreamError, match=match) as caught:
        run()
    assert caught.value.request_id == "rid"


def test_a_stream_over_the_limit_and_what_follows_done() -> None:
    with pytest.raises(ResponseFormatError, match="max_response_bytes=10"):
        list(StreamState(None, max_bytes=10).feed(chunk("too long for ten bytes")))
    state = StreamState(None, max_bytes=200)
    list(state.feed(chunk("a") + DONE))
    assert list(state.feed(b"x" * 1000)) == []  # after [DONE]: counted, never parsed, no limit
    assert (state.after_done, state.finish(0.0).content) == (1000, "a")


def test_debug_logs_follow_each_attempt_and_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    caplog.set_level("DEBUG", logger="azml_chat")
    for method, outcomes in (
        ("chat", [busy(**{"retry-after-ms": "5"}), Reply()]),
        ("stream", [Reply(200, SSE, [chunk("a") + DONE])]),
    ):
        pump = Pump(list(outcomes))
        machine = Attempts(make_call(settings, stream=method == "stream"), settings, clock=pump.clock)
        pump.run(machine.chat() if method == "chat" else machine.stream())
    text = caplog.text
    assert f"POST {SERVERLESS} (attempt 1 of 3)" in text
    assert "HTTP 503 after 0.0 ms" in text
    assert "attempt 1 failed (HTTP 503 Busy: try later); retrying in 0.005s" in text
    assert "reply ended:" in text
    assert "stream ended:" in text
    assert KEY not in text


def test_a_fresh_token_is_reported_to_hooks_as_no_retry() -> None:
    settings = ClientSettings.create("ChatClient", DEDICATED, {"credential": Credential()})
    pump = Pump([unauthorized(), Reply()])
    pump.tokens = TokenProvider(settings.credential, "https://ml.azure.com/.default")
    pump.run(Attempts(make_call(settings), settings, pump.tokens, clock=pump.clock, info=call_info()).chat())
    rejected, accepted = pump.notified
    assert (rejected.attempt, rejected.status_code, rejected.retry_in) == (0, 401, 0.0)
    assert (accepted.attempt, accepted.status_code) == (1, 200)


class Plain(ChatFormatter):
    """A custom /score formatter whose parse_response returns what the test says."""

    def __init__(self, parse: Callable[[Any], Any]) -> None:
        self.parse = parse

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        return {"prompt": messages[-1].text}

    def parse_response(self, payload: Any) -> ChatResponse | str:
        result: ChatResponse | str = self.parse(payload)
        return result


class Reply2(ChatResponse):
    """A formatter's own ChatResponse subclass."""


@pytest.mark.parametrize(
    ("parse", "body", "content", "reasoning"),
    [
        (lambda payload: payload["text"], b'{"text": "<think>hm</think> yes"}', "yes", "hm"),
        (lambda payload: Reply2(Message("assistant", payload["text"])), b'{"text": "sub"}', "sub", None),
    ],
)
def test_custom_formatters_replies(
    parse: Callable[[Any], Any], body: bytes, content: str, reasoning: str | None
) -> None:
    settings = make_settings(DEDICATED, formatter=Plain(parse))
    pump = Pump([Reply(200, {**JSON, "x-request-id": "r9"}, [body])])
    reply = pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())
    assert (reply.content, reply.reasoning_content, reply.request_id) == (content, reasoning, "r9")
    assert reply.raw == json.loads(body)


def test_a_custom_formatters_parse_mistake_is_a_format_error() -> None:
    settings = make_settings(DEDICATED, formatter=Plain(lambda payload: payload["missing"]))
    pump = Pump([Reply(200, JSON, [b'{"text": "x"}'])])
    with pytest.raises(ResponseFormatError, match="Plain could not parse the reply \\(KeyError: 'missing'\\)"):
        pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())


@pytest.mark.parametrize(
    ("url", "info_url"),
    [
        (SERVERLESS, "https://ep.eastus.models.ai.azure.com/info?api-version=2024-05-01-preview"),
        (DEDICATED, "https://ep.eastus.inference.ml.azure.com/info?api-version=2024-05-01-preview"),
        ("https://r.openai.azure.com/openai/v1/chat/completions", None),
        ("https://r.services.ai.azure.com/openai/v1/chat/completions", None),
    ],
)
def test_info_requests(url: str, info_url: str | None) -> None:
    class KeyCredential:
        key = "rotating"

    settings = make_settings(url, api_key=KeyCredential())
    if info_url is None:
        with pytest.raises(InvalidRequestError, match="no /info on the 'openai-v1' route"):
            info_call(settings, False)
        return
    call = info_call(settings, False)
    assert (call.request.method, call.request.url, call.request.content) == ("GET", info_url, None)
    assert call.request.headers["api-key"] == "rotating"
    assert call.max_retries == settings.max_retries == 2  # retried as a chat is


def test_openai_replies_carry_their_metadata_and_a_subclass_parses_its_own_way() -> None:
    """The exact OpenAI formatter's replies are built once with their metadata; a subclass that
    overrides parse_response is still asked."""
    from azml_chat.formatters import OpenAIChatFormatter

    class Shouting(OpenAIChatFormatter):
        def parse_response(self, payload: Any) -> ChatResponse | str:
            reply = super().parse_response(payload)
            assert isinstance(reply, ChatResponse)
            return reply.content.upper()

    for formatter, content in ((None, "hi"), (Shouting(), "HI")):
        settings = make_settings(formatter=formatter) if formatter else make_settings()
        pump = Pump([Reply(200, {**JSON, "x-request-id": "r7"}, [OK_BODY])], read_seconds=0.25)
        reply = pump.run(Attempts(make_call(settings), settings, clock=pump.clock).chat())
        assert (reply.content, reply.request_id, reply.elapsed) == (content, "r7", 0.5)
        assert reply.raw == json.loads(OK_BODY)
        assert reply.headers is not None
        assert reply.headers["x-request-id"] == "r7"


# --- the plain-message fast path and the JSON codec ----------------------------------------

_PLAIN_INPUTS: list[Any] = [
    "hello",
    ["hi", "there"],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": ""}],
    [{"role": role, "content": "x"} for role in ("system", "user", "assistant", "tool", "developer")],
]
_OTHER_INPUTS: list[Any] = [
    [{"role": "user", "content": "hi", "name": "bob"}],  # a third key
    [{"role": "user", "content": None}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    [Message("user", "hi")],
    ({"role": "user", "content": "hi"},),  # a tuple, not a list
    {"role": "user", "content": "hi"},
]


@pytest.mark.parametrize("formatter", ["openai", "llama", "phi", "mistral", "text-generation"])
@pytest.mark.parametrize("messages", _PLAIN_INPUTS + _OTHER_INPUTS)
def test_plain_messages_make_the_same_body_and_the_same_messages(messages: Any, formatter: str) -> None:
    url = SERVERLESS if formatter == "openai" else DEDICATED
    settings = make_settings(url, formatter=formatter)
    params = {"temperature": 0.5}
    call = prepare(settings, messages, params, stream=False, owner="ChatClient.chat", include_defaults=False)
    assert body_of(call) == settings.formatter.format_request(coerce_messages(messages), params)
    assert call.messages == coerce_messages(messages)  # made on request (hooks) from the same input
    assert (plain_wire_messages(messages) is not None) == (messages in _PLAIN_INPUTS)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "usr", "content": "hi"}], "unknown message role 'usr'"),
        ([{"role": ["user"], "content": "hi"}], "unknown message role"),  # unhashable: no TypeError
        ([{"content": "hi", "text": "x"}], "has no 'role'"),
        ([], "messages is empty"),
        (["hi", 3], "not int"),
    ],
)
def test_plain_looking_messages_are_checked_as_messages_are(messages: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        prepare(make_settings(), messages, {}, stream=False, owner="ChatClient.chat", include_defaults=False)


def test_the_plain_path_builds_new_dicts() -> None:
    message = {"role": "user", "content": "hi"}
    wire = plain_wire_messages([message])
    assert wire == [message]
    assert wire is not None and wire[0] is not message


@pytest.mark.parametrize(
    ("text", "value"),
    [('{"a":1}', {"a": 1}), (' {"a": 1}\n', {"a": 1}), (b"[1,2]", [1, 2]), (b"\xef\xbb\xbf{}", {}), ("NaN", None)],
)
def test_loads_matches_json_loads(text: str | bytes, value: Any) -> None:
    decoded = loads(text)
    if value is None:  # NaN, as json.loads reads it
        assert decoded != decoded
    else:
        assert decoded == value == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", "1 2", '{"a":1} x', b"\xff"])
def test_loads_fails_as_json_loads_does(text: str | bytes) -> None:
    with pytest.raises(ValueError, match=r"\w") as ours:
        loads(text)
    with pytest.raises(ValueError, match=r"\w") as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_dumps_matches_json_dumps() -> None:
    value = {"text": 'é \u2028 "quoted"', "n": [1, 2.5, True, None], 1: "int key"}
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class _Point:
    x: int
    y: int


class _Colour(enum.Enum):
    RED = "red"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"role": "user", "content": 'é \u2028 \x7f \x1f "quoted" \\'}], "temperature": 0.2},
        {"n": [1e-7, 1e16, 0.1, -0.0, 2**63, -(2**63)]},  # orjson spells some floats differently: same values
        {"none": None, "null text": "null"},  # null in the output: made by json (see dumps)
        {1: "int key", 2.5: "float key", None: "null key"},  # orjson refuses non-string keys: json converts them
        {"big": 2**70, "small": -(2**70)},  # beyond 64 bits: json
        _nested(300),  # deeper than orjson goes: json
    ],
    ids=["chat", "floats", "null", "int-keys", "big-ints", "deep"],
)
def test_dumps_gives_what_json_gives(value: Any) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"t": float("nan")}, "Out of range float values"),  # orjson would have written null
        ({"t": [float("-inf")]}, "Out of range float values"),
        ({"at": datetime.date(2026, 1, 1)}, "Object of type date is not JSON serializable"),
        ({"point": _Point(1, 2)}, "Object of type _Point is not JSON serializable"),  # a dataclass
        ({"s": {"a"}}, "Object of type set is not JSON serializable"),
        ({"s": "a\ud800"}, "lone surrogate"),
    ],
)
def test_dumps_refuses_what_json_refuses(value: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        dumps(value)


def test_dumps_writes_an_enum_member_and_a_uuid_that_json_would_refuse() -> None:
    value = {"colour": _Colour.RED, "id": uuid.UUID(int=1)}
    assert dumps(value) == b'{"colour":"red","id":"00000000-0000-0000-0000-000000000001"}'


@pytest.mark.parametrize("decode", [loads, loads_exact])
def test_both_decoders_read_what_json_reads(decode: Callable[[Any], Any]) -> None:
    for text in ('{"a":[1,2.5,true,null,"é"]}', b'{"a":1,"a":2}', b" [-0, 1e400] ", "NaN", b"\xef\xbb\xbf{}"):
        decoded, expected = decode(text), json.loads(text)
        assert json.dumps(decoded) == json.dumps(expected)  # NaN and inf compare by their spelling


def test_loads_exact_keeps_big_integers_as_integers() -> None:
    text = b'{"id": 123456789012345678901234567890}'
    assert loads_exact(text) == {"id": 123456789012345678901234567890}
    assert ToolCall("c1", "f", text.decode()).parsed_arguments() == {"id": 123456789012345678901234567890}


def test_only_a_chat_request_is_bounded_as_a_whole() -> None:
    settings = make_settings()
    assert make_call(settings).request.whole_reply is True  # chat(): the deadline covers the whole reply
    assert make_call(settings, stream=True).request.whole_reply is False  # each piece, not the stream
    assert info_call(settings, False).request.whole_reply is False


@pytest.mark.parametrize(
    ("options", "params", "secret"),
    [
        ({}, {"extra_headers": {"api-key": "per-call-key-0123"}}, "per-call-key-0123"),
        ({}, {"extra_headers": {"Authorization": "Bearer per-call-token-0123"}}, "per-call-token-0123"),
        ({"api_key": None, "headers": {"authorization": "Bearer header-token-0123"}}, {}, "header-token-0123"),
        ({"headers": {"Ocp-Apim-Subscription-Key": "gateway-key-0123"}}, {}, "gateway-key-0123"),
    ],
)
def test_a_key_put_in_headers_is_redacted_too(options: dict[str, Any], params: dict[str, Any], secret: str) -> None:
    settings = make_settings(**options)
    echo = f'{{"error": {{"message": "rejected {secret} here"}}}}'.encode()
    pump = Pump([Reply(403, JSON, [echo])])
    call = prepare(settings, "hi", params, stream=False, owner="ChatClient.chat", include_defaults=True)
    with pytest.raises(PermissionDeniedError) as caught:
        pump.run(Attempts(call, settings, clock=pump.clock).chat())
    assert caught.value.message == "rejected [redacted] here"
    assert secret not in repr(caught.value.body)
