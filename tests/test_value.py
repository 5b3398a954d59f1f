"""``Frozen``, the base of the value classes: what ``@attrs.frozen`` used to give them."""

from __future__ import annotations

import copy
import pickle

import pytest

from azml_chat import ChatResponse, ConfigurationError, ImagePart, Message, RetryPolicy, StreamChunk, ToolCall, Usage
from azml_chat._core import parse_reply
from azml_chat.formatters import ChatFormatter

REPLY = ChatResponse(Message("assistant", "hi"), "stop", Usage(1, 2, 3), "m", "id-1", "req-1", 0.5, {"raw": True})


def test_equality_and_hash_by_value() -> None:
    assert Message("user", "a") == Message("user", "a")
    assert Message("user", "a") != Message("user", "b")
    assert hash(Usage(1, 2, 3)) == hash(Usage(1, 2, 3))
    assert len({ToolCall("1", "f"), ToolCall("1", "f"), ToolCall("2", "f")}) == 2
    assert Usage(1, 2, 3) != (1, 2, 3, None, None)  # no equality with other types


def test_immutable() -> None:
    message = Message("user", "a")
    with pytest.raises(AttributeError, match="immutable"):
        message.content = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del message.role  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.extra = 1  # type: ignore[attr-defined]


def test_repr_shows_fields_but_not_raw_payloads() -> None:
    assert repr(Usage(1, 2, 3)) == (
        "Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3, reasoning_tokens=None, cached_tokens=None)"
    )
    assert "raw" not in repr(REPLY)
    assert "raw" not in repr(StreamChunk("x", raw={"secret": 1}))
    assert repr(ImagePart("https://example.com/" + "a" * 100)).endswith("'..., detail=None)")


def test_pickle_and_copy_round_trip() -> None:
    for value in (REPLY, Message("user", [{"type": "text", "text": "a"}]), RetryPolicy(1, 2, 3)):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
        assert copy.copy(value) == value


def test_replace_validates_like_a_new_instance() -> None:
    assert REPLY.__replace__(request_id="req-2").request_id == "req-2"
    assert REPLY.__replace__(request_id="req-2").message is REPLY.message
    with pytest.raises(TypeError, match="no field"):
        REPLY.__replace__(colour="red")
    with pytest.raises(ValueError, match="unknown message role"):
        Message("user", "a").__replace__(role="robot")


def test_pattern_matching() -> None:
    match Message("tool", "42", tool_call_id="c1"):
        case Message(role="tool", content=content, tool_call_id=call_id):
            assert (content, call_id) == ("42", "c1")
        case _:
            pytest.fail("no match")


def test_retry_policy_checks_its_values() -> None:
    assert RetryPolicy().max_backoff == 8.0
    for bad in ({"initial_backoff": -1}, {"max_backoff": float("nan")}, {"max_retry_after": -0.5}):
        with pytest.raises(ConfigurationError, match="must be >= 0"):
            RetryPolicy(**bad)


class _Tagged(ChatResponse):
    __slots__ = ()


class _TaggedFormatter(ChatFormatter):
    def parse_response(self, payload: object) -> ChatResponse:
        return _Tagged(Message("assistant", "custom"))


def test_a_formatters_own_response_class_keeps_its_type() -> None:
    reply = parse_reply(_TaggedFormatter(), b'{"x": 1}', "req-9", 0.25)
    assert type(reply) is _Tagged
    assert (reply.content, reply.request_id, reply.elapsed, reply.raw) == ("custom", "req-9", 0.25, {"x": 1})
