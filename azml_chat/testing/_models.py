"""Value types of the local endpoint: recorded requests, chat turns and scripted replies."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

__all__ = [
    "ChatTurn",
    "RecordedRequest",
    "Responder",
    "ScriptedReply",
    "echo_responder",
    "load_replies",
    "message_text",
    "replay_responder",
]


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the local endpoint received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  #: header names in lower case; repeated headers joined with ", "
    body: bytes
    json: Any  #: the parsed JSON body, or None when the body is not JSON


@dataclasses.dataclass(frozen=True)
class ChatTurn:
    """What a responder sees: the conversation, the generation parameters and the raw request.

    - ``messages``: OpenAI-style message dicts (on ``/score``, the chat turns of
      ``input_string``; a text-generation prompt becomes one user message).
    - ``params``: the other body keys (chat-completions routes) or the ``parameters``
      object (``/score``).
    - ``route``: ``"dedicated"`` for ``/score``, ``"serverless"`` for chat-completions routes.
    - ``request``: the whole request, headers and query included.
    """

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    route: Literal["dedicated", "serverless"]
    request: RecordedRequest


@dataclasses.dataclass(frozen=True)
class ScriptedReply:
    """A full reply of the model; a responder may return it instead of a plain string.

    - ``content``: the answer text (None: no text, e.g. with tool calls).
    - ``tool_calls``: OpenAI-form calls ``{"id", "type", "function": {"name", "arguments"}}``;
      a missing ``id`` is generated, dict ``arguments`` are JSON-encoded.
    - ``reasoning_content``: the model's thinking, sent as ``reasoning_content``.
    - ``finish_reason``: default ``"stop"``, or ``"tool_calls"`` when there are tool calls.
    - ``usage``: the ``usage`` object to report; default: whitespace-separated word counts
      of the prompt and of the reply (reasoning included).
    """

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> ScriptedReply:
        """A reply from JSON data: a string (the content) or an object with the fields above.

        Raises ``ValueError`` for unknown keys or values of the wrong type.
        """
        if isinstance(data, str):
            return cls(content=data)
        if not isinstance(data, Mapping):
            raise ValueError(f"a scripted reply is a string or an object, not {type(data).__name__}")
        unknown = sorted(set(data) - _REPLY_FIELDS.keys())
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; a reply takes {sorted(_REPLY_FIELDS)}")
        for key, kind in _REPLY_FIELDS.items():
            value = data.get(key)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{key!r} must be {kind.__name__}, not {type(value).__name__}")
        usage = data.get("usage")
        if usage is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in usage.values()):
            raise ValueError("'usage' values must be integers")
        calls = data.get("tool_calls")
        if calls is not None and not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls):
            raise ValueError("each of 'tool_calls' must be an object with a 'function' object")
        return cls(**{key: data[key] for key in _REPLY_FIELDS if key in data})


_REPLY_FIELDS: dict[str, type] = {
    "content": str,
    "tool_calls": list,
    "reasoning_content": str,
    "finish_reason": str,
    "usage": dict,
}

Responder: TypeAlias = Callable[[ChatTurn], "str | ScriptedReply | Awaitable[str | ScriptedReply]"]


def load_replies(path: str | os.PathLike[str]) -> list[ScriptedReply]:
    """Scripted replies from a JSONL file: one reply a line (see ``ScriptedReply.from_dict``).

    Blank lines are skipped. Raises ``ValueError`` naming the file and line of a bad one.
    """
    replies = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                replies.append(ScriptedReply.from_dict(json.loads(line)))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise ValueError(f"{os.fspath(path)}, line {number}: {exc}") from None
    if not replies:
        raise ValueError(f"{os.fspath(path)}: no replies (one JSON object or string a line)")
    return replies


def replay_responder(replies: Sequence[ScriptedReply]) -> Responder:
    """A responder answering with ``replies`` in order, starting over after the last."""
    if not replies:
        raise ValueError("replay_responder needs at least one reply")
    script = itertools.cycle(list(replies))

    def respond(turn: ChatTurn) -> ScriptedReply:
        return next(script)

    return respond


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: string content, or its text parts concatenated."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def echo_responder(turn: ChatTurn) -> str:
    """Reply with the last user message's text exactly ("" when there is none)."""
    for message in reversed(turn.messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""
