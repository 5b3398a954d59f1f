"""The decisions of a call, with no I/O (sans-IO, as in h11).

What to send, whether a reply is an error (and which), whether to retry and after
how long, and how streamed events add up to a reply. The async and sync clients
are thin drivers over these functions, so the two cannot drift apart.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ._json import loads
from ._sse import ServerSentEvent, SSEDecoder
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
)
from .formatters import ChatFormatter, error_of_payload
from .messages import ChatResponse, Message, StreamChunk, ToolCall, ToolCallDelta, Usage, _structure_usage

__all__ = ["RetryPolicy"]

USER_AGENT = f"azml-chat/{__version__}"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REQUEST_ID_HEADERS = ("x-request-id", "x-ms-request-id", "apim-request-id", "x-ms-client-request-id")
_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}


def _seconds(_instance: Any, attribute: attrs.Attribute[float], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:  # also NaN
        raise ConfigurationError(f"RetryPolicy {attribute.name} must be >= 0 seconds, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How long to wait between attempts.

    Without a ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``retry-after`` header the
    wait is ``initial_backoff * 2**attempt`` (at most ``max_backoff``) minus up to 25%
    random jitter. A server-given wait is honoured up to ``max_retry_after`` seconds.
    Values that are not numbers >= 0 raise :class:`ConfigurationError`.
    """

    initial_backoff: float = attrs.field(default=0.5, validator=_seconds)
    max_backoff: float = attrs.field(default=8.0, validator=_seconds)
    max_retry_after: float = attrs.field(default=60.0, validator=_seconds)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SETTING_OF_HEADER = {"authorization": "api_key", "api-key": "api_key", "azureml-model-deployment": "deployment_name"}


def check_headers(headers: Any) -> dict[str, str]:
    """Headers with lower-case names, once HTTP can carry them all (else :class:`ConfigurationError`).

    Checked when the client is made, so a key read from a file with its trailing newline fails
    at once, naming the setting, instead of at the first call with the key in the message.
    """
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"headers must be a dict of header names to values, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a valid HTTP header name")
        name = name.lower()
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            what = _SETTING_OF_HEADER.get(name, f"the value of header {name!r}")
            raise ConfigurationError(f"{what} must be printable ASCII text (no line breaks or control characters)")
        checked[name] = value
    return checked


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The service's request id from the first header that carries one."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def merge_params(defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Per-call parameters over the client's ``model_kwargs``, in a new dict; ``None`` drops a key."""
    merged = {**defaults, **params}
    if None in merged.values():
        merged = {key: value for key, value in merged.items() if value is not None}
    return merged


def _excerpt(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace").strip()


def decode_json(body: bytes, request_id: str | None) -> Any:
    """Decode a JSON reply; :class:`ResponseFormatError` with an excerpt if it is not JSON."""
    try:
        return loads(body)
    except ValueError:
        what = "an HTML page" if body.lstrip()[:1] == b"<" else "not JSON"
        raise ResponseFormatError(f"the reply is {what}", excerpt=_excerpt(body), request_id=request_id) from None


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
    """The typed error for an error status, with the server's message and request id."""
    headers = {name.lower(): value for name, value in headers.items()}  # one shape, whatever the driver
    request_id = request_id_of(headers)
    payload: Any = None
    code = headers.get("x-ms-error-code")
    try:
        payload = loads(body) if body else None
        found = error_of_payload(payload)
    except ValueError:
        found = None
    if found is not None:
        message, code = found[0], found[1] or code
    else:
        text = _excerpt(body)
        message = text if text and text[:1] != "<" else f"{status} error"
        if text[:1] == "<":
            message += f" (an HTML page: {text[:120]!r})"
        payload = payload if payload is not None else body.decode("utf-8", "replace")
    retry_after = parse_retry_after(headers)
    if status == 424:
        model_status = headers.get("ms-azureml-model-error-statuscode")
        reason = headers.get("ms-azureml-model-error-reason")
        if reason and reason not in message:
            message = f"{message} (model: {reason})"
        return ModelError(
            message,
            status_code=status,
            model_status=int(model_status) if model_status and model_status.isdigit() else None,
            model_reason=reason,
            request_id=request_id,
            body=payload,
            headers=headers,
            code=code,
            retry_after=retry_after,
        )
    cls = _STATUS_ERRORS.get(status, ServerError if status == 408 or status >= 500 else APIStatusError)
    return cls(
        message,
        status_code=status,
        request_id=request_id,
        body=payload,
        headers=headers,
        code=code,
        retry_after=retry_after,
    )


def is_retryable(error: AzureMLChatError) -> bool:
    """Retry 408/429/5xx (and a 424 whose model status is one of them) and connection errors.

    Connection errors here are only those raised before any byte of the reply arrived;
    the drivers never offer a mid-body failure for retry.
    """
    if isinstance(error, ModelError):
        return error.status_code == 424 and error.model_status in RETRYABLE_STATUS
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUS
    return isinstance(error, APIConnectionError)


def _number(value: str | None, per_second: float) -> float | None:
    """A header's number as seconds (at least 0); ``None`` if absent, not a number or NaN."""
    if not value:
        return None
    try:
        seconds = float(value) / per_second
    except ValueError:
        return None
    return None if math.isnan(seconds) else max(seconds, 0.0)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms``, ``x-ms-retry-after-ms``
    (milliseconds) or ``retry-after`` (seconds or an HTTP date); ``None`` if absent or unreadable."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        seconds = _number(headers.get(name), 1000.0)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value, 1.0)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):  # not a date, or a year out of range
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def retry_delay(error: AzureMLChatError, attempt: int, max_retries: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` if ``error`` should be raised.

    ``attempt`` counts from 0 for the first try.
    """
    if attempt >= max_retries or not is_retryable(error):
        return None
    if isinstance(error, APIStatusError):
        asked = parse_retry_after(error.headers)
        if asked is not None:
            return min(asked, policy.max_retry_after)
    backoff = min(policy.initial_backoff * 2.0**attempt, policy.max_backoff)
    return backoff * (1.0 - 0.25 * random.random())


def redact(body: bytes, sent_headers: Mapping[str, str]) -> bytes:
    """An error body without the key or token the request carried (some gateways echo request headers)."""
    for name in ("authorization", "api-key"):
        secret = sent_headers.get(name, "").removeprefix("Bearer ").strip().encode()
        if secret and secret in body:
            body = body.replace(secret, b"[redacted]")
    return body


def transport_error(exc: BaseException, *, timed_out: bool, request_id: str | None = None) -> APIConnectionError:
    """Wrap an HTTP-library failure; the message never holds headers (so never the key)."""
    cls = APITimeoutError if timed_out else APIConnectionError
    detail = str(exc) or type(exc).__name__
    what = "timed out" if timed_out else "connection failed"
    return cls(f"request {what}: {detail}", request_id=request_id)


def stream_transport_error(exc: BaseException, *, timed_out: bool, request_id: str | None) -> AzureMLChatError:
    """Wrap an HTTP-library failure after a stream started: a time-out stays :class:`APITimeoutError`,
    a broken connection is a :class:`StreamError` (the stream ended before ``[DONE]``), whatever the framing."""
    if timed_out:
        return transport_error(exc, timed_out=True, request_id=request_id)
    return StreamError(f"the stream broke before [DONE]: {str(exc) or type(exc).__name__}", request_id=request_id)


def parse_reply(formatter: ChatFormatter, body: bytes, request_id: str | None, elapsed: float) -> ChatResponse:
    """Decode and parse a 200 reply into a :class:`ChatResponse` carrying its metadata."""
    payload = decode_json(body, request_id)
    try:
        parsed = formatter.parse_response(payload)
    except (APIStatusError, ResponseFormatError) as exc:
        exc.request_id = exc.request_id or request_id
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # a custom formatter tripped
        raise ResponseFormatError(
            f"{type(formatter).__name__} could not parse the reply ({type(exc).__name__}: {exc})",
            excerpt=_excerpt(body),
            request_id=request_id,
        ) from exc
    if isinstance(parsed, str):
        return ChatResponse(Message("assistant", parsed), request_id=request_id, elapsed=elapsed, raw=payload)
    if type(parsed) is ChatResponse:  # a direct copy is several times cheaper than attrs.evolve
        p = parsed
        return ChatResponse(p.message, p.finish_reason, p.usage, p.model, p.id, request_id, elapsed, payload)
    return attrs.evolve(parsed, request_id=request_id, elapsed=elapsed, raw=payload)  # a subclass keeps its type


def format_body(formatter: ChatFormatter, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
    """Ask the formatter for the body; its own mistakes become :class:`InvalidRequestError`."""
    try:
        return formatter.format_request(messages, params)
    except AzureMLChatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"{type(formatter).__name__} could not format the request ({type(exc).__name__}: {exc})"
        ) from exc


class StreamState:
    """Adds up streamed chat-completion chunks into chunks for the user and a final reply."""

    def __init__(self, request_id: str | None, max_bytes: int | None = None) -> None:
        self.request_id = request_id
        self.done = False
        self.received = 0  #: body bytes fed before ``[DONE]``
        self._max_bytes = max_bytes
        self._drained = 0
        self._decoder = SSEDecoder()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._last: Any = None

    def feed(self, raw: bytes) -> Iterator[StreamChunk]:
        """Body bytes in, as they arrive; the chunks they complete out.

        After ``[DONE]`` the rest of the body is only counted: the drivers read it so the
        connection can return to the pool, and stop once :attr:`drained` says it is too long.
        More than ``max_bytes`` before ``[DONE]`` raises :class:`ResponseFormatError`.
        """
        if self.done:
            self._drained += len(raw)
            return
        self.received += len(raw)
        if self._max_bytes is not None and self.received > self._max_bytes:
            raise ResponseFormatError(
                f"the reply is larger than max_response_bytes={self._max_bytes}", request_id=self.request_id
            )
        for event in self._decoder.feed(raw):
            chunk = self.handle(event)
            if self.done:
                return
            if chunk is not None:
                yield chunk

    @property
    def drained(self) -> bool:
        """More than 64 KiB came after ``[DONE]``: stop reading and drop the connection instead."""
        return self._drained > 64 * 1024

    def finish(self, elapsed: float) -> ChatResponse:
        """The body ended: the assembled reply, or :class:`StreamError` if ``[DONE]`` never came."""
        self.ended(self._decoder.pending)
        return self.response(elapsed)

    def _fail(self, message: str, body: Any = None) -> StreamError:
        return StreamError(message, request_id=self.request_id, body=body)

    def handle(self, event: ServerSentEvent) -> StreamChunk | None:
        """One event in; a chunk out, or ``None`` for ``[DONE]`` (then :attr:`done` is set) and for
        events that carry nothing (other event types, empty keep-alives). Raises :class:`StreamError`."""
        data = event.data
        if event.event == "error":
            try:
                payload = loads(data)
            except ValueError:
                payload = data.decode("utf-8", "replace")
            found = error_of_payload(payload)
            raise self._fail(f"the stream reported an error: {found[0] if found else payload}", payload)
        if data == b"[DONE]":
            self.done = True
            return None
        if event.event != "message" or not data or data.isspace():
            return None
        try:
            payload = loads(data)
        except ValueError:
            raise self._fail(f"a stream event is not JSON: {data[:200]!r}") from None
        if not isinstance(payload, dict):
            raise self._fail(f"a stream event is not a JSON object: {data[:200]!r}")
        if payload.get("error"):  # some servers send "error": null in every chunk
            found = error_of_payload(payload)
            raise self._fail(f"the stream reported an error: {found[0] if found else payload}", payload)
        self._last = payload
        self._id = self._id or payload.get("id")
        self._model = self._model or payload.get("model")
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._usage = _structure_usage(usage)
        choices = payload.get("choices")
        if not choices:
            return StreamChunk(usage=self._usage, raw=payload)
        choice = choices[0] if isinstance(choices, list) else None
        delta = (choice.get("delta") or {}) if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(delta, dict):
            raise self._fail(f"a stream chunk has malformed choices: {data[:200]!r}", payload)
        content = delta.get("content") or ""
        reasoning = delta.get("reasoning_content") or ""
        finish = choice.get("finish_reason")
        if content:
            self._content.append(content)
        if reasoning:
            self._reasoning.append(reasoning)
        if finish:
            self._finish_reason = finish
        deltas: tuple[ToolCallDelta, ...] = ()
        if delta.get("tool_calls"):
            items = delta["tool_calls"]
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise self._fail(f"a stream chunk has malformed tool calls: {data[:200]!r}", payload)
            deltas = tuple(self._add_tool_call(item) for item in items)
        return StreamChunk(content, reasoning, deltas, finish, self._usage if usage else None, payload)

    def _add_tool_call(self, item: Any) -> ToolCallDelta:
        function = item.get("function") if isinstance(item.get("function"), dict) else {}
        index = item.get("index")
        if not isinstance(index, int):  # no index: a new id starts a call, else it continues the last one
            index = len(self._calls) if item.get("id") or not self._calls else max(self._calls)
        slot = self._calls.setdefault(index, [None, None, []])
        slot[0] = slot[0] or item.get("id")
        slot[1] = slot[1] or function.get("name")
        arguments = function.get("arguments") or ""
        slot[2].append(arguments)
        return ToolCallDelta(index, item.get("id"), function.get("name"), arguments)

    def response(self, elapsed: float) -> ChatResponse:
        """The whole reply, assembled from every chunk seen."""
        calls = tuple(
            ToolCall(slot[0] or f"call_{index}", slot[1] or "", "".join(slot[2]))
            for index, slot in sorted(self._calls.items())
        )
        message = Message(
            "assistant",
            "".join(self._content) if self._content or not calls else None,
            tool_calls=calls,
            reasoning_content="".join(self._reasoning) or None,
        )
        return ChatResponse(
            message, self._finish_reason, self._usage, self._model, self._id, self.request_id, elapsed, self._last
        )

    def ended(self, pending: bool) -> None:
        """The connection ended: an error unless ``[DONE]`` came."""
        if not self.done:
            cut = " in the middle of an event" if pending else ""
            raise self._fail(f"the stream ended{cut} before [DONE]: the connection was closed early")
