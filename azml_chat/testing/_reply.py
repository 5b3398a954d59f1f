"""A reply of the local endpoint before it goes on the wire, and the error shapes Azure sends."""

from __future__ import annotations

import dataclasses
import http
import json
from collections.abc import Callable
from typing import Any

__all__ = ["HTTPError", "Reply", "azure_error", "json_bytes", "json_reply", "openai_error", "reason_phrase"]


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclasses.dataclass(slots=True)
class Reply:
    """A response before it is put on the wire; ``events`` makes it an SSE stream."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    events: list[bytes] | None = None
    split: int = 0  #: events before this index go out before a stream error / mid-stream drop
    on_sent: Callable[[], None] | None = None  #: called once the reply is sent or abandoned


class HTTPError(Exception):
    """Raised by handlers to answer with an error reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def json_reply(status: int, obj: Any, **headers: str) -> Reply:
    """A JSON reply; keyword names become header names with ``_`` read as ``-``."""
    return Reply(status, json_bytes(obj), headers={k.replace("_", "-"): v for k, v in headers.items()})


def azure_error(status: int, code: str, message: str) -> Reply:
    """An Azure AI inference API style error: ``{"error": {"code", "message"}}`` and ``x-ms-error-code``."""
    return json_reply(status, {"error": {"code": code, "message": message}}, x_ms_error_code=code)


def openai_error(status: int, message: str, *, code: str, param: str | None = None) -> Reply:
    """An OpenAI-style error, as Azure OpenAI and the ``/openai/v1`` routes send it.

    ``{"error": {"code", "message", "param", "type"}}``, with ``x-ms-error-code``.
    """
    error = {"code": code, "message": message, "param": param, "type": "invalid_request_error"}
    return json_reply(status, {"error": error}, x_ms_error_code=code)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code ("" if unknown)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
