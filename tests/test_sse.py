"""The incremental SSE decoder."""

from __future__ import annotations

from azml_chat._sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": ping\n\n"
    b'data: {"a": 1}\n\n'
    b"event: error\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"id: 7\rretry: 100\rdata:no-space\r\r"
    b"data: [DONE]\n\n"
)
EVENTS = [
    ServerSentEvent("message", b'{"a": 1}'),
    ServerSentEvent("error", b"line one\nline two"),
    ServerSentEvent("message", b"no-space"),
    ServerSentEvent("message", b"[DONE]"),
]


def test_whole_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == EVENTS
    assert not decoder.pending


def test_every_split_point_and_byte_by_byte() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = SSEDecoder()
        assert decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) == EVENTS, cut
    decoder = SSEDecoder()
    events = [event for byte in range(len(STREAM)) for event in decoder.feed(STREAM[byte : byte + 1])]
    assert events == EVENTS


def test_cut_stream_is_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"partial"') == []
    assert decoder.pending
    decoder = SSEDecoder()
    decoder.feed(b"data: x\n")
    assert decoder.pending  # data line seen, blank line missing
