"""The attrs message model and its cattrs wire shape."""

from __future__ import annotations

import copy
import pickle

import attrs
import pytest

from azml_chat import (
    ChatResponse,
    ConfigurationError,
    ImagePart,
    InvalidRequestError,
    Message,
    ModelInfo,
    RateLimit,
    ResponseFormatError,
    RetryPolicy,
    StreamChunk,
    TextPart,
    ToolCall,
    Usage,
)
from azml_chat._core import parse_reply
from azml_chat.formatters import ChatFormatter
from azml_chat.messages import coerce_messages, converter

REPLY = ChatResponse(Message("assistant", "hi"), "stop", Usage(1, 2, 3), "m", "id-1", "req-1", 0.5, {"raw": True})


def test_coerce_inputs() -> None:
    assert coerce_messages("hi") == (Message("user", "hi"),)
    assert coerce_messages({"role": "system", "content": "be brief"}) == (Message("system", "be brief"),)
    mixed = coerce_messages([Message.system("s"), "question", {"role": "assistant", "content": None}])
    assert [m.role for m in mixed] == ["system", "user", "assistant"]


def test_user_input_is_not_mutated() -> None:
    history = [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
    snapshot = repr(history)
    coerce_messages(history)
    assert repr(history) == snapshot


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "empty"),
        (42, "not int"),
        ([{"content": "x"}], "no 'role'"),
        ([{"role": "wizard", "content": "x"}], "unknown message role 'wizard'"),
        ([{"role": "user", "content": 5}], "content must be"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "content parts must look like"),
        ([{"role": "user", "content": "x", "name": 3}], "'name' must be a string"),
        ([{"role": "assistant", "tool_calls": "x"}], "'tool_calls' must be a list"),
        ([{"role": "assistant", "tool_calls": [{"id": "1"}]}], "tool calls must look like"),
        ([3.5], "not float"),
    ],
)
def test_bad_messages(value: object, fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        coerce_messages(value)  # type: ignore[arg-type]


def test_wire_round_trip() -> None:
    messages = [
        Message.user([TextPart("look"), ImagePart("https://x/y.png", "low")]),
        Message.assistant(None, [ToolCall("c1", "lookup", '{"q": 1}')]),
        Message.tool("42", "c1"),
        Message("user", "hi", name="ann"),
    ]
    wire = [converter.unstructure(m) for m in messages]
    assert wire == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    assert [converter.structure(w, Message) for w in wire] == messages


def test_parts_accept_strings_and_url_strings() -> None:
    message = converter.structure(
        {"role": "user", "content": ["plain", {"type": "image_url", "image_url": "https://i"}]}, Message
    )
    assert message.content == (TextPart("plain"), ImagePart("https://i"))
    assert message.text == "plain"
    assert Message("user", TextPart("one")).content == (TextPart("one"),)


def test_tool_call_arguments() -> None:
    assert ToolCall("1", "f", '{"a": [1]}').parsed_arguments() == {"a": [1]}
    assert ToolCall("1", "f", "").parsed_arguments() == {}
    with pytest.raises(ResponseFormatError, match="not valid JSON"):
        ToolCall("1", "f", "{oops").parsed_arguments()
    structured = converter.structure({"function": {"name": "f", "arguments": {"x": 1}}}, ToolCall)
    assert structured.arguments == '{"x":1}'


def test_images_from_bytes_and_path(tmp_path: pytest.TempPathFactory) -> None:
    assert ImagePart.from_bytes(b"\x89PNG").url == "data:image/png;base64,iVBORw=="
    path = tmp_path / "cat.jpg"  # type: ignore[operator]
    path.write_bytes(b"jpeg")
    assert ImagePart.from_path(path).url == "data:image/jpeg;base64,anBlZw=="
    with pytest.raises(InvalidRequestError, match="image type"):
        ImagePart.from_path(tmp_path / "notes.txt")  # type: ignore[operator]


def test_messages_are_frozen() -> None:
    message = Message.user("x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        message.content = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del message.role  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.extra = 1  # type: ignore[attr-defined]


def test_value_classes_are_attrs_classes() -> None:
    for cls in (TextPart, ImagePart, ToolCall, Message, Usage, ChatResponse, StreamChunk, RetryPolicy, ModelInfo):
        assert attrs.has(cls), cls
        assert not hasattr(cls(*_sample_args(cls)), "__dict__"), cls  # slotted
    assert [field.name for field in attrs.fields(Message)] == [
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
        "reasoning_content",
    ]


def _sample_args(cls: type) -> tuple[object, ...]:
    samples: dict[type, tuple[object, ...]] = {
        TextPart: ("t",),
        ImagePart: ("https://i",),
        ToolCall: ("1", "f"),
        Message: ("user",),
        ChatResponse: (Message("assistant"),),
        ModelInfo: (None, None, None),
    }
    return samples.get(cls, ())


def test_evolve_and_asdict() -> None:
    changed = attrs.evolve(REPLY, request_id="req-2")
    assert (changed.request_id, REPLY.request_id) == ("req-2", "req-1")
    assert changed.message is REPLY.message
    as_dict = attrs.asdict(REPLY)
    assert as_dict.pop("headers") is None
    assert as_dict.pop("choices") == (
        {"index": 0, "message": as_dict["message"], "finish_reason": "stop", "logprobs": None},
    )
    assert as_dict == {
        "message": {
            "role": "assistant",
            "content": "hi",
            "name": None,
            "tool_calls": (),
            "tool_call_id": None,
            "reasoning_content": None,
        },
        "finish_reason": "stop",
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "reasoning_tokens": None,
            "cached_tokens": None,
        },
        "model": "m",
        "id": "id-1",
        "request_id": "req-1",
        "elapsed": 0.5,
        "raw": {"raw": True},
    }
    evolved = attrs.evolve(Message("user", "a"), content=[{"type": "text", "text": "b"}])
    assert evolved.content == (TextPart("b"),)  # the converter runs again
    with pytest.raises(InvalidRequestError, match="unknown message role 'robot'"):
        attrs.evolve(Message("user", "a"), role="robot")  # and so do the validators
    with pytest.raises(TypeError):
        attrs.evolve(REPLY, colour="red")


def test_equality_and_hash_by_value() -> None:
    assert Message("user", ["a"]) == Message("user", (TextPart("a"),))
    assert Message("user", "a") != Message("user", "b")
    assert hash(Usage(1, 2, 3)) == hash(Usage(1, 2, 3))
    assert len({ToolCall("1", "f"), ToolCall("1", "f"), ToolCall("2", "f")}) == 2
    assert Usage(1, 2, 3) != (1, 2, 3, None, None)  # no equality with other types


def test_repr_shows_fields_but_not_raw_payloads() -> None:
    assert repr(Usage(1, 2, 3)) == (
        "Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3, reasoning_tokens=None, cached_tokens=None)"
    )
    assert "raw" not in repr(REPLY)
    assert "secret" not in repr(StreamChunk("x", raw={"secret": 1}))
    assert "secret" not in repr(ModelInfo("m", None, None, {"secret": 1}))
    assert repr(ImagePart("https://example.com/" + "a" * 100)) == (
        f"ImagePart(url={('https://example.com/' + 'a' * 40)!r}..., detail=None)"
    )
    assert repr(ImagePart("https://i", "low")) == "ImagePart(url='https://i', detail='low')"


def test_pickle_and_copy_round_trip() -> None:
    for value in (REPLY, Message("user", [{"type": "text", "text": "a"}]), RetryPolicy(1, 2, 3)):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
        assert copy.copy(value) == value


def test_pattern_matching() -> None:
    match Message("tool", "42", tool_call_id="c1"):
        case Message(role="tool", content=content, tool_call_id=call_id):
            assert (content, call_id) == ("42", "c1")
        case _:
            pytest.fail("no match")


def test_field_checks() -> None:
    with pytest.raises(TypeError, match="TextPart text must be a str, not int"):
        TextPart(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="image detail must be"):
        ImagePart("https://i", "huge")  # type: ignore[arg-type]
    assert Message("assistant", tool_calls=[ToolCall("1", "f")]).tool_calls == (ToolCall("1", "f"),)
    assert RetryPolicy().max_backoff == 8.0
    for bad in ({"initial_backoff": -1}, {"max_backoff": float("nan")}, {"max_retry_after": -0.5}):
        with pytest.raises(ConfigurationError, match="must be >= 0"):
            RetryPolicy(**bad)
    with pytest.raises(ConfigurationError, match="max_backoff must be >= 0"):
        attrs.evolve(RetryPolicy(), max_backoff=-1)


def test_converter_unstructures_a_whole_reply() -> None:
    wire = converter.unstructure(REPLY)
    assert wire["message"] == {"role": "assistant", "content": "hi"}  # the Message hook, not field by field
    assert wire["usage"]["total_tokens"] == 3
    assert wire["raw"] == {"raw": True}


class _Tagged(ChatResponse):
    __slots__ = ()


class _TaggedFormatter(ChatFormatter):
    def parse_response(self, payload: object) -> ChatResponse:
        return _Tagged(Message("assistant", "custom"))


def test_a_formatters_own_response_class_keeps_its_type() -> None:
    reply = parse_reply(_TaggedFormatter(), b'{"x": 1}', "req-9", 0.25)
    assert type(reply) is _Tagged
    assert (reply.content, reply.request_id, reply.elapsed, reply.raw) == ("custom", "req-9", 0.25, {"x": 1})


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # milliseconds first, as the retries read them
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # an HTTP date, long past
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"x-ratelimit-limit-requests": "100"}, None),
        (None, None),
    ],
)
def test_rate_limit_reads_retry_after_as_the_retries_do(
    headers: dict[str, str] | None, retry_after: float | None
) -> None:
    assert RateLimit.from_headers(headers).retry_after == retry_after
