"""Faults of the local endpoint: what a fault is, the queue that hands faults to requests,
and how a fault shapes a reply (its status and body, its headers, and how it goes on the wire).

Nothing here does I/O: the server asks ``wire_plan`` what to send and when, then does it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from ._reply import Reply, azure_error, json_bytes, reason_phrase

__all__ = ["DropMode", "Fault", "FaultQueue", "WirePlan", "apply_fault", "fault_reply", "wire_plan"]

DropMode: TypeAlias = Literal["before_headers", "in_body", "mid_stream"]
_DROP_MODES = (None, "before_headers", "in_body", "mid_stream")
#: ``Fault.parse`` options that set a response header
_HEADER_OPTIONS = {
    "retry-after": "retry-after",
    "retry-after-ms": "retry-after-ms",
    "model-status": "ms-azureml-model-error-statuscode",
    "reason": "ms-azureml-model-error-reason",
}
#: ``Fault.parse`` options that set a number: option -> (field, type)
_NUMBER_OPTIONS: dict[str, tuple[str, type]] = {
    "times": ("times", int),
    "slow": ("delay_before_headers", float),
    "trickle": ("delay_between_chunks", float),
    "chunk": ("chunk_size", int),
}


@dataclasses.dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour, consumed by the next matching request(s).

    With ``status`` 200, ``body`` None and no ``drop`` the normal reply is served,
    possibly slowly and with extra ``headers``. Any other status (or an explicit
    ``body``) replaces the reply. Options:

    - ``status``: the HTTP status to answer with (200: the normal reply).
    - ``headers``: extra response headers, e.g. ``{"retry-after": "2"}`` or the 424 pair
      ``ms-azureml-model-error-statuscode`` / ``ms-azureml-model-error-reason``; they win
      over the endpoint's own headers (request ids included).
    - ``body``: bytes and str are sent as they are, other objects JSON-encoded; None with a
      non-200 ``status`` sends an Azure-style ``{"error": {"code", "message"}}`` body.
    - ``content_type``: the ``content-type`` of a replacing body (default JSON).
    - ``delay_before_headers``: seconds to wait before the status line (a slow model).
    - ``delay_between_chunks``: seconds between pieces of ``chunk_size`` bytes of the body
      (a trickling reply; split reads for the client).
    - ``chunk_size``: bytes per piece when ``delay_between_chunks`` is set.
    - ``drop``: close the connection ``"before_headers"``, ``"in_body"`` (half the body
      sent), or ``"mid_stream"`` (a stream: after the first content event; otherwise as
      ``"in_body"``).
    - ``stream_error``: sent as an ``event: error`` SSE event after the first content event
      of a streamed reply, which then ends without ``[DONE]``; non-stream requests ignore it.
    - ``times``: how many matching requests consume this fault.
    - ``path``: only requests to this path consume the fault (None: any but ``GET /``).
    """

    status: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    content_type: str | None = None
    delay_before_headers: float = 0.0
    delay_between_chunks: float = 0.0
    chunk_size: int = 16
    drop: DropMode | None = None
    stream_error: Any = None
    times: int = 1
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", dict(self.headers))
        if self.drop not in _DROP_MODES:
            raise ValueError(f"drop must be one of {_DROP_MODES}, not {self.drop!r}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, not {self.chunk_size!r}")
        if self.times < 1:
            raise ValueError(f"times must be >= 1, not {self.times!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code (100-599), not {self.status!r}")
        for delay in (self.delay_before_headers, self.delay_between_chunks):
            if not (math.isfinite(delay) and delay >= 0):
                raise ValueError(f"delays must be a number of seconds >= 0, not {delay!r}")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """A fault from a one-line description, as ``azml-chat serve --fault`` takes it.

        Comma-separated items: an optional HTTP status first, then ``name=value`` options::

            429,retry-after=2                  429 with retry-after: 2 (seconds)
            429,retry-after-ms=250,times=3     the next three requests, retry-after-ms: 250
            503,path=/score                    only a request to /score consumes it
            424,model-status=503,reason=not ready
                                               a model error: ms-azureml-model-error-statuscode
                                               and ms-azureml-model-error-reason headers
            slow=5                             the normal reply, 5 s before its headers
            trickle=0.05,chunk=8               the normal reply in 8-byte pieces, 50 ms apart
            drop=mid_stream                    close the connection (before_headers, in_body,
                                               mid_stream)
            500,body={"message": "run() failed"}
                                               this body instead of Azure's error body
            stream-error=content filtered      an SSE error event after the first content
            header:x-ms-region=eastus          any extra response header

        Values cannot contain commas. Raises ``ValueError`` naming the item it cannot read.
        """
        options: dict[str, Any] = {}
        headers: dict[str, str] = {}
        items = [item.strip() for item in spec.split(",")]
        if not spec.strip() or not all(items):
            raise ValueError(f"fault {spec!r}: empty item; expected e.g. '429,retry-after=2'")
        if items[0].isdigit():
            options["status"] = int(items.pop(0))
        for item in items:
            name, eq, value = item.partition("=")
            name, value = name.strip().lower(), value.strip()
            if not eq:
                raise ValueError(f"fault {spec!r}: {item!r} is neither a status code nor name=value")
            try:
                if name.startswith("header:") and name[7:]:
                    headers[name[7:]] = value
                elif name in _HEADER_OPTIONS:
                    headers[_HEADER_OPTIONS[name]] = value
                elif name in _NUMBER_OPTIONS:
                    field, kind = _NUMBER_OPTIONS[name]
                    options[field] = kind(value)
                elif name == "drop":
                    options["drop"] = value.replace("-", "_")
                elif name == "path":
                    options["path"] = value
                elif name == "body":
                    options["body"] = value
                elif name == "stream-error":
                    options["stream_error"] = {"error": {"code": "stream_error", "message": value}}
                else:
                    known = sorted([*_HEADER_OPTIONS, *_NUMBER_OPTIONS, "drop", "path", "body", "stream-error"])
                    raise ValueError(f"unknown option {name!r}; known: {', '.join(known)}, header:NAME")
            except ValueError as exc:
                raise ValueError(f"fault {spec!r}: {item!r}: {exc}") from None
        if headers:
            options["headers"] = headers
        try:
            return cls(**options)
        except ValueError as exc:
            raise ValueError(f"fault {spec!r}: {exc}") from None

    @property
    def replaces_reply(self) -> bool:
        """Whether this fault sends its own status/body instead of the normal reply."""
        return self.status != 200 or self.body is not None


class FaultQueue:
    """Queued faults, handed out in order to the requests they match (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[list[Any]] = []  # [fault, remaining uses]

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` for its next ``fault.times`` matching requests."""
        with self._lock:
            self._entries.append([fault, fault.times])

    def take(self, method: str, path: str) -> Fault | None:
        """The first queued fault matching a request (one use consumed), or None.

        ``GET /`` (the liveness probe) never consumes a fault.
        """
        if method == "GET" and path == "/":
            return None
        with self._lock:
            for entry in self._entries:
                fault: Fault = entry[0]
                if fault.path is None or fault.path == path:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._entries.remove(entry)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        """Faults not yet (fully) consumed, in order."""
        with self._lock:
            return [entry[0] for entry in self._entries]

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._entries.clear()


def fault_reply(fault: Fault) -> Reply:
    """The reply a status/body fault sends instead of the normal one."""
    if fault.body is None:
        phrase = reason_phrase(fault.status) or "Error"
        code = phrase.replace(" ", "").replace("-", "")
        reply = azure_error(fault.status, code, f"Simulated {fault.status} {phrase} (fault).")
    elif isinstance(fault.body, bytes):
        reply = Reply(fault.status, fault.body)
    elif isinstance(fault.body, str):
        reply = Reply(fault.status, fault.body.encode())
    else:
        reply = Reply(fault.status, json_bytes(fault.body))
    if fault.content_type is not None:
        reply.content_type = fault.content_type
    if fault.status < 200 or fault.status in (204, 304):
        reply.body = b""
    return reply


def stream_error_event(error: Any) -> bytes:
    """The ``event: error`` SSE event for a fault's ``stream_error``."""
    data = error if isinstance(error, bytes) else (error.encode() if isinstance(error, str) else json_bytes(error))
    return b"event: error\ndata: " + data + b"\n\n"


def apply_fault(reply: Reply, fault: Fault) -> Reply:
    """``reply`` with the fault's stream error and headers applied (changed in place)."""
    if fault.stream_error is not None and reply.events is not None:
        reply.events = [*reply.events[: reply.split], stream_error_event(fault.stream_error)]
    reply.headers.update({name.lower(): value for name, value in fault.headers.items()})
    return reply


@dataclasses.dataclass(frozen=True)
class WirePlan:
    """How a reply goes on the wire: the server carries it out step by step."""

    delay_before_headers: float  #: seconds to wait before anything is sent
    send_head: bool  #: False: close the connection without a status line
    pieces: list[bytes]  #: body pieces, each sent as it is (a chunk of a chunked body)
    gap: float  #: seconds between pieces
    complete: bool  #: False: close the connection after the pieces (the body is cut)


def wire_plan(reply: Reply, fault: Fault | None) -> WirePlan:
    """What to send for ``reply`` under ``fault`` (None: the whole reply at once)."""
    if fault is None:
        pieces = [reply.body] if reply.events is None else list(reply.events)
        return WirePlan(0.0, True, [p for p in pieces if p], 0.0, True)
    drop = fault.drop
    if reply.events is None:
        pieces = [reply.body]
    else:
        pieces = reply.events[: reply.split] if drop == "mid_stream" else list(reply.events)
    if drop == "in_body" or (drop == "mid_stream" and reply.events is None):
        data = b"".join(pieces)
        pieces = [data[: len(data) // 2]]
    if fault.delay_between_chunks > 0:
        data, n = b"".join(pieces), fault.chunk_size
        pieces = [data[i : i + n] for i in range(0, len(data), n)]
    return WirePlan(
        delay_before_headers=fault.delay_before_headers,
        send_head=drop != "before_headers",
        pieces=[p for p in pieces if p],
        gap=fault.delay_between_chunks,
        complete=drop is None,
    )
