"""An incremental server-sent-events decoder (no I/O): feed it bytes, get whole events.

Events may be split anywhere across reads; ``\\n``, ``\\r\\n`` and ``\\r`` all end a
line; comment lines (``: ping``) are skipped; ``id`` and ``retry`` fields are ignored.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One event: its type (``message`` unless an ``event:`` field said otherwise) and data."""

    event: str
    data: bytes


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` values, one :meth:`feed` at a time."""

    __slots__ = ("_buffer", "_data", "_event", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = ""
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" belongs to it

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode what ``chunk`` completes; keep any partial line for the next call."""
        if not chunk:
            return []  # before the CR check: an empty read must not forget that a "\r" ended the last one
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        if not chunk:
            return []
        if (  # one whole "data: ..." event per read, as token streams send them: no line splitting
            not self._buffer
            and not self._data
            and not self._event
            and chunk[:6] == b"data: "
            and chunk[-2:] == b"\n\n"
            and chunk.count(b"\n") == 2
            and b"\r" not in chunk
        ):
            return [ServerSentEvent("message", chunk[6:-2])]
        buffer = self._buffer + chunk if self._buffer else chunk
        lines: list[bytes]
        if b"\r" in buffer:
            lines = buffer.splitlines(keepends=True)
            last = lines[-1]
            if last[-1:] not in (b"\n", b"\r"):
                self._buffer = lines.pop()
            else:
                self._buffer = b""
                self._skip_lf = last[-1:] == b"\r"
            lines = [line.rstrip(b"\r\n") for line in lines]
        else:  # only "\n" endings, the usual case: one split, nothing to strip
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()  # what follows the last "\n" (b"" when it ends the chunk)
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(ServerSentEvent(self._event or "message", b"\n".join(data)))
                    data = self._data = []
                self._event = ""
                continue
            if line[:5] == b"data:":  # the common field, without the general parsing below
                data.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            field, colon, value = line.partition(b":")
            if not field:
                continue  # a comment
            if colon and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
        return events

    @property
    def pending(self) -> bool:
        """True if a partial line or an undispatched event is buffered (the stream was cut)."""
        return bool(self._buffer or self._data)
