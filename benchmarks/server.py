"""The benchmark's loopback chat server: a bare asyncio HTTP/1.1 keep-alive server.

It answers every request with a fixed, pre-encoded body so that its own cost stays
tiny and constant; it runs in its own process (pinned to its own CPU by run.py):

- ``POST /score``                              -> ``{"output": "..."}`` (dedicated)
- ``POST /v1/chat/completions``                -> a ``chat.completion`` object (serverless)
- the same with ``"stream":true`` in the body  -> SSE, one event per HTTP chunk, ending ``[DONE]``

Usage: ``python benchmarks/server.py [--port 0] [--chunks 64]``; prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

ANSWER = "The quick brown fox jumps over the lazy dog. " * 4


def _response(body: bytes, content_type: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ncontent-length: " + str(len(body)).encode()
    return head + b"\r\nx-request-id: 2b5c0d6e-bench\r\n\r\n" + body


def _chunked_sse(events: list[bytes]) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"x-request-id: 2b5c0d6e-bench\r\n\r\n"
    )
    chunks = [b"%x\r\n%s\r\n" % (len(event), event) for event in events]
    return head + b"".join(chunks) + b"0\r\n\r\n"


def build_replies(chunks: int) -> tuple[bytes, bytes, bytes]:
    """The three fixed replies: chat.completion, dedicated output, SSE stream of ``chunks`` deltas."""
    completion = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
    }
    chat = _response(json.dumps(completion).encode(), b"application/json")
    score = _response(json.dumps({"output": ANSWER}).encode(), b"application/json")

    def event(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": f"word{i} "}) for i in range(chunks)]
    events.append(event({}, "stop"))
    events.append(b"data: [DONE]\n\n")
    return chat, score, _chunked_sse(events)


class _HTTP(asyncio.Protocol):
    """Reads requests (head + content-length body) and writes the fixed reply for each."""

    def __init__(self, replies: tuple[bytes, bytes, bytes]) -> None:
        self.replies = replies
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            chat, score, stream = self.replies
            if head.startswith(b"post /score"):
                reply = score
            elif b'"stream":true' in body or b'"stream": true' in body:
                reply = stream
            else:
                reply = chat
            assert self.transport is not None
            self.transport.write(reply)
        self.buffer = buffer


async def serve(port: int, chunks: int) -> None:
    replies = build_replies(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HTTP(replies), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=64, help="content deltas per streamed reply")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.chunks))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
