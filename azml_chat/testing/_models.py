"""Value types of the local endpoint: recorded requests, chat turns and scripted replies."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeAlias

__all__ = ["ChatTurn", "RecordedRequest", "Responder", "ScriptedReply", "echo_responder", "message_text"]


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


Responder: TypeAlias = Callable[[ChatTurn], "str | ScriptedReply | Awaitable[str | ScriptedReply]"]


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
