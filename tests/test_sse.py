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


def test_one_whole_data_event_per_read_decodes_as_the_general_path() -> None:
    """A read holding exactly one ``data: ...`` event (what token streams send) skips the line
    splitter; every neighbouring case must still go the general way."""
    reads = [
        b'data: {"a": 1}\n\n',  # the shortcut
        b"event: error\n",  # an event type announced in one read ...
        b'data: {"b": 2}\n\n',  # ... applies to the data of the next: no shortcut
        b"data: x\r\n\r\n",  # CR line ends
        b"data: one\ndata: two\n\n",  # two data lines
        b"data: a\n\ndata: b\n\n",  # two events
        b"data: \n\n",  # empty data
        b"data: [DONE]\n\n",
    ]
    shortcut = SSEDecoder()
    events = [event for read in reads for event in shortcut.feed(read)]
    assert events == SSEDecoder().feed(b"".join(reads))  # the whole body at once: the general path
    assert events[:2] == [ServerSentEvent("message", b'{"a": 1}'), ServerSentEvent("error", b'{"b": 2}')]
    assert not shortcut.pending
    partial = SSEDecoder()
    assert partial.feed(b"data: a") == []  # a partial line first: the next whole-looking read is its end
    assert partial.feed(b"bc\n\n") == [ServerSentEvent("message", b"abc")]
