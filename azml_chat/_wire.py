"""The OpenAI chat-completions wire shape, both ways, and the coercion of user input.

``message_to_wire`` writes ``{"role", "content", "tool_calls", "tool_call_id", ...}``;
``message_from_wire`` and :func:`coerce_messages` read it (and what users pass) back
into :mod:`azml_chat.messages` values, validating as they go; :func:`parse_chat_completion`
reads a ``chat.completion`` reply. The cattrs ``converter`` registers these same hooks and
loads on first use; the SDK's hot path calls the functions directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._json import dumps
from .errors import InvalidRequestError, ModelError, ResponseFormatError
from .messages import (
    ROLES,
    ChatResponse,
    Choice,
    ContentPart,
    ImagePart,
    Message,
    MessageInput,
    TextPart,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
    content_part,
    tool_call,
)

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "coerce_messages",
    "converter",
    "error_of_payload",
    "excerpt_of",
    "logprobs_from_wire",
    "message_from_wire",
    "message_to_wire",
    "parse_chat_completion",
    "plain_wire_messages",
    "raise_error_body",
    "split_think",
    "usage_from_wire",
    "usage_to_wire",
]


# --- out -------------------------------------------------------------------------------


def part_to_wire(part: ContentPart) -> dict[str, Any]:
    """A content part in the wire shape."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def tool_call_to_wire(call: ToolCall) -> dict[str, Any]:
    """A tool call in the wire shape."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def message_to_wire(message: Message) -> dict[str, Any]:
    """A message in the wire shape (``reasoning_content`` is not sent back)."""
    content = message.content
    wire: dict[str, Any] = {
        "role": message.role,
        "content": content if content is None or isinstance(content, str) else [part_to_wire(p) for p in content],
    }
    if message.name is not None:
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [tool_call_to_wire(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


# --- in --------------------------------------------------------------------------------


def message_from_wire(value: Any, _type: Any = None) -> Message:
    """A :class:`Message` from one or from a wire-shaped dict; :class:`InvalidRequestError` otherwise."""
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
        calls = tuple([tool_call(call) for call in calls])
    return Message(value["role"], get("content"), name, calls or (), tool_call_id, reasoning)


def _count(mapping: Any, key: str) -> int | None:
    item = mapping.get(key) if mapping and isinstance(mapping, Mapping) else None
    return item if isinstance(item, int) else None


def usage_from_wire(value: Any, _type: Any = None) -> Usage:
    """Token counts from a ``usage`` object (missing counts are 0; total defaults to the sum)."""
    get = value.get
    prompt = get("prompt_tokens")
    prompt = prompt if isinstance(prompt, int) else 0
    completion = get("completion_tokens")
    completion = completion if isinstance(completion, int) else 0
    total = get("total_tokens")
    completion_details = get("completion_tokens_details")
    prompt_details = get("prompt_tokens_details")
    return Usage(
        prompt,
        completion,
        total if isinstance(total, int) and total else prompt + completion,
        _count(completion_details, "reasoning_tokens") if completion_details else None,
        _count(prompt_details, "cached_tokens") if prompt_details else None,
    )


def usage_to_wire(usage: Usage | None) -> dict[str, int] | None:
    """Token counts in the OpenAI ``usage`` shape (``None`` stays ``None``)."""
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def coerce_messages(messages: MessageInput) -> tuple[Message, ...]:
    """Turn what users pass into messages: a string (one user turn), one message, or a list.

    Strings inside a list are user turns. Raises :class:`InvalidRequestError` for
    an empty list or anything that is not a message.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if type(messages) is not list:  # lists (the common case) skip the slower ABC checks
        if isinstance(messages, Message | Mapping):
            return (message_from_wire(messages),)
        if not isinstance(messages, Sequence) or isinstance(messages, bytes | bytearray):
            raise InvalidRequestError(
                f"messages must be a string, a message or a list of messages, not {type(messages).__name__}"
            )
    if not messages:
        raise InvalidRequestError("messages is empty: pass at least one message")
    return tuple([Message("user", item) if isinstance(item, str) else message_from_wire(item) for item in messages])


def plain_wire_messages(messages: Any) -> list[dict[str, Any]] | None:
    """The wire form of the usual input, made without :class:`Message` values: a string, or a
    list of strings and plain ``{"role": ..., "content": "..."}`` dicts whose role is valid
    (exactly what :func:`coerce_messages` would accept and send unchanged). ``None`` for
    anything else, which then goes through :func:`coerce_messages`. The dicts are new ones.
    """
    if type(messages) is str:
        return [{"role": "user", "content": messages}]
    if type(messages) is not list or not messages:
        return None
    wire = []
    for item in messages:
        kind = type(item)
        if kind is dict:
            if len(item) != 2:
                return None
            role = item.get("role")
            content = item.get("content")
            if type(content) is not str or type(role) is not str or role not in ROLES:
                return None
            wire.append({"role": role, "content": content})
        elif kind is str:
            wire.append({"role": "user", "content": item})
        else:
            return None
    return wire


def _make_converter() -> cattrs.Converter:
    import cattrs

    made = cattrs.Converter()
    made.register_unstructure_hook(Message, message_to_wire)
    made.register_unstructure_hook(TextPart, part_to_wire)
    made.register_unstructure_hook(ImagePart, part_to_wire)
    made.register_unstructure_hook(ToolCall, tool_call_to_wire)
    made.register_structure_hook(Message, message_from_wire)
    made.register_structure_hook(ContentPart, lambda value, _type: content_part(value))
    made.register_structure_hook(ToolCall, lambda value, _type: tool_call(value))
    made.register_structure_hook(Usage, usage_from_wire)
    return made


if TYPE_CHECKING:
    #: The cattrs converter for the wire shape (built on first access: cattrs loads lazily).
    converter: cattrs.Converter


def __getattr__(name: str) -> Any:
    if name == "converter":
        made = globals()["converter"] = _make_converter()
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- replies ---------------------------------------------------------------------------


def excerpt_of(payload: Any) -> str:
    """The start of a decoded reply, for error messages."""
    try:
        return dumps(payload).decode()[:200]
    except Exception:
        return repr(payload)[:200]


def error_of_payload(payload: Any) -> tuple[str, str | None] | None:
    """The (message, code) of an error body, or ``None`` if ``payload`` is no error body.

    Knows ``{"error": {"code", "message"}}``, ``{"error": "..."}``, ``{"detail": "..."}``,
    pydantic-style ``{"detail": [{"loc", "msg"}]}`` and ``{"message": "..."}``.
    """
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("msg") or excerpt_of(error)
        code = error.get("code")
        return str(message), (str(code) if code is not None else None)
    if isinstance(error, str) and error:
        return error, None
    detail = payload.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                location = ".".join(str(part) for part in item.get("loc", ()))
                parts.append(f"{location}: {item.get('msg', '')}" if location else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts), None
    message = payload.get("message")
    if isinstance(message, str) and set(payload) <= {"message", "code", "status"}:
        return message, None
    return None


def raise_error_body(payload: Any) -> None:
    """Raise :class:`ModelError` when a 200 reply is an error body (``{"error": ...}``, ``{}``)."""
    found = error_of_payload(payload)
    if found is not None:
        raise ModelError(
            f"the endpoint answered 200 with an error: {found[0]}", status_code=200, body=payload, code=found[1]
        )
    if payload == {} or payload is None:
        raise ModelError("the endpoint answered 200 with an empty body", status_code=200, body=payload)


def split_think(content: str) -> tuple[str, str | None]:
    """``(answer, reasoning)`` from text that may open with ``<think>...</think>``."""
    stripped = content.lstrip()
    if stripped.startswith("<think>") and "</think>" in stripped:
        thinking, _, answer = stripped[len("<think>") :].partition("</think>")
        return answer.lstrip(), thinking.strip()
    return content, None


def _without_think(message: Message) -> Message:
    content = message.content
    if isinstance(content, str) and message.reasoning_content is None and "<think>" in content:
        answer, reasoning = split_think(content)
        if reasoning is not None:
            return Message(message.role, answer, message.name, message.tool_calls, None, reasoning or None)
    return message


def logprobs_from_wire(value: Any) -> tuple[TokenLogprob, ...] | None:
    """Token logprobs of a choice (``{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}``)."""
    items = value.get("content") if isinstance(value, Mapping) else None
    if not isinstance(items, list):
        return None
    tokens = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("token"), str):
            continue  # an entry we cannot read is skipped; raw keeps it
        top = tuple(
            TopLogprob(alt["token"], float(alt.get("logprob") or 0.0), _bytes(alt.get("bytes")))
            for alt in item.get("top_logprobs") or ()
            if isinstance(alt, Mapping) and isinstance(alt.get("token"), str)
        )
        tokens.append(TokenLogprob(item["token"], float(item.get("logprob") or 0.0), _bytes(item.get("bytes")), top))
    return tuple(tokens)


def _bytes(value: Any) -> tuple[int, ...] | None:
    return tuple(value) if isinstance(value, list) and all(isinstance(b, int) for b in value) else None


def _choice(choice: Any, position: int, payload: Any) -> Choice:
    if not (type(choice) is dict or isinstance(choice, Mapping)):
        raise ResponseFormatError(f"choice {position} is not an object", excerpt=excerpt_of(payload))
    wire = choice.get("message")
    if not (type(wire) is dict or isinstance(wire, Mapping)):
        text = choice.get("text")  # completions-style choice
        if not isinstance(text, str):
            raise ResponseFormatError(f"choice {position} has no message", excerpt=excerpt_of(payload))
        wire = {"role": "assistant", "content": text}
    elif not wire.get("role"):
        wire = {**wire, "role": "assistant"}
    try:
        message = message_from_wire(wire)
    except ValueError as exc:
        raise ResponseFormatError(f"the reply message is malformed: {exc}", excerpt=excerpt_of(payload)) from None
    index = choice.get("index")
    logprobs = choice.get("logprobs")
    return Choice(
        index if isinstance(index, int) else position,
        _without_think(message),
        choice.get("finish_reason"),
        logprobs_from_wire(logprobs) if logprobs else None,
    )


def parse_chat_completion(
    payload: Any, request_id: str | None = None, elapsed: float | None = None, headers: Any = None
) -> ChatResponse:
    """Parse an OpenAI ``chat.completion`` object (serverless, Foundry, Azure OpenAI, vLLM).

    With ``elapsed`` the reply carries the call's metadata (and ``payload`` as ``raw``) at once,
    rather than in a copy made afterwards.
    """
    # ``type(x) is dict`` first: decoded JSON is plain dicts, and the Mapping ABC check is slow.
    if not (type(payload) is dict or isinstance(payload, Mapping)) or not isinstance(payload.get("choices"), list):
        raise_error_body(payload)
        raise ResponseFormatError("expected a chat.completion object with 'choices'", excerpt=excerpt_of(payload))
    items = payload["choices"]
    if not items:
        raise ResponseFormatError("the reply has no choices", excerpt=excerpt_of(payload))
    if len(items) == 1:  # the usual single choice, without a generator
        choices: tuple[Choice, ...] = (_choice(items[0], 0, payload),)
        first = choices[0]
    else:
        choices = tuple(_choice(choice, position, payload) for position, choice in enumerate(items))
        first = min(choices, key=lambda choice: choice.index)
    usage = payload.get("usage")
    model = payload.get("model")
    reply_id = payload.get("id")
    return ChatResponse(
        first.message,
        first.finish_reason,
        usage_from_wire(usage) if type(usage) is dict or isinstance(usage, Mapping) else None,
        model if isinstance(model, str) else None,
        reply_id if isinstance(reply_id, str) else None,
        request_id,
        elapsed,
        None if elapsed is None else payload,
        choices,
        headers,
    )
