"""The message model: immutable attrs value classes, nothing else.

Messages travel in the OpenAI chat-completions shape; the codec for that shape (and
the cattrs ``converter``, and :func:`coerce_messages` for what users pass) lives in
:mod:`azml_chat._wire`. ``azml_chat.messages.converter`` and
``azml_chat.messages.coerce_messages`` stay available here as public names.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import attrs

if TYPE_CHECKING:
    import cattrs

    from ._wire import coerce_messages as coerce_messages

from ._json import dumps, loads_exact
from .errors import InvalidRequestError, ResponseFormatError

__all__ = [
    "ChatResponse",
    "Choice",
    "ContentPart",
    "ImagePart",
    "Message",
    "MessageInput",
    "ModelInfo",
    "RateLimit",
    "Role",
    "StreamChunk",
    "TextPart",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "Usage",
    "coerce_messages",
    "content_part",
    "converter",
    "tool_call",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool", "developer"]
ROLES: frozenset[str] = frozenset(get_args(Role))


def _check_text(_instance: Any, _attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"TextPart text must be a str, not {type(value).__name__}")


@attrs.frozen
class TextPart:
    """A text part of a multimodal message."""

    text: str = attrs.field(validator=_check_text)


def _check_image_url(_instance: Any, _attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value.startswith(("https://", "http://", "data:")):
        raise InvalidRequestError(
            f"an image URL must start with https://, http:// or data: (use ImagePart.from_path for a file), "
            f"not {value!r:.80}"
        )


def _check_detail(_instance: Any, _attribute: Any, value: Any) -> None:
    if value not in (None, "auto", "low", "high"):
        raise InvalidRequestError(f"image detail must be 'auto', 'low', 'high' or None, not {value!r}")


def _short_url(url: str) -> str:
    return f"{url[:60]!r}{'...' if len(url) > 60 else ''}"  # data: URLs can be megabytes


@attrs.frozen
class ImagePart:
    """An image part: an ``https://`` URL or a ``data:`` URL.

    Use :meth:`from_bytes` or :meth:`from_path` to embed a local image.
    """

    url: str = attrs.field(validator=_check_image_url, repr=_short_url)
    detail: Literal["auto", "low", "high"] | None = attrs.field(default=None, validator=_check_detail)

    @classmethod
    def from_bytes(
        cls, data: bytes, mime_type: str = "image/png", *, detail: Literal["auto", "low", "high"] | None = None
    ) -> ImagePart:
        """Embed raw image bytes as a base64 ``data:`` URL."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidRequestError(f"image data must be bytes, not {type(data).__name__}")
        if not isinstance(mime_type, str) or not mime_type.startswith("image/"):
            raise InvalidRequestError(f"mime_type must look like 'image/png', not {mime_type!r}")
        encoded = base64.b64encode(data).decode("ascii")
        return cls(f"data:{mime_type};base64,{encoded}", detail)

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, detail: Literal["auto", "low", "high"] | None = None
    ) -> ImagePart:
        """Read an image file and embed it; the MIME type comes from the file name."""
        import mimetypes  # only here: its import reads the system's MIME tables

        mime_type = mimetypes.guess_type(os.fspath(path))[0]
        if mime_type is None or not mime_type.startswith("image/"):
            raise InvalidRequestError(
                f"cannot tell the image type of {os.fspath(path)!r}: use .png, .jpg, .gif or .webp"
            )
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise InvalidRequestError(f"cannot read image {os.fspath(path)!r}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, mime_type, detail=detail)


ContentPart: TypeAlias = TextPart | ImagePart


@attrs.frozen
class ToolCall:
    """A function call requested by the model. ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON; :class:`ResponseFormatError` if the model wrote bad JSON."""
        try:
            return loads_exact(self.arguments or "{}")
        except ValueError:
            raise ResponseFormatError(
                f"tool call {self.name!r} has arguments that are not valid JSON", excerpt=self.arguments[:200]
            ) from None


def content_part(value: ContentPart | str | Mapping[str, Any]) -> ContentPart:
    """A content part from a part, a string (text), or an OpenAI-shaped dict
    (``{"type": "text", "text": ...}``, ``{"type": "image_url", "image_url": {"url": ...}}``);
    :class:`InvalidRequestError` for anything else."""
    if isinstance(value, TextPart | ImagePart):
        return value
    if isinstance(value, str):
        return TextPart(value)
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "text" and isinstance(value.get("text"), str):
            return TextPart(value["text"])
        if kind == "image_url":
            image = value.get("image_url")
            if isinstance(image, str):
                return ImagePart(image)
            if isinstance(image, Mapping) and isinstance(image.get("url"), str):
                return ImagePart(image["url"], image.get("detail"))
    raise InvalidRequestError(
        'content parts must look like {"type": "text", "text": ...} or '
        f'{{"type": "image_url", "image_url": {{"url": ...}}}}, got {value!r:.100}'
    )


def tool_call(value: ToolCall | Mapping[str, Any]) -> ToolCall:
    """A :class:`ToolCall` from one, or from an OpenAI-shaped dict
    (``{"id", "type": "function", "function": {"name", "arguments"}}``); arguments sent as an
    object are encoded to JSON text. :class:`InvalidRequestError` for anything else."""
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping):
        function = value.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # some servers send an object
                arguments = "{}" if arguments is None else dumps(arguments).decode()
            return ToolCall(str(value.get("id") or ""), function["name"], arguments)
    raise InvalidRequestError(
        'tool calls must look like {"id": ..., "type": "function", "function": {"name": ..., '
        f'"arguments": "..."}}}} (or be ToolCall values), got {value!r:.100}'
    )


def _to_content(
    value: str | Iterable[ContentPart | Mapping[str, Any] | str] | ContentPart | None,
) -> str | tuple[ContentPart, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, TextPart | ImagePart):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return tuple([content_part(part) for part in value])
    raise InvalidRequestError(
        f"message content must be a string, a list of content parts or None, not {type(value).__name__}"
    )


def _to_tool_calls(value: Iterable[ToolCall | Mapping[str, Any]]) -> tuple[ToolCall, ...]:
    if type(value) is tuple and (not value or all(type(call) is ToolCall for call in value)):
        return value  # checked just above (most messages have none: no generator made for them)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidRequestError(f"tool_calls must be a list of tool calls, not {type(value).__name__}")
    return tuple([tool_call(call) for call in value])


def _check_role(_instance: Any, _attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or value not in ROLES:  # a list is unhashable: no TypeError from `in`
        raise InvalidRequestError(f"unknown message role {value!r}: use one of {', '.join(sorted(ROLES))}")


@attrs.frozen
class Message:
    """One chat turn.

    ``content`` is a string, a tuple of :class:`TextPart`/:class:`ImagePart`, or
    ``None`` (an assistant turn that only calls tools).
    """

    role: Role = attrs.field(validator=_check_role)
    content: str | tuple[ContentPart, ...] | None = attrs.field(default=None, converter=_to_content)
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_to_tool_calls)  # dicts are converted
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        """A system (instructions) message."""
        return cls("system", content)

    @classmethod
    def user(cls, content: str | Sequence[ContentPart]) -> Message:
        """A user message: text, or a list of text and image parts."""
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: Sequence[ToolCall] = ()) -> Message:
        """An assistant message, e.g. an earlier reply kept in the history."""
        return cls("assistant", content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, content: str, tool_call_id: str) -> Message:
        """The result of a tool call, sent back to the model."""
        return cls("tool", content, tool_call_id=tool_call_id)

    @property
    def text(self) -> str:
        """The text of the message: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@attrs.frozen
class Usage:
    """Token counts reported by the endpoint."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


@attrs.frozen
class TopLogprob:
    """One of the most likely tokens at a position, with its log probability."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


@attrs.frozen
class TokenLogprob:
    """The log probability of one generated token (``logprobs=True``), with the
    ``top_logprobs`` alternatives when they were asked for."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    top_logprobs: tuple[TopLogprob, ...] = ()


@attrs.frozen
class Choice:
    """One of the ``n`` replies of a call: its message, why it ended, and its token logprobs."""

    index: int
    message: Message
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return headers.get(name) if headers else None


def _int_header(headers: Mapping[str, str] | None, name: str) -> int | None:
    value = _header(headers, name)
    return int(value) if value is not None and value.strip().isdigit() else None


@attrs.frozen
class RateLimit:
    """What the service said about its limits on this reply (``x-ratelimit-*`` headers).

    Counts are ``None`` when the header was absent; ``reset_*`` are the service's own
    text (e.g. ``"1s"``, ``"6m0s"``); ``retry_after`` is in seconds.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_requests: str | None = None
    reset_tokens: str | None = None
    retry_after: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> RateLimit:
        """Read the limits from lower-case response headers (``retry_after`` as the retries
        read it: ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``retry-after`` in seconds or
        as an HTTP date)."""
        from ._core import parse_retry_after  # loaded by then (a reply came through it); it imports this module

        retry_after = parse_retry_after(headers) if headers else None
        return cls(
            _int_header(headers, "x-ratelimit-limit-requests"),
            _int_header(headers, "x-ratelimit-remaining-requests"),
            _int_header(headers, "x-ratelimit-limit-tokens"),
            _int_header(headers, "x-ratelimit-remaining-tokens"),
            _header(headers, "x-ratelimit-reset-requests"),
            _header(headers, "x-ratelimit-reset-tokens"),
            retry_after,
        )


def _first_choice(response: ChatResponse) -> tuple[Choice, ...]:
    return (Choice(0, response.message, response.finish_reason),)


@attrs.frozen
class ChatResponse:
    """A complete reply.

    ``message``, ``finish_reason`` and the properties below describe the first choice;
    ``choices`` holds every choice (``n`` > 1) with its logprobs. ``raw`` is the decoded
    JSON exactly as received (unknown fields included), ``request_id`` the service's
    request id, ``elapsed`` the seconds the call took, ``headers`` the response headers
    (lower-case names; see :attr:`rate_limit`).
    """

    message: Message
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    request_id: str | None = None
    elapsed: float | None = None
    raw: Any = attrs.field(default=None, repr=False)
    choices: tuple[Choice, ...] = attrs.field(
        default=attrs.Factory(_first_choice, takes_self=True), repr=False, eq=False
    )
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def content(self) -> str:
        """The answer text ("" when the model only called tools)."""
        return self.message.text

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Tool calls requested by the model."""
        return self.message.tool_calls

    @property
    def reasoning_content(self) -> str | None:
        """The model's reasoning, for reasoning models (kept apart from the answer)."""
        return self.message.reasoning_content

    @property
    def logprobs(self) -> tuple[TokenLogprob, ...] | None:
        """The first choice's token log probabilities, when ``logprobs=True`` was asked for."""
        return self.choices[0].logprobs if self.choices else None

    @property
    def rate_limit(self) -> RateLimit:
        """The service's rate-limit headers on this reply."""
        return RateLimit.from_headers(self.headers)


@attrs.frozen
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class StreamChunk:
    """One streamed piece of a reply; ``index`` says which choice it belongs to (``n`` > 1)."""

    content: str = ""
    reasoning_content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = attrs.field(default=None, repr=False)
    index: int = 0


@attrs.frozen
class ModelInfo:
    """What ``GET /info`` says about a serverless or managed-compute deployment."""

    model_name: str | None
    model_type: str | None
    model_provider_name: str | None
    raw: Any = attrs.field(default=None, repr=False)


MessageInput: TypeAlias = str | Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any] | str]

if TYPE_CHECKING:
    #: The cattrs converter for the wire shape (built on first access: cattrs loads lazily).
    converter: cattrs.Converter


def __getattr__(name: str) -> Any:
    # The codec lives in _wire (it imports this module); these two public names load it lazily.
    if name in ("converter", "coerce_messages"):
        from . import _wire

        return getattr(_wire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
