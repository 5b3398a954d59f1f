"""Value types of the local endpoint: recorded requests, chat turns, scripted replies, faults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

__all__ = ["ChatTurn", "Fault", "RecordedRequest", "Responder", "ScriptedReply", "echo_responder"]

DropMode: TypeAlias = Literal["before_headers", "in_body", "mid_stream"]


@attrs.frozen
class RecordedRequest:
    """One HTTP request as the local endpoint received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  #: header names in lower case; repeated headers joined with ", "
    body: bytes
    json: Any  #: the parsed JSON body, or None when the body is not JSON


@attrs.frozen
class ChatTurn:
    """What a responder sees: the conversation, the generation parameters and the raw request."""

    messages: list[dict[str, Any]]  #: OpenAI-style message dicts
    params: dict[str, Any]  #: other body keys (serverless) or ``parameters`` (dedicated)
    route: Literal["dedicated", "serverless"]
    request: RecordedRequest


@attrs.frozen
class ScriptedReply:
    """A full reply of the model; a responder may return it instead of a plain string."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  #: OpenAI form ``{"id", "type", "function"}``
    reasoning_content: str | None = None
    finish_reason: str | None = None  #: default ``"stop"``, or ``"tool_calls"`` with tool calls
    usage: dict[str, int] | None = None  #: default: whitespace-separated word counts


Responder: TypeAlias = Callable[[ChatTurn], "str | ScriptedReply | Awaitable[str | ScriptedReply]"]

_DROP_MODES = (None, "before_headers", "in_body", "mid_stream")


@attrs.frozen
class Fault:
    """A scripted misbehaviour, consumed by the next matching request(s).

    With ``status`` 200, ``body`` None and no ``drop`` the normal reply is served,
    possibly slowly (``delay_before_headers``, ``delay_between_chunks``) and with
    extra ``headers``. Any other status (or an explicit ``body``) replaces the reply.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    body: Any = None  #: bytes/str as is, other objects JSON-encoded, None: Azure-like error
    content_type: str | None = None
    delay_before_headers: float = 0.0
    delay_between_chunks: float = 0.0
    chunk_size: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    drop: DropMode | None = attrs.field(default=None, validator=attrs.validators.in_(_DROP_MODES))
    stream_error: Any = None  #: sent as ``event: error`` after the first content chunk
    times: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    path: str | None = None  #: only requests to this path consume the fault (None: any)

    @property
    def replaces_reply(self) -> bool:
        """Whether this fault sends its own status/body instead of the normal reply."""
        return self.status != 200 or self.body is not None


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
