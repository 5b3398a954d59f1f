"""The message model: immutable attrs classes and one cattrs converter for the wire shape.

Messages travel in the OpenAI chat-completions shape
(``{"role": ..., "content": ..., "tool_calls": [...], "tool_call_id": ...}``);
``converter.unstructure(message)`` produces it and ``converter.structure(d, Message)``
reads it back, validating as it goes. The converter (and cattrs) loads on first use; the
SDK's own hot path calls the hook functions directly.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import attrs

if TYPE_CHECKING:
    import cattrs

from ._json import dumps, loads
from .errors import InvalidRequestError, ResponseFormatError

__all__ = [
    "ChatResponse",
    "ContentPart",
    "ImagePart",
    "Message",
    "MessageInput",
    "Role",
    "StreamChunk",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "coerce_messages",
    "converter",
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
            return loads(self.arguments or "{}")
        except ValueError:
            raise ResponseFormatError(
                f"tool call {self.name!r} has arguments that are not valid JSON", excerpt=self.arguments[:200]
            ) from None


def _to_content(
    value: str | Iterable[ContentPart | Mapping[str, Any] | str] | ContentPart | None,
) -> str | tuple[ContentPart, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, TextPart | ImagePart):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return tuple([_structure_part(part, ContentPart) for part in value])
    raise InvalidRequestError(
        f"message content must be a string, a list of content parts or None, not {type(value).__name__}"
    )


def _to_tool_calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return value if type(value) is tuple else tuple(value)


def _check_role(_instance: Any, _attribute: Any, value: Any) -> None:
    if value not in ROLES:
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
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_to_tool_calls)
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
class ChatResponse:
    """A complete reply.

    ``raw`` is the decoded JSON exactly as received (unknown fields included),
    ``request_id`` the service's request id, ``elapsed`` the seconds the call took.
    """

    message: Message
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    request_id: str | None = None
    elapsed: float | None = None
    raw: Any = attrs.field(default=None, repr=False)

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


@attrs.frozen
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class StreamChunk:
    """One streamed piece of a reply."""

    content: str = ""
    reasoning_content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = attrs.field(default=None, repr=False)


# --- the wire shape -----------------------------------------------------------------


def _unstructure_message(message: Message) -> dict[str, Any]:
    content = message.content
    wire: dict[str, Any] = {
        "role": message.role,
        "content": content
        if content is None or isinstance(content, str)
        else [_unstructure_part(part) for part in content],
    }
    if message.name is not None:
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [_unstructure_tool_call(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _unstructure_part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _unstructure_tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _structure_part(value: Any, _type: Any) -> ContentPart:
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


def _structure_tool_call(value: Any, _type: Any) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping):
        function = value.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # some servers send an object
                arguments = "{}" if arguments is None else _json_text(arguments)
            return ToolCall(str(value.get("id") or ""), function["name"], arguments)
    raise InvalidRequestError(
        'tool calls must look like {"id": ..., "type": "function", "function": {"name": ..., "arguments": "..."}}'
    )


def _json_text(value: Any) -> str:
    return dumps(value).decode()


def _structure_message(value: Any, _type: Any = None) -> Message:
    if type(value) is not dict:  # plain dicts (the common case) skip the slower ABC checks
        if isinstance(value, Message):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequestError(
                f'a message must be a Message, a dict like {{"role": "user", "content": "..."}} or a string, '
                f"not {type(value).__name__}"
            )
    if "role" not in value:
        raise InvalidRequestError(f"message {dict(value)!r:.100} has no 'role'")
    get = value.get
    name = get("name")
    tool_call_id = get("tool_call_id")
    reasoning = get("reasoning_content")
    if name is not None or tool_call_id is not None or reasoning is not None:
        for key, item in (("name", name), ("tool_call_id", tool_call_id), ("reasoning_content", reasoning)):
            if item is not None and not isinstance(item, str):
                raise InvalidRequestError(f"message {key!r} must be a string, not {type(item).__name__}")
    calls = get("tool_calls")
    if calls:
        if not isinstance(calls, Sequence) or isinstance(calls, str):
            raise InvalidRequestError("message 'tool_calls' must be a list")
        calls = tuple([_structure_tool_call(call, ToolCall) for call in calls])
    return Message(value["role"], get("content"), name, calls or (), tool_call_id, reasoning)


def _count(mapping: Any, key: str) -> int | None:
    item = mapping.get(key) if mapping and isinstance(mapping, Mapping) else None
    return item if isinstance(item, int) else None


def _structure_usage(value: Any, _type: Any = None) -> Usage:
    get = value.get
    prompt = get("prompt_tokens")
    prompt = prompt if isinstance(prompt, int) else 0
    completion = get("completion_tokens")
    completion = completion if isinstance(completion, int) else 0
    total = get("total_tokens")
    return Usage(
        prompt,
        completion,
        total if isinstance(total, int) and total else prompt + completion,
        _count(get("completion_tokens_details"), "reasoning_tokens"),
        _count(get("prompt_tokens_details"), "cached_tokens"),
    )


def _make_converter() -> cattrs.Converter:
    import cattrs

    made = cattrs.Converter()
    made.register_unstructure_hook(Message, _unstructure_message)
    made.register_unstructure_hook(TextPart, _unstructure_part)
    made.register_unstructure_hook(ImagePart, _unstructure_part)
    made.register_unstructure_hook(ToolCall, _unstructure_tool_call)
    made.register_structure_hook(Message, _structure_message)
    made.register_structure_hook(ContentPart, _structure_part)
    made.register_structure_hook(ToolCall, _structure_tool_call)
    made.register_structure_hook(Usage, _structure_usage)
    return made


if TYPE_CHECKING:
    #: The cattrs converter for the wire shape (built on first access: cattrs loads lazily).
    converter: cattrs.Converter


def __getattr__(name: str) -> Any:
    if name == "converter":
        made = globals()["converter"] = _make_converter()
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MessageInput: TypeAlias = str | Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any] | str]


def coerce_messages(messages: MessageInput) -> tuple[Message, ...]:
    """Turn what users pass into messages: a string (one user turn), one message, or a list.

    Strings inside a list are user turns. Raises :class:`InvalidRequestError` for
    an empty list or anything that is not a message.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if type(messages) is not list:  # lists (the common case) skip the slower ABC checks
        if isinstance(messages, Message | Mapping):
            return (_structure_message(messages, Message),)
        if not isinstance(messages, Sequence) or isinstance(messages, bytes | bytearray):
            raise InvalidRequestError(
                f"messages must be a string, a message or a list of messages, not {type(messages).__name__}"
            )
    if not messages:
        raise InvalidRequestError("messages is empty: pass at least one message")
    return tuple([Message("user", item) if isinstance(item, str) else _structure_message(item) for item in messages])
