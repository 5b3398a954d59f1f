"""The attrs message model and its cattrs wire shape."""

from __future__ import annotations

import pytest

from azml_chat import ImagePart, InvalidRequestError, Message, ResponseFormatError, TextPart, ToolCall
from azml_chat.messages import coerce_messages, converter


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
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                      {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}]},
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
    with pytest.raises(AttributeError):
        message.content = "y"  # type: ignore[misc]
