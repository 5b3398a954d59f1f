"""The fault matrix: every way an endpoint misbehaves, through both clients, over real HTTP.

Each case scripts ``LocalEndpoint`` faults, makes one call (``chat`` or ``stream``) through
``AsyncChatClient`` and ``ChatClient``, and checks four things: the answer or the typed
error, the number of attempts the server saw, the retry waits the client decided, and that
no connection is left checked out of the httpx pool (and every response was closed).

Retry waits are recorded by ``azml_chat.testing.instant_retries()``, which also lets the client
sleep 0 s, so the matrix can use realistic waits (seconds) and still run in milliseconds.
One test at the end checks that a real sleep does last what was decided.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, TLS_CONTEXT, assert_pool_idle

from azml_chat import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncChatClient,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    ChatClient,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    StreamError,
)
from azml_chat.testing import Fault, LocalEndpoint, instant_retries

PROMPT = "ping 42"
#: Realistic waits: the matrix only records them (the client then sleeps 0 s).
POLICY = RetryPolicy(initial_backoff=1.0, max_backoff=4.0, max_retry_after=20.0)
BACKOFF = ((0.75, 1.0), (1.5, 2.0))  # initial_backoff * 2**attempt minus up to 25% jitter

Outcome = str | AzureMLChatError


@dataclass(frozen=True)
class Case:
    """One row of the matrix."""

    id: str
    faults: Callable[[], Sequence[Fault]]
    expect: str | type[AzureMLChatError]  #: the reply text, or the exact error type
    attempts: int
    call: str = "chat"  #: "chat" or "stream"
    route: str = "chat"  #: "chat" (/v1/chat/completions), "score" (/score) or "refused"
    waits: tuple[tuple[float, float], ...] | None = ()  #: ranges of the decided waits (None: unchecked)
    match: str | None = None  #: a fragment the error text must contain
    options: dict[str, Any] = field(default_factory=dict)  #: per-call options (timeout, max_retries)
    settings: dict[str, Any] = field(default_factory=dict)  #: client settings
    prompt: str = PROMPT
    partial: str | None = None  #: text the stream handed out before failing
    max_downloaded: int | None = None  #: bytes the client may have pulled off the wire
    check: Callable[[Any], None] | None = None  #: extra assertions on the error


def faults(*items: Fault) -> Callable[[], Sequence[Fault]]:
    return lambda: items


def http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


# --- retryable statuses x retry-after forms ---------------------------------------------

#: name -> (headers factory (called when the case runs), expected waits of attempts 0 and 1)
RETRY_AFTER_FORMS: dict[str, tuple[Callable[[], dict[str, str]], tuple[tuple[float, float], ...]]] = {
    "retry-after-ms": (lambda: {"retry-after-ms": "1500"}, ((1.5, 1.5),) * 2),
    "x-ms-retry-after-ms": (lambda: {"x-ms-retry-after-ms": "2500"}, ((2.5, 2.5),) * 2),
    "ms-wins-over-seconds": (lambda: {"retry-after-ms": "300", "retry-after": "9"}, ((0.3, 0.3),) * 2),
    "retry-after-seconds": (lambda: {"retry-after": "3"}, ((3.0, 3.0),) * 2),
    "retry-after-http-date": (lambda: {"retry-after": http_date(10)}, ((8.5, 10.01),) * 2),
    "retry-after-past-date": (lambda: {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, ((0.0, 0.0),) * 2),
    "absent": (dict, BACKOFF),
    "absurdly-large-not-slept": (lambda: {"retry-after": "86400000"}, ()),
    "absurdly-large-ms-not-slept": (lambda: {"retry-after-ms": "1e300"}, ()),
    "unreadable": (lambda: {"retry-after": "soon"}, BACKOFF),
    "nan": (lambda: {"retry-after-ms": "nan", "retry-after": "NaN"}, BACKOFF),
}
RETRYABLE = {
    408: ServerError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
}


def _retry_case(status: int, form: str) -> Case:
    headers, waits = RETRY_AFTER_FORMS[form]
    if not waits:  # a wait past RetryPolicy.max_retry_after fails at once, carrying the wait
        return Case(
            f"{status}-{form}",
            lambda: [Fault(status, headers=headers(), times=2)],
            RETRYABLE[status],
            attempts=1,
            waits=(),
            match="not retried; see .retry_after",
            check=lambda error: _assert_long_wait(error),
        )
    return Case(
        f"{status}-{form}",
        lambda: [Fault(status, headers=headers(), times=2)],
        PROMPT,
        attempts=3,
        waits=waits,
    )


def _assert_long_wait(error: BaseException) -> None:
    assert isinstance(error, APIStatusError)
    assert error.retry_after is not None and error.retry_after > POLICY.max_retry_after


RETRY_CASES = [_retry_case(status, form) for status in RETRYABLE for form in RETRY_AFTER_FORMS]
EXHAUSTED_CASES = [
    Case(
        f"{status}-exhausted", faults(Fault(status, times=5)), error, attempts=3, waits=BACKOFF, match=f"HTTP {status}"
    )
    for status, error in RETRYABLE.items()
]

# --- non-retryable statuses ------------------------------------------------------------

NON_RETRYABLE = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: APIStatusError,
    409: APIStatusError,
    413: APIStatusError,
    422: BadRequestError,
    501: ServerError,
}


def _status_check(status: int) -> Callable[[Any], None]:
    def check(error: Any) -> None:
        assert error.status_code == status
        assert error.request_id
        assert error.request_id in str(error)
        assert f"Simulated {status}" in error.message  # the server's own message, not a generic one

    return check


NON_RETRYABLE_CASES = [
    Case(
        f"{status}-not-retried",
        faults(Fault(status, headers={"retry-after": "0"}, times=5)),
        error,
        attempts=1,
        check=_status_check(status),
    )
    for status, error in NON_RETRYABLE.items()
]

# --- 424 (the model container failed) -------------------------------------------------


def model_headers(status: int | str | None, reason: str | None = None) -> dict[str, str]:
    headers = {"ms-azureml-model-error-statuscode": str(status)} if status is not None else {}
    return headers | ({"ms-azureml-model-error-reason": reason} if reason else {})


def _model_check(status: int | None, reason: str | None) -> Callable[[Any], None]:
    def check(error: Any) -> None:
        assert (error.status_code, error.model_status, error.model_reason) == (424, status, reason)
        assert reason is None or reason in str(error)

    return check


MODEL_CASES = [
    Case(
        "424-model-500-exhausted",
        faults(Fault(424, headers=model_headers(500, "CUDA OOM"), times=5)),
        ModelError,
        attempts=3,
        waits=BACKOFF,
        check=_model_check(500, "CUDA OOM"),
    ),
    Case(
        "424-model-429-then-ok",
        faults(Fault(424, headers=model_headers(429, "busy"), times=1)),
        PROMPT,
        attempts=2,
        waits=BACKOFF[:1],
    ),
    Case(
        "424-model-400-not-retried",
        faults(Fault(424, headers=model_headers(400, "bad input"), times=5)),
        ModelError,
        attempts=1,
        check=_model_check(400, "bad input"),
    ),
    Case("424-no-model-headers", faults(Fault(424, times=5)), ModelError, attempts=1, check=_model_check(None, None)),
    Case(
        "424-model-status-garbage",
        faults(Fault(424, headers=model_headers("5xx", "odd"), times=5)),
        ModelError,
        attempts=1,
        check=_model_check(None, "odd"),
    ),
]

# --- the connection itself -------------------------------------------------------------

SLOW = 0.6  # seconds the server waits; time-outs below are 0.2-0.25 s
CONNECTION_CASES = [
    Case(
        "connection-refused",
        faults(),
        APIConnectionError,
        attempts=3,
        route="refused",
        waits=BACKOFF,
        match="could not connect to 127.0.0.1:",
    ),
    Case("reset-before-headers-then-ok", faults(Fault(drop="before_headers")), PROMPT, attempts=2, waits=BACKOFF[:1]),
    Case(
        "reset-before-headers-exhausted",
        faults(Fault(drop="before_headers", times=5)),
        APIConnectionError,
        attempts=3,
        waits=BACKOFF,
    ),
    Case(
        "stream-reset-before-headers-then-ok",
        faults(Fault(drop="before_headers")),
        PROMPT,
        attempts=2,
        call="stream",
        waits=BACKOFF[:1],
    ),
    # Bytes of the reply arrived: never retried (the request may have been served).
    Case(
        "reset-mid-body",
        faults(Fault(drop="in_body", times=5)),
        APIConnectionError,
        attempts=1,
        match="the connection broke while reading the reply from 127.0.0.1:",
    ),
    Case(
        "error-status-reset-mid-body",
        faults(Fault(503, drop="in_body", times=5)),
        ServerError,
        attempts=3,
        waits=BACKOFF,
    ),
    Case(
        "headers-slower-than-read-timeout-then-ok",
        faults(Fault(delay_before_headers=SLOW)),
        PROMPT,
        attempts=2,
        waits=BACKOFF[:1],
        options={"timeout": 0.2},
    ),
    Case(
        "headers-slower-than-read-timeout-exhausted",
        faults(Fault(delay_before_headers=SLOW, times=5)),
        APITimeoutError,
        attempts=2,
        waits=BACKOFF[:1],
        options={"timeout": 0.2, "max_retries": 1},
        match="timed out",
    ),
    Case(
        "stream-headers-slower-than-read-timeout-then-ok",
        faults(Fault(delay_before_headers=SLOW)),
        PROMPT,
        attempts=2,
        call="stream",
        waits=BACKOFF[:1],
        options={"timeout": 0.2},
    ),
    # Each piece comes well within the read time-out, the whole body does not within the deadline.
    Case(
        "body-trickles-past-deadline",
        faults(Fault(delay_between_chunks=0.03, chunk_size=8)),
        APITimeoutError,
        attempts=1,
        options={"timeout": 0.25},
        match="longer than timeout=0.25s",
    ),
    # The body stalls: whichever deadline fires first (the driver's own or the client's), the
    # error is the same.
    Case(
        "body-stalls-past-deadline",
        faults(Fault(delay_between_chunks=1.0, chunk_size=8)),
        APITimeoutError,
        attempts=1,
        options={"timeout": 0.25},
        match="longer than timeout=0.25s",
    ),
    # A stream's timeout bounds each piece, not the whole stream.
    Case(
        "stream-trickles-within-read-timeout",
        faults(Fault(delay_between_chunks=0.02, chunk_size=64)),
        PROMPT,
        attempts=1,
        call="stream",
        options={"timeout": 0.2},
    ),
]

# --- bodies and streams ----------------------------------------------------------------

HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
SSE = "text/event-stream"


def chunk_event(content: str) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": content}}]}) + "\n\n"


def json_encoded(obj: Any, times: int = 2) -> str:
    text = json.dumps(obj)
    for _ in range(times - 1):
        text = json.dumps(text)
    return text


def status_is(error: Any, status: int) -> None:
    assert error.status_code == status


BIG = 1_000_000
BODY_CASES = [
    Case(
        "truncated-sse-mid-stream",
        faults(Fault(drop="mid_stream")),
        StreamError,
        attempts=1,
        call="stream",
        partial="ping ",
        match="before [DONE]",
    ),
    Case(
        "sse-closed-cleanly-without-done",
        faults(Fault(body=chunk_event("ping "), content_type=SSE)),
        StreamError,
        attempts=1,
        call="stream",
        partial="ping ",
        match="before [DONE]",
    ),
    Case(
        "sse-cut-inside-an-event",
        faults(Fault(body=chunk_event("a") + 'data: {"choi', content_type=SSE)),
        StreamError,
        attempts=1,
        call="stream",
        partial="a",
        match="in the middle of an event",
    ),
    Case(
        "event-error",
        faults(Fault(stream_error={"error": {"code": "content_filter", "message": "blocked"}})),
        StreamError,
        attempts=1,
        call="stream",
        partial="ping ",
        match="blocked",
    ),
    Case(
        "data-error-object",
        faults(Fault(body='data: {"error": {"message": "overloaded"}}\n\n', content_type=SSE)),
        StreamError,
        attempts=1,
        call="stream",
        partial="",
        match="overloaded",
    ),
    Case(
        "sse-event-invalid-json",
        faults(Fault(body=chunk_event("a") + "data: {oops\n\n", content_type=SSE)),
        StreamError,
        attempts=1,
        call="stream",
        partial="a",
        match="not JSON",
    ),
    Case(
        "invalid-json",
        faults(Fault(body=b'{"choices": [', content_type="application/json")),
        ResponseFormatError,
        attempts=1,
        match="not JSON",
    ),
    Case(
        "error-status-invalid-json",
        faults(Fault(500, body=b"Internal error {oops", times=5)),
        ServerError,
        attempts=3,
        waits=BACKOFF,
        match="Internal error {oops",
    ),
    Case(
        "html-gateway-page-502",
        faults(Fault(502, body=HTML, content_type="text/html", times=5)),
        ServerError,
        attempts=3,
        waits=BACKOFF,
        match="HTML page",
    ),
    Case(
        "html-gateway-page-then-ok",
        faults(Fault(504, body=HTML, content_type="text/html")),
        PROMPT,
        attempts=2,
        waits=BACKOFF[:1],
    ),
    Case(
        "html-page-with-200",
        faults(Fault(200, body=HTML, content_type="text/html")),
        ResponseFormatError,
        attempts=1,
        match="HTML page",
    ),
    Case(
        "200-with-error-object",
        faults(Fault(200, body={"error": {"code": "Oops", "message": "model failed"}})),
        ModelError,
        attempts=1,
        match="model failed",
        check=lambda error: status_is(error, 200),
    ),
    Case("200-with-empty-object", faults(Fault(200, body={})), ModelError, attempts=1, match="empty"),
    Case(
        "200-score-output-null-error",
        faults(Fault(200, body={"output": None, "error": "CUDA out of memory"})),
        ModelError,
        attempts=1,
        route="score",
        match="CUDA out of memory",
    ),
    Case(
        "score-double-encoded",
        faults(Fault(200, body=json_encoded({"output": "hi there"}))),
        "hi there",
        attempts=1,
        route="score",
    ),
    Case(
        "score-triple-encoded",
        faults(Fault(200, body=json_encoded({"output": "deep"}, 3))),
        "deep",
        attempts=1,
        route="score",
    ),
    Case(
        "score-double-encoded-list",
        faults(Fault(200, body=json_encoded([{"0": "gen"}]))),
        "gen",
        attempts=1,
        route="score",
    ),
    Case(
        "reply-not-matching-its-content-encoding",
        faults(Fault(200, headers={"content-encoding": "gzip"}, body=b'{"not": "gzip"}')),
        ResponseFormatError,
        attempts=1,
        match="does not match its content-encoding",
    ),
    Case(
        "reply-larger-than-max",
        faults(Fault(200, body=b"x" * BIG, content_type="application/json")),
        ResponseFormatError,
        attempts=1,
        settings={"max_response_bytes": 4096},
        match="max_response_bytes=4096",
        max_downloaded=4096 + 65536,
    ),
    Case(
        "error-reply-larger-than-max-then-ok",
        faults(Fault(503, body=b"<" * BIG, content_type="text/html")),
        PROMPT,
        attempts=2,
        waits=BACKOFF[:1],
        settings={"max_response_bytes": 4096},
    ),
    Case(
        "stream-larger-than-max",
        faults(),
        ResponseFormatError,
        attempts=1,
        call="stream",
        prompt="word " * 2000,
        settings={"max_response_bytes": 8192},
        match="max_response_bytes=8192",
        max_downloaded=8192 + 65536,
    ),
]

CASES = [*RETRY_CASES, *EXHAUSTED_CASES, *NON_RETRYABLE_CASES, *MODEL_CASES, *CONNECTION_CASES, *BODY_CASES]


# --- the runners -------------------------------------------------------------------------


@pytest.fixture
def decided_waits() -> Iterator[list[float]]:
    """The retry waits the client decided, which it then does not sleep (``instant_retries``)."""
    with instant_retries() as waits:
        yield waits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Run:
    outcome: Outcome
    streamed: str | None
    responses: list[httpx.Response]


def run_sync(url: str, case: Case) -> Run:
    responses: list[httpx.Response] = []
    streamed: list[str] = []
    outcome: Outcome
    with (
        httpx.Client(verify=TLS_CONTEXT, event_hooks={"response": [responses.append]}) as http,
        ChatClient(url, api_key=API_KEY, retry_policy=POLICY, http_client=http, **case.settings) as client,
    ):
        try:
            if case.call == "chat":
                outcome = client.chat(case.prompt, **case.options).content
            else:
                with client.stream(case.prompt, **case.options) as stream:
                    streamed.extend(chunk.content for chunk in stream)
                    outcome = stream.get_final_response().content
        except AzureMLChatError as exc:
            outcome = exc
        assert_pool_idle(client)
    return Run(outcome, "".join(streamed) if case.call == "stream" else None, responses)


async def play_async(client: AsyncChatClient, case: Case, streamed: list[str]) -> Outcome:
    """Run ``case`` on an async client (any driver): the answer or the error, the pool left idle."""
    outcome: Outcome
    try:
        if case.call == "chat":
            outcome = (await client.chat(case.prompt, **case.options)).content
        else:
            async with client.stream(case.prompt, **case.options) as stream:
                async for chunk in stream:
                    streamed.append(chunk.content)
                outcome = (await stream.get_final_response()).content
    except AzureMLChatError as exc:
        outcome = exc
    assert_pool_idle(client)
    return outcome


def run_async(url: str, case: Case) -> Run:
    responses: list[httpx.Response] = []
    streamed: list[str] = []

    async def hook(response: httpx.Response) -> None:
        responses.append(response)

    async def main() -> Outcome:
        async with (
            httpx.AsyncClient(verify=TLS_CONTEXT, event_hooks={"response": [hook]}) as http,
            AsyncChatClient(url, api_key=API_KEY, retry_policy=POLICY, http_client=http, **case.settings) as client,
        ):
            return await play_async(client, case, streamed)

    outcome = anyio.run(main)
    return Run(outcome, "".join(streamed) if case.call == "stream" else None, responses)


@pytest.fixture
def matrix_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault_matrix(
    case: Case,
    mode: str,
    matrix_endpoint: LocalEndpoint,
    decided_waits: list[float],
) -> None:
    endpoint = matrix_endpoint
    for fault in case.faults():
        endpoint.add_fault(fault)
    url = {
        "chat": endpoint.chat_url,
        "score": endpoint.score_url,
        "refused": f"http://127.0.0.1:{free_port()}/v1/chat/completions",
    }[case.route]

    run = (run_async if mode == "async" else run_sync)(url, case)

    # 1. the right answer or the right typed error
    if isinstance(case.expect, str):
        assert not isinstance(run.outcome, BaseException), f"expected a reply, got {run.outcome!r}"
        assert run.outcome == case.expect
    else:
        assert type(run.outcome) is case.expect, f"expected {case.expect.__name__}, got {run.outcome!r}"
        if case.match is not None:
            assert case.match in str(run.outcome)
        if case.check is not None:
            case.check(run.outcome)
        assert API_KEY not in str(run.outcome)
    if case.partial is not None:
        assert run.streamed == case.partial
    # 2. the right number of attempts, after the right waits
    attempts = len(decided_waits) + 1 if case.route == "refused" else len(endpoint.requests)
    assert attempts == case.attempts
    if case.waits is not None:
        assert len(decided_waits) == len(case.waits), decided_waits
        for wait, (low, high) in zip(decided_waits, case.waits, strict=True):
            assert low - 1e-9 <= wait <= high + 1e-9, (decided_waits, case.waits)
    # 3. nothing left open (the pool itself was checked inside the runner, before closing)
    assert all(response.is_closed for response in run.responses)
    if case.max_downloaded is not None:
        assert run.responses
        assert run.responses[-1].num_bytes_downloaded <= case.max_downloaded


def test_matrix_size() -> None:
    """The closing note quotes this figure; keep the table from shrinking unnoticed."""
    assert len(CASES) >= 100


# --- real sleeps ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_the_client_really_waits_what_it_decided(mode: str, matrix_endpoint: LocalEndpoint) -> None:
    """Outside ``instant_retries()``: a 250 ms retry-after-ms is slept; a one-hour wait is not
    slept at all: the call fails at once, carrying the wait."""
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.001, max_retry_after=0.3)
    matrix_endpoint.add_fault(Fault(503, headers={"retry-after-ms": "250"}))

    def call() -> str:
        if mode == "sync":
            with ChatClient(matrix_endpoint.url, api_key=API_KEY, retry_policy=policy) as client:
                return client.chat(PROMPT).content

        async def main() -> str:
            async with AsyncChatClient(matrix_endpoint.url, api_key=API_KEY, retry_policy=policy) as client:
                return (await client.chat(PROMPT)).content

        return anyio.run(main)

    started = time.monotonic()
    assert call() == PROMPT
    assert time.monotonic() - started >= 0.25 - 0.02  # the wait was slept
    assert len(matrix_endpoint.requests) == 2

    matrix_endpoint.add_fault(Fault(429, headers={"retry-after": "3600"}))
    with pytest.raises(RateLimitError, match="not retried") as info:
        call()
    assert info.value.retry_after == 3600.0
    assert len(matrix_endpoint.requests) == 3  # no second attempt into the quota window
