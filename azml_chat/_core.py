"""Every decision of a call, with no I/O (sans-IO, as in h11).

:func:`prepare` turns messages and call options into a :class:`Call` (the request and
the limits it runs under). :class:`Attempts` is the attempt machine: generators that
yield actions (:class:`Send`, :class:`Read`, :class:`Release`, :class:`Sleep`,
:data:`GET_TOKEN`, :class:`Emit`) and are sent back their outcomes (a value, or an
:class:`~azml_chat.AzureMLChatError` the transport raised). The clients are pumps
that perform actions and decide nothing, so the async and sync clients cannot drift.
Here live the body limit and the per-attempt deadline, the single 401 re-authentication,
status-to-error mapping, redaction, retry waits, the non-SSE stream fallback, the rule
that nothing after ``[DONE]`` matters, and :class:`StreamState`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import time
from collections.abc import Callable, Generator, Mapping
from random import getrandbits, random
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from ._json import dumps, loads
from ._stream import StreamState
from ._transport.base import Request
from ._version import __version__
from ._wire import (
    coerce_messages,
    error_of_payload,
    parse_chat_completion,
    plain_wire_messages,
    split_think,
)
from .config import BODY_PARAMS, CALL_PARAMS, ClientSettings, RetryPolicy, check_headers, check_retries, check_seconds
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
)
from .formatters import (
    CALL_FEATURES,
    STANDARD_KEYS,
    ChatFormatter,
    LlamaChatFormatter,
    OpenAIChatFormatter,
    PhiChatFormatter,
    ScoreFormatter,
)
from .hooks import AttemptInfo, CallInfo
from .messages import ChatResponse, Message, ModelInfo, StreamChunk, ToolCallDelta

__all__ = ["Attempts", "Call", "StreamState", "prepare"]  # StreamState lives in _stream

logger: logging.Logger = logging.getLogger("azml_chat")

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
_AFTER_DONE_LIMIT = 64 * 1024
_TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})
#: Formatters (these exact classes: a subclass may override it) whose body holds the messages in
#: wire form, so plain message dicts can go in as they are.
_PLAIN_BODIES = frozenset({OpenAIChatFormatter, ScoreFormatter, LlamaChatFormatter, PhiChatFormatter})


# --- preparing a call ------------------------------------------------------------------


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_request_id() -> str:
    """A random UUID4 string for ``x-ms-client-request-id`` (4x cheaper than ``str(uuid.uuid4())``).

    An id for correlating logs, not a secret, so ``random`` (re-seeded after fork) is enough.
    """
    digits = (getrandbits(128) & _UUID4_CLEAR | _UUID4_SET).to_bytes(16).hex()  # cheaper than f"{n:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def auth_headers(settings: ClientSettings, key: str) -> dict[str, str]:
    """The headers that carry a key, as ``auth_header`` says."""
    if settings.auth_header == "bearer":
        return {"authorization": f"Bearer {key}"}
    if settings.auth_header == "api-key":
        return {"api-key": key}
    return {"authorization": f"Bearer {key}", "api-key": key}


def default_headers(settings: ClientSettings) -> dict[str, str]:
    """Headers every request carries (a transport's own client may hold them)."""
    headers = {"content-type": "application/json", "accept": "application/json", "user-agent": USER_AGENT}
    headers.update(settings.headers)
    if isinstance(settings.api_key, str):  # a rotating AzureKeyCredential is read per request instead
        headers.update(auth_headers(settings, settings.api_key))
    return headers


#: Headers whose values are credentials, wherever a caller put them (``headers=``, ``extra_headers=``).
_CREDENTIAL_HEADERS = ("authorization", "api-key", "ocp-apim-subscription-key")


def secrets_in(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials among ``headers`` (lower-case names), each also without its scheme
    (``Bearer <token>`` gives the token too), so that an echo of either is redacted."""
    found: list[str] = []
    for name in _CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            found.append(value)
            token = value.partition(" ")[2].strip()
            if token:
                found.append(token)
    return tuple(found)


def request_auth(settings: ClientSettings) -> tuple[dict[str, str], tuple[str, ...]]:
    """The auth headers a request adds itself, and the secrets it carries (for redaction).

    A plain key is among the default headers already (stripped when the client was made);
    an ``AzureKeyCredential`` is read now, so ``update()`` rotates the key. A credential the
    caller put in ``headers=`` is a secret too.
    """
    api_key = settings.api_key
    own = secrets_in(settings.headers) if settings.headers else ()
    if type(api_key) is str:
        return {}, (api_key, *own) if own else (api_key,)
    key = settings.key
    if key is None:
        return {}, own
    return auth_headers(settings, key), (key, *own)


class Call:
    """One prepared call: the request and the limits it runs under (never changed once made)."""

    __slots__ = ("_input", "_messages", "formatter", "max_retries", "params", "request", "secrets", "stream", "timeout")

    def __init__(
        self,
        request: Request,
        formatter: ChatFormatter,
        timeout: float | None,
        max_retries: int,
        stream: bool,
        secrets: tuple[str, ...],
        messages: tuple[Message, ...] | None = (),
        params: Mapping[str, Any] | None = None,
        message_input: Any = None,
    ) -> None:
        self.request: Request = request
        self.formatter: ChatFormatter = formatter
        #: Seconds each attempt may take (``chat()`` bounds the whole reply by it too).
        self.timeout: float | None = timeout
        self.max_retries: int = max_retries
        self.stream: bool = stream
        self.secrets: tuple[str, ...] = secrets
        # The messages as values, or None until asked for (see ``messages``).
        self._messages = messages
        self._input = message_input
        #: What was asked, for hooks: the body parameters (no messages, no secrets).
        self.params: Mapping[str, Any] = params or {}

    @property
    def messages(self) -> tuple[Message, ...]:
        """What was asked, for hooks, as :class:`Message` values. A body made straight from
        plain message dicts (see ``prepare``) makes them only when a hook asks."""
        if self._messages is None:
            self._messages = coerce_messages(self._input)
        return self._messages


def _check_keys(params: Mapping[str, Any], owner: str) -> None:
    if CALL_PARAMS.issuperset(params):  # one set operation on the usual path (~17k -> ~2k instructions)
        return
    unknown = [key for key in params if key not in CALL_PARAMS]
    raise TypeError(
        f"{owner}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: model-specific "
        f"parameters go in extra_body={{{unknown[0]!r}: ...}}"
    )


def _wire_params(merged: dict[str, Any], formatter: ChatFormatter) -> dict[str, Any]:
    """Tools, tool choice and response format in their wire shape; refuse what the body cannot carry."""
    missing = [key for key in CALL_FEATURES if key in merged and key not in formatter.features]
    if missing:
        raise InvalidRequestError(
            f"{', '.join(sorted(missing))} cannot be sent to a /score container with the {formatter.name!r} "
            "formatter: use the deployment's chat-completions route (/v1/chat/completions) or a formatter "
            "that supports them"
        )
    if "tools" in merged or "tool_choice" in merged:
        from .tools import tool_choice_to_wire, tools_to_wire  # loaded on first use: import time

        if "tools" in merged:
            merged["tools"] = tools_to_wire(merged["tools"])
        if "tool_choice" in merged:
            choice = tool_choice_to_wire(merged["tool_choice"])
            if isinstance(choice, str) and choice not in _TOOL_CHOICE_WORDS:  # a function's name
                choice = {"type": "function", "function": {"name": choice}}
            merged["tool_choice"] = choice
    if isinstance(merged.get("response_format"), type) or _is_schema_style(merged.get("response_format")):
        from .structured import response_format_for

        merged["response_format"] = response_format_for(merged["response_format"])
    return merged


def _is_schema_style(value: Any) -> bool:
    """A typed-dict or generic alias given as ``response_format`` (not a wire dict)."""
    return value is not None and not isinstance(value, Mapping | str) and hasattr(value, "__origin__")


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


def prepare(
    settings: ClientSettings,
    messages: Any,
    params: Mapping[str, Any],
    *,
    stream: bool,
    owner: str,
    include_defaults: bool,
) -> Call:
    """The request for ``messages`` and the call options ``params`` (see ``ChatParams``).

    Nothing the caller passed is changed: options merge over ``model_kwargs`` into new
    dicts. Raises :class:`TypeError` for an unknown option and
    :class:`InvalidRequestError` for bad values, before anything is sent.
    """
    _check_keys(params, owner)
    formatter: ChatFormatter = settings.formatter
    # Plain {"role", "content": str} dicts go into the body as they are, checked as Message would
    # check them (~30k instructions a call less), where the formatter sends messages in wire
    # form; anything else becomes Message values.
    wire = plain_wire_messages(messages) if type(formatter) in _PLAIN_BODIES else None
    prepared = coerce_messages(messages) if wire is None else None
    endpoint = settings.endpoint
    extra_body = params.get("extra_body")
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise InvalidRequestError(f"extra_body must be a dict, not {type(extra_body).__name__}")
    merged = {**settings.model_kwargs}
    for name, value in params.items():  # a loop, not a generator: this runs on every call
        if name in BODY_PARAMS:
            merged[name] = value
    if extra_body:
        merged.update(extra_body)
    if None in merged.values():
        merged = {key: value for key, value in merged.items() if value is not None}
    chat_completions = endpoint.dialect == "chat-completions"
    if settings.model is not None and chat_completions:
        merged.setdefault("model", settings.model)
    if not merged.keys().isdisjoint(CALL_FEATURES):
        merged = _wire_params(merged, formatter)
    streaming = stream and chat_completions and formatter.supports_streaming
    if streaming:
        merged["stream"] = True
    elif chat_completions:
        merged.pop("stream", None)
    if wire is not None:
        body = cast("OpenAIChatFormatter | ScoreFormatter", formatter).body_with(merged, wire)
    else:
        assert prepared is not None  # made above when there is no wire form
        body = format_body(formatter, prepared, merged)

    headers = default_headers(settings) if include_defaults else {}
    headers["x-ms-client-request-id"] = new_request_id()
    if streaming:
        headers["accept"] = "text/event-stream"
    if chat_completions and endpoint.extra_parameters_header and (type(body) is dict or isinstance(body, Mapping)):
        policy = settings.extra_parameters
        if policy is None and not STANDARD_KEYS.issuperset(body):
            policy = "pass-through"
        if policy is not None:
            headers["extra-parameters"] = policy
    extra = formatter.request_headers(body)
    if extra:
        headers.update(extra)
    rotating, secrets = request_auth(settings)
    if rotating:
        headers.update(rotating)
    if params.get("extra_headers"):
        extra_headers = check_headers(params["extra_headers"], "extra_headers", InvalidRequestError)
        headers.update(extra_headers)
        secrets += secrets_in(extra_headers)

    url = endpoint.url
    if params.get("extra_query"):
        query = params["extra_query"]
        if not isinstance(query, Mapping):
            raise InvalidRequestError(f"extra_query must be a dict, not {type(query).__name__}")
        url += ("&" if urlsplit(url).query else "?") + urlencode(query)
    timeout = settings.timeout
    if "timeout" in params:
        timeout = check_seconds(params["timeout"], "timeout", InvalidRequestError)
    max_retries = params.get("max_retries")
    return Call(
        Request("POST", url, headers, dumps(body), timeout, not stream),
        formatter,
        timeout,
        settings.max_retries if max_retries is None else check_retries(max_retries, InvalidRequestError),
        streaming,
        secrets,
        prepared,
        merged,
        messages,
    )


# --- status, errors and retries --------------------------------------------------------


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The service's request id from the first header that carries one."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _excerpt(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace").strip()


def decode_json(body: bytes, request_id: str | None) -> Any:
    """Decode a JSON reply; :class:`ResponseFormatError` with an excerpt if it is not JSON."""
    try:
        return loads(body)
    except ValueError:
        what = "an HTML page" if body.lstrip()[:1] == b"<" else "not JSON"
        raise ResponseFormatError(f"the reply is {what}", excerpt=_excerpt(body), request_id=request_id) from None


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


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str = "",
    method: str = "POST",
    dedicated: bool = False,
    authenticated: bool = True,
) -> APIStatusError:
    """The typed error for an error status, with the server's message, request id and a hint
    at what to fix where the status says it (404: the path; 401 with no key; 408 on a
    managed online endpoint: the deployment's ``request_timeout_ms``)."""
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
    if status == 404 and url:
        message += f" ({method} {urlsplit(url).path}: check the URL path and deployment name)"
    elif status == 401 and not authenticated:
        message += (
            " (no key or credential is configured: pass api_key=..., set AZUREML_ENDPOINT_API_KEY, "
            "or pass credential=...)"
        )
    elif status == 408 and dedicated:
        message += (
            " (the deployment's request_timeout_ms was exceeded; it repeats on retry: raise "
            "request_settings.request_timeout_ms of the deployment, up to 180000, or ask for less output)"
        )
    retry_after = parse_retry_after(headers)
    common: dict[str, Any] = {
        "request_id": request_id,
        "body": payload,
        "headers": headers,
        "code": code,
        "retry_after": retry_after,
    }
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
            **common,
        )
    cls = _STATUS_ERRORS.get(status, ServerError if status == 408 or status >= 500 else APIStatusError)
    return cls(message, status_code=status, **common)


def is_retryable(error: AzureMLChatError, *, dedicated: bool = False, policy: RetryPolicy | None = None) -> bool:
    """Retry 429, 5xx, 408 (not on a dedicated endpoint, where it repeats), a 424 whose model
    status is one of them, and failures before any byte of the reply (time-outs only while
    ``policy.retry_timeouts``). Failures mid-body are never offered for retry."""
    if isinstance(error, ModelError):
        return error.status_code == 424 and error.model_status in RETRYABLE_STATUS
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUS and not (error.status_code == 408 and dedicated)
    if isinstance(error, APITimeoutError):
        return policy is None or policy.retry_timeouts
    return isinstance(error, APIConnectionError)


def retry_delay(
    error: AzureMLChatError, attempt: int, max_retries: int, policy: RetryPolicy, *, dedicated: bool = False
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` if ``error`` should be raised.

    ``attempt`` counts from 0 for the first try. A server-given wait longer than
    ``policy.max_retry_after`` is not slept: the error is raised at once, saying so.
    """
    if attempt >= max_retries or not is_retryable(error, dedicated=dedicated, policy=policy):
        return None
    asked = error.retry_after if isinstance(error, APIStatusError) else None
    if asked is not None:
        if asked > policy.max_retry_after:
            error.message += (
                f" (the service asked to wait {asked:g}s, more than RetryPolicy.max_retry_after="
                f"{policy.max_retry_after:g}s: not retried; see .retry_after)"
            )
            return None
        return asked
    backoff = min(policy.initial_backoff * 2.0**attempt, policy.max_backoff)
    return backoff * (1.0 - 0.25 * random())


#: A secret next to one of these is part of a longer word, not an occurrence of the secret.
#: Punctuation is no edge: a key echoed as ``key=<key>.`` or ``/<key>`` must go.
_SECRET_EDGE = r"[A-Za-z0-9_]"


def redact(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """A body without whole occurrences of the key or token a request carried (some gateways
    echo request headers); a short key inside a longer word ("he" in "Check") is left alone."""
    for secret in secrets:
        raw = secret.encode()
        if raw and raw in body:
            pattern = re.compile(
                rb"(?<!" + _SECRET_EDGE.encode() + rb")" + re.escape(raw) + rb"(?!" + _SECRET_EDGE.encode() + rb")"
            )
            body = pattern.sub(b"[redacted]", body)
    return body


def parse_reply(
    formatter: ChatFormatter,
    body: bytes,
    request_id: str | None,
    elapsed: float,
    headers: Mapping[str, str] | None = None,
) -> ChatResponse:
    """Decode and parse a 200 reply into a :class:`ChatResponse` carrying its metadata."""
    payload = decode_json(body, request_id)
    try:
        if type(formatter) is OpenAIChatFormatter:  # the reply made once, metadata included (no copy)
            return parse_chat_completion(payload, request_id, elapsed, headers)
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
        answer, reasoning = split_think(parsed)
        message = Message("assistant", answer, reasoning_content=reasoning or None)  # "<think></think>": none
        return ChatResponse(message, request_id=request_id, elapsed=elapsed, raw=payload, headers=headers)
    if type(parsed) is ChatResponse:  # a direct copy is several times cheaper than attrs.evolve
        p = parsed
        return ChatResponse(
            p.message, p.finish_reason, p.usage, p.model, p.id, request_id, elapsed, payload, p.choices, headers
        )
    import attrs

    return attrs.evolve(parsed, request_id=request_id, elapsed=elapsed, raw=payload, headers=headers)


def response_chunk(reply: ChatResponse) -> StreamChunk:
    """A whole reply as one stream chunk (for routes that cannot stream, or a non-SSE reply)."""
    deltas = tuple(
        ToolCallDelta(index, call.id, call.name, call.arguments) for index, call in enumerate(reply.tool_calls)
    )
    return StreamChunk(
        reply.content, reply.reasoning_content or "", deltas, reply.finish_reason, reply.usage, reply.raw
    )


# --- the attempt machine ---------------------------------------------------------------

#: While a list (test mode), each retry wait is decided as always, appended here and not slept.
_skipped_waits: list[float] | None = None


def skip_retry_waits(waits: list[float] | None) -> list[float] | None:
    """Test mode, for :func:`azml_chat.testing.instant_retries`: while ``waits`` is a list, every
    client appends each retry wait it decides to it and sleeps 0 s instead; ``None`` ends it.
    Returns the list it replaces."""
    global _skipped_waits
    previous, _skipped_waits = _skipped_waits, waits
    return previous


class Send:
    """Send this request; the pump sends back ``(status, headers, handle)`` or the error."""

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request


class Read:
    """Read the next piece of the body behind ``handle``; ``b""`` at its end, or the error."""

    __slots__ = ("handle",)

    def __init__(self, handle: Any) -> None:
        self.handle = handle


class Release:
    """Release ``handle`` (see :mod:`azml_chat._transport.base` for who releases what)."""

    __slots__ = ("handle",)

    def __init__(self, handle: Any) -> None:
        self.handle = handle


class Sleep:
    """Wait this many seconds before the next attempt."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Emit:
    """Hand this chunk to the user (streams only)."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: StreamChunk) -> None:
        self.chunk = chunk


class Notify:
    """Tell the hooks how an attempt went."""

    __slots__ = ("info",)

    def __init__(self, info: AttemptInfo) -> None:
        self.info = info


class _GetToken:
    """Fetch the credential's current token (the pump sends back the token text)."""

    __slots__ = ()


GET_TOKEN = _GetToken()

Action = Send | Read | Release | Sleep | Emit | Notify | _GetToken
Flow = Generator[Action, Any, Any]


def _is_sse(headers: Mapping[str, str]) -> bool:
    content_type: str = headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


class Attempts:
    """The attempt machine of one call (see the module docstring).

    ``tokens`` is the credential's token provider, if any; ``clock`` a monotonic clock
    (injectable for tests).
    """

    __slots__ = (
        "_authenticated",
        "_call",
        "_clock",
        "_dedicated",
        "_deployment",
        "_limit",
        "_policy",
        "_tokens",
        "attempt",
        "call_info",
        "sent",
        "started",
    )

    def __init__(
        self,
        call: Call,
        settings: ClientSettings,
        tokens: Any = None,
        clock: Callable[[], float] = time.monotonic,
        info: CallInfo | None = None,
    ) -> None:
        self._call = call
        #: The call as hooks see it; set only when hooks listen (then each attempt is reported).
        self.call_info: CallInfo | None = info
        self._policy = settings.retry_policy
        self._dedicated = settings.endpoint.api_type == "dedicated"
        self._deployment = settings.deployment_name
        self._authenticated = tokens is not None or settings.api_key is not None or "authorization" in settings.headers
        self._tokens = tokens
        self._clock = clock
        self._limit = settings.max_response_bytes
        #: The retry under way, counting from 0 (a re-authentication after a 401 is not one).
        self.attempt: int = 0
        #: Requests sent so far.
        self.sent: int = 0
        #: When the call began, by ``clock``.
        self.started: float = clock()

    def _read_whole(self, handle: Any, deadline: float | None, request_id: str | None) -> Flow:
        """Read a body within ``max_response_bytes`` and ``deadline``; returns bytes or the error."""
        limit = self._limit
        chunks: list[bytes] = []
        size = 0
        read = Read(handle)
        while True:
            piece = yield read
            if isinstance(piece, AzureMLChatError):
                if deadline is not None and isinstance(piece, APITimeoutError) and self._clock() >= deadline:
                    return self._too_slow(request_id)  # the driver's own deadline came first: the same error
                piece.request_id = piece.request_id or request_id
                return piece
            if not piece:
                return b"".join(chunks)
            size += len(piece)
            if size > limit:
                return ResponseFormatError(
                    f"the reply is larger than max_response_bytes={limit}", request_id=request_id
                )
            chunks.append(piece)
            if deadline is not None and self._clock() > deadline:
                return self._too_slow(request_id)

    def _too_slow(self, request_id: str | None) -> APITimeoutError:
        return APITimeoutError(
            f"the whole reply took longer than timeout={self._call.timeout:g}s (raise it with timeout= or "
            "AZUREML_TIMEOUT, or pass timeout=None for none)",
            request_id=request_id,
        )

    def _send_until_accepted(self) -> Flow:
        """Attempts until a status below 400 arrives; returns ``(headers, handle, sent_at)``."""
        call = self._call
        tokens = self._tokens
        reauthenticate = tokens is not None  # a 401 on a credential's token gets one new token
        debug = logger.isEnabledFor(logging.DEBUG)
        while True:
            request = call.request
            secrets = call.secrets
            seen = 0
            if tokens is not None:
                token = yield GET_TOKEN
                seen = tokens.refreshes  # the token handed out just now
                request = Request(
                    request.method,
                    request.url,
                    {**request.headers, "authorization": f"Bearer {token}"},
                    request.content,
                    request.timeout,
                    request.whole_reply,
                )
                secrets = (*secrets, token)
            if debug:
                logger.debug(
                    "%s %s (attempt %d of %d)", request.method, request.url, self.attempt + 1, call.max_retries + 1
                )
            sent_at = self._clock()
            self.sent += 1
            outcome = yield Send(request)
            error: AzureMLChatError
            if isinstance(outcome, AzureMLChatError):
                error = outcome
            else:
                status, headers, handle = outcome
                if debug:
                    logger.debug(
                        "HTTP %d after %.1f ms (request id %s)",
                        status,
                        (self._clock() - sent_at) * 1000,
                        request_id_of(headers),
                    )
                if status < 400:
                    if self.call_info is not None:
                        yield self._attempt_done(sent_at, status, request_id_of(headers), None, None)
                    return headers, handle, sent_at
                body = yield from self._read_whole(handle, None, request_id_of(headers))
                yield Release(handle)
                error = status_error(
                    status,
                    headers,
                    redact(body, secrets) if isinstance(body, bytes) else b"",
                    url=request.url,
                    method=request.method,
                    dedicated=self._dedicated,
                    authenticated=self._authenticated,
                )
            if reauthenticate and isinstance(error, AuthenticationError):
                reauthenticate = False
                tokens.invalidate(seen)
                if self.call_info is not None:
                    yield self._attempt_done(sent_at, error, None, error, 0.0)
                continue  # a fresh token is no retry: it does not use up max_retries
            delay = retry_delay(error, self.attempt, call.max_retries, self._policy, dedicated=self._dedicated)
            if self.call_info is not None:
                yield self._attempt_done(sent_at, error, None, error, delay)
            if delay is None:
                logger.debug("attempt %d failed, not retrying: %s", self.attempt + 1, error)
                raise error
            logger.info("attempt %d failed (%s); retrying in %.3fs", self.attempt + 1, error, delay)
            if _skipped_waits is not None:  # test mode (azml_chat.testing.instant_retries)
                _skipped_waits.append(delay)
                delay = 0.0
            yield Sleep(delay)
            self.attempt += 1

    def _attempt_done(
        self,
        sent_at: float,
        status: int | AzureMLChatError,
        request_id: str | None,
        error: AzureMLChatError | None,
        retry_in: float | None,
    ) -> Notify:
        if isinstance(status, AzureMLChatError):
            request_id = status.request_id
            status = status.status_code if isinstance(status, APIStatusError) else None  # type: ignore[assignment]
        info = AttemptInfo(
            self.call_info,  # type: ignore[arg-type]
            self.sent - 1,
            status,  # type: ignore[arg-type]
            request_id,
            self._clock() - sent_at,
            error,
            retry_in,
        )
        return Notify(info)

    def chat(self) -> Flow:
        """The whole call of ``chat()``: returns the :class:`ChatResponse`."""
        headers, handle, sent_at = yield from self._send_until_accepted()
        request_id = request_id_of(headers)
        timeout = self._call.timeout
        body = yield from self._read_whole(handle, None if timeout is None else sent_at + timeout, request_id)
        yield Release(handle)
        if not isinstance(body, bytes):
            raise body
        reply = parse_reply(self._call.formatter, body, request_id, self._clock() - self.started, headers)
        if logger.isEnabledFor(logging.DEBUG):
            self._log_end("reply", reply, len(body))
        return reply

    def stream(self) -> Flow:
        """The whole call of ``stream()``: emits chunks, returns the assembled :class:`ChatResponse`.

        Only failures before the first chunk are retried. A reply that is not SSE (a route
        that cannot stream, or a server that chose not to) arrives as one chunk. After
        ``[DONE]`` the rest of the body is only drained (up to 64 KiB, then the connection
        is dropped) and its errors are ignored. The call's clock starts at the first read,
        not when ``stream()`` made it.
        """
        self.started = self._clock()
        headers, handle, _ = yield from self._send_until_accepted()
        request_id = request_id_of(headers)
        if not self._call.stream or not _is_sse(headers):
            body = yield from self._read_whole(handle, None, request_id)
            yield Release(handle)
            if not isinstance(body, bytes):
                raise body
            reply = parse_reply(self._call.formatter, body, request_id, self._clock() - self.started, headers)
            if logger.isEnabledFor(logging.DEBUG):
                self._log_end("reply", reply, len(body))
            yield Emit(response_chunk(reply))
            return reply
        state = StreamState(request_id, self._limit)
        read = Read(handle)
        while True:
            piece = yield read
            if isinstance(piece, AzureMLChatError):
                if state.done:
                    break  # what follows [DONE] does not matter
                yield Release(handle)
                raise stream_error(piece, request_id)
            if not piece:
                break
            try:
                events = state.decode(piece)
            except AzureMLChatError:
                yield Release(handle)
                raise
            for event in events:  # each event's chunk is handed out before the next one is parsed
                try:
                    chunk = state.handle(event)
                except AzureMLChatError:
                    yield Release(handle)
                    raise
                if chunk is not None:
                    yield Emit(chunk)
                if state.done:
                    break
            if state.done and state.after_done > _AFTER_DONE_LIMIT:
                break
        yield Release(handle)
        reply = state.finish(self._clock() - self.started, headers)
        if logger.isEnabledFor(logging.DEBUG):
            self._log_end("stream", reply, state.received)
        return reply

    def _log_end(self, what: str, reply: ChatResponse, size: int) -> None:
        """The DEBUG line of a finished call: what answered, what it cost, and the id to quote."""
        usage = reply.usage
        logger.debug(
            "%s ended: model=%s deployment=%s input_tokens=%s output_tokens=%s request_id=%s (%d bytes in %.1f ms)",
            what,
            reply.model,
            self._deployment,
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
            reply.request_id,
            size,
            (self._clock() - self.started) * 1000,
        )

    def info(self) -> Flow:
        """``GET /info``: returns the :class:`ModelInfo`."""
        headers, handle, _ = yield from self._send_until_accepted()
        request_id = request_id_of(headers)
        body = yield from self._read_whole(handle, None, request_id)
        yield Release(handle)
        if not isinstance(body, bytes):
            raise body
        payload = decode_json(body, request_id)
        if not isinstance(payload, dict):
            raise ResponseFormatError(
                "/info did not return a JSON object", excerpt=_excerpt(body), request_id=request_id
            )
        return ModelInfo(
            payload.get("model_name"), payload.get("model_type"), payload.get("model_provider_name"), payload
        )


def info_call(settings: ClientSettings, include_defaults: bool) -> Call:
    """The ``GET /info`` request; :class:`InvalidRequestError` where the route has no ``/info``."""
    endpoint = settings.endpoint
    if endpoint.info_url is None:
        raise InvalidRequestError(
            f"{endpoint.api_type} endpoints have no /info on the {endpoint.route!r} route "
            f"({endpoint.url}): the model is the deployment you named"
        )
    headers = default_headers(settings) if include_defaults else {}
    rotating, secrets = request_auth(settings)
    headers.update(rotating)
    request = Request("GET", endpoint.info_url, headers, None, settings.timeout)
    return Call(request, settings.formatter, settings.timeout, settings.max_retries, False, secrets)


def structured_params(settings: ClientSettings, cls: type[Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` asking for JSON shaped like ``cls`` (OpenAI bodies only), unless they already ask."""
    asks = "response_format" in settings.model_kwargs or params.get("response_format") is not None
    if settings.endpoint.dialect == "chat-completions" and not asks:
        return {**params, "response_format": cls}
    return dict(params)


def structured_reply(reply: ChatResponse, cls: type[Any]) -> Any:
    """The reply parsed as an instance of ``cls`` (:class:`StructuredOutputError` if it does not fit)."""
    from .structured import parse_structured

    return parse_structured(reply, cls)


def stream_error(error: AzureMLChatError, request_id: str | None) -> AzureMLChatError:
    """A transport failure after a stream started: a time-out stays :class:`APITimeoutError`;
    a broken connection is a :class:`StreamError` (the stream ended before ``[DONE]``)."""
    if isinstance(error, APITimeoutError):
        error.request_id = error.request_id or request_id
        return error
    return StreamError(f"the stream broke before [DONE]: {error.message}", request_id=request_id)
