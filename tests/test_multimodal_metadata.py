"""Image content parts (URL, bytes, file) on the wire, and the metadata every response carries
(usage, model, id, finish_reason, request id, elapsed time, raw JSON), for both clients."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from support import chat, mode_param, stream

from azml_chat import ImagePart, InvalidRequestError, Message, TextPart, Usage
from azml_chat.testing import Fault, LocalEndpoint, ScriptedReply

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image bytes"


def image_parts(endpoint: LocalEndpoint) -> list[dict[str, Any]]:
    content = endpoint.requests[-1].json["messages"][-1]["content"]
    return [part for part in content if part["type"] == "image_url"]


@mode_param
def test_images_by_url_bytes_and_path(endpoint: LocalEndpoint, mode: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpeg"
    photo.write_bytes(b"\xff\xd8\xff jpeg bytes")
    message = Message.user(
        [
            "What is in these images?",
            ImagePart("https://example.com/cat.png", detail="low"),
            ImagePart.from_bytes(PNG),
            ImagePart.from_path(photo, detail="high"),
        ]
    )
    reply = chat(mode, endpoint.url, [message])
    assert reply.content == "What is in these images?"  # the echo model reads the text parts only
    first, second, third = image_parts(endpoint)
    assert first == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    prefix, _, data = second["image_url"]["url"].partition(",")
    assert (prefix, base64.b64decode(data)) == ("data:image/png;base64", PNG)
    assert "detail" not in second["image_url"]
    prefix, _, data = third["image_url"]["url"].partition(",")
    assert (prefix, base64.b64decode(data), third["image_url"]["detail"]) == (
        "data:image/jpeg;base64",
        b"\xff\xd8\xff jpeg bytes",
        "high",
    )


@mode_param
def test_image_parts_given_as_dicts_and_streamed(endpoint: LocalEndpoint, mode: str) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}},
        ],
    }
    _chunks, reply = stream(mode, endpoint.url, [message])
    assert reply is not None
    assert reply.content == "describe"
    assert image_parts(endpoint) == [{"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}}]
    assert endpoint.requests[-1].json["messages"][-1]["content"][0] == {"type": "text", "text": "describe"}
    assert message["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}}


def test_bad_images_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot read image"):
        ImagePart.from_path(tmp_path / "missing.png")
    with pytest.raises(InvalidRequestError, match="image type"):
        ImagePart.from_path(tmp_path / "notes.txt")
    with pytest.raises(InvalidRequestError, match="must be bytes"):
        ImagePart.from_bytes("not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="mime_type"):
        ImagePart.from_bytes(PNG, "text/plain")
    with pytest.raises(InvalidRequestError, match="must start with https://"):
        ImagePart("/home/me/cat.png")
    with pytest.raises(InvalidRequestError, match="detail"):
        ImagePart("https://x/y.png", detail="ultra")  # type: ignore[arg-type]
    long = ImagePart.from_bytes(PNG * 100)
    assert len(repr(long)) < 150  # a base64 image does not flood logs and tracebacks
    assert Message.user([TextPart("a"), long]).text == "a"


# --- metadata ---------------------------------------------------------------------------------------


@mode_param
def test_chat_response_metadata(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(headers={"x-request-id": "req-123"}, delay_before_headers=0.05))
    reply = chat(mode, endpoint.url, "four words right here")
    assert reply.usage == Usage(prompt_tokens=4, completion_tokens=4, total_tokens=8)
    assert reply.model == "local-model"
    assert reply.id is not None
    assert reply.id.startswith("chatcmpl-")
    assert reply.finish_reason == "stop"
    assert reply.request_id == "req-123"
    assert reply.elapsed is not None
    assert 0.05 <= reply.elapsed < 5
    assert reply.raw["object"] == "chat.completion"
    assert reply.raw["id"] == reply.id
    assert reply.raw["choices"][0]["message"]["content"] == "four words right here"


@mode_param
def test_usage_details_and_unknown_fields_are_kept(endpoint: LocalEndpoint, mode: str) -> None:
    body = {
        "id": "cmpl-9",
        "model": "DeepSeek-R1",
        "vendor_extra": {"kept": True},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "completion_tokens_details": {"reasoning_tokens": 3},
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }
    endpoint.add_fault(Fault(body=body))
    reply = chat(mode, endpoint.url, "x")
    assert reply.usage == Usage(5, 7, 12, reasoning_tokens=3, cached_tokens=2)
    assert (reply.model, reply.id, reply.finish_reason) == ("DeepSeek-R1", "cmpl-9", "length")
    assert reply.raw == body


@mode_param
def test_streamed_response_metadata(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(headers={"x-request-id": "req-stream"}))
    chunks, reply = stream(mode, endpoint.url, "two words", stream_options={"include_usage": True})
    assert reply is not None
    assert reply.usage == Usage(2, 2, 4)
    assert reply.model == "local-model"
    assert reply.id is not None
    assert reply.id == chunks[-1].raw["id"]
    assert reply.finish_reason == "stop"
    assert reply.request_id == "req-stream"
    assert reply.elapsed is not None
    assert reply.elapsed > 0
    assert reply.raw == chunks[-1].raw  # the last chunk as received


@mode_param
def test_dedicated_response_metadata(dedicated: LocalEndpoint, mode: str) -> None:
    reply = chat(mode, dedicated.url, "plain output")
    assert reply.raw == {"output": "plain output"}
    assert reply.request_id is not None
    assert reply.elapsed is not None
    assert reply.elapsed > 0
    assert (reply.usage, reply.model, reply.id, reply.finish_reason) == (None, None, None, None)


@mode_param
def test_tool_only_reply_has_null_content(mode: str) -> None:
    calls = [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]
    with LocalEndpoint(api_key="test-key", responder=lambda turn: ScriptedReply(tool_calls=calls)) as endpoint:
        reply = chat(mode, endpoint.url, "x")
    assert reply.raw["choices"][0]["message"]["content"] is None
    assert reply.message.content is None
    assert reply.content == ""
    assert reply.finish_reason == "tool_calls"
