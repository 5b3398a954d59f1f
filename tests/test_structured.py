"""Structured output: response_format values, parsing replies into attrs classes (success and
every kind of failure), and chat_structured over HTTP with both clients in every schema style
(attrs, dataclass, TypedDict, pydantic, typing annotations). Socket-free tests of each style
are in test_schema_styles.py."""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import attrs
import pytest
from schema_styles import Invoice, LineItem, Movie, Priority, Task, assert_strict, needs_pydantic, pydantic
from support import API_KEY, mode_param, with_client

from azml_chat import (
    ChatResponse,
    InvalidRequestError,
    Message,
    ResponseFormatError,
    StructuredOutputError,
    json_schema,
    parse_structured,
    response_format_for,
)
from azml_chat.structured import structure_value
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply


class Sky(enum.Enum):
    CLEAR = "clear"
    CLOUDY = "cloudy"


@attrs.frozen
class Reading:
    hour: int
    celsius: float


@attrs.frozen
class Forecast:
    """A weather forecast."""

    city: str
    sky: Sky
    readings: list[Reading]
    windy: bool
    tags: dict[str, str] = attrs.field(factory=dict)
    note: str | None = attrs.field(default=None, metadata={"description": "anything else"})
    level: Literal["low", "high"] = "low"


GOOD = {
    "city": "Oslo",
    "sky": "cloudy",
    "readings": [{"hour": 9, "celsius": 3}, {"hour": 12, "celsius": 5.5}],
    "windy": False,
    "tags": {"source": "met"},
    "note": None,
    "level": "high",
}
EXPECTED = Forecast("Oslo", Sky.CLOUDY, [Reading(9, 3.0), Reading(12, 5.5)], False, {"source": "met"}, None, "high")


def test_response_format_for_a_class_strict_mode_cannot_take() -> None:
    fmt = response_format_for(Forecast)
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert (spec["name"], spec["strict"]) == ("Forecast", False)  # tags: dict[str, str] has free-form keys
    schema = spec["schema"]
    assert schema == json_schema(Forecast)
    assert schema["required"] == ["city", "sky", "readings", "windy"]
    assert schema["additionalProperties"] is False
    assert schema["description"] == "A weather forecast."
    assert schema["properties"]["sky"] == {"type": "string", "enum": ["clear", "cloudy"]}
    assert schema["properties"]["note"] == {"type": ["string", "null"], "description": "anything else", "default": None}
    assert schema["properties"]["level"] == {"type": "string", "enum": ["low", "high"], "default": "low"}
    assert schema["properties"]["readings"]["items"] == {
        "type": "object",
        "properties": {"hour": {"type": "integer"}, "celsius": {"type": "number"}},
        "required": ["hour", "celsius"],
        "additionalProperties": False,
    }
    with pytest.raises(InvalidRequestError, match=r"Forecast cannot be described in strict mode: \$\.tags: an object"):
        response_format_for(Forecast, strict=True)
    assert response_format_for(Reading, name="r-1", strict=False)["json_schema"]["name"] == "r-1"


@attrs.frozen
class Outlook:
    """A weather outlook."""

    city: str
    sky: Sky
    readings: list[Reading]
    note: str | None = attrs.field(default=None, metadata={"description": "anything else"})
    level: Literal["low", "high"] = "low"


def test_response_format_for_is_a_strict_json_schema() -> None:
    spec = response_format_for(Outlook)["json_schema"]
    assert (spec["name"], spec["strict"]) == ("Outlook", True)
    schema = spec["schema"]
    assert_strict(schema)
    assert schema["required"] == ["city", "sky", "readings", "note", "level"]  # strict: all
    assert schema["properties"]["note"] == {"type": ["string", "null"], "description": "anything else"}
    assert schema["properties"]["level"] == {"type": ["string", "null"], "enum": ["low", "high", None]}
    assert "default" not in json.dumps(schema)  # strict mode takes no defaults
    assert json_schema(Outlook, strict=True) == schema
    reply = {"city": "Oslo", "sky": "clear", "readings": [], "note": None, "level": None}
    assert parse_structured(json.dumps(reply), Outlook) == Outlook("Oslo", Sky.CLEAR, [])  # null: the default


@attrs.frozen
class Node:
    value: int
    children: list[Node]


def test_a_big_integer_the_model_wrote_stays_exact() -> None:
    big = 123456789012345678901234567890  # beyond 64 bits: no float rounding on the way
    assert parse_structured(f'{{"value": {big}, "children": []}}', Node) == Node(big, [])


def test_response_format_for_rejects_what_it_cannot_describe() -> None:
    @attrs.frozen
    class Local:
        inner: Reading | Unresolvable  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(InvalidRequestError, match="1-64"):
        response_format_for(Reading, name="bad name!")
    with pytest.raises(InvalidRequestError, match=r"cannot resolve the type annotations of .*Local"):
        response_format_for(Local)
    with pytest.raises(InvalidRequestError, match="JSON object keys are strings"):
        json_schema(dict[int, str])
    with pytest.raises(InvalidRequestError, match="cannot describe <class 'bytes'>"):
        response_format_for(bytes)
    node = response_format_for(Node)["json_schema"]["schema"]  # recursion is fine: $defs
    assert node["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_parse_structured_success_from_text_and_response() -> None:
    assert parse_structured(json.dumps(GOOD), Forecast) == EXPECTED
    fenced = "```json\n" + json.dumps(GOOD, indent=2) + "\n```"
    assert parse_structured(ChatResponse(Message.assistant(fenced)), Forecast) == EXPECTED
    minimal = {"city": "Oslo", "sky": "clear", "readings": [], "windy": True, "unknown": "ignored"}
    assert parse_structured(json.dumps(minimal), Forecast) == Forecast("Oslo", Sky.CLEAR, [], True)
    assert structure_value([1, 2.0], tuple[int, ...]) == (1, 2)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"city": 5}, r"\$\.city: expected string, got 5"),
        ({"sky": "foggy"}, r"\$\.sky: expected one of \[\"clear\",\"cloudy\"\], got \"foggy\""),
        ({"readings": [{"hour": "9", "celsius": 1}]}, r"\$\.readings\[0\]\.hour: expected integer, got \"9\""),
        ({"readings": [{"hour": 9.5, "celsius": 1}]}, r"\$\.readings\[0\]\.hour: expected integer, got 9\.5"),
        ({"readings": "[]"}, r"\$\.readings: expected array"),
        ({"windy": "yes"}, r"\$\.windy: expected boolean"),
        ({"windy": 1}, r"\$\.windy: expected boolean"),
        ({"tags": {"a": 1}}, r"\$\.tags\.a: expected string"),
        ({"level": "medium"}, r"\$\.level: expected one of"),
        ({"city": None}, r"\$\.city: expected string, got null"),
    ],
)
def test_parse_structured_reports_where_the_reply_does_not_fit(changes: dict[str, Any], fragment: str) -> None:
    text = json.dumps({**GOOD, **changes})
    with pytest.raises(StructuredOutputError, match=fragment) as caught:
        parse_structured(text, Forecast)
    assert caught.value.text == text
    assert "does not fit Forecast" in str(caught.value)


def test_parse_structured_failures_carry_the_offending_text() -> None:
    with pytest.raises(StructuredOutputError, match="not valid JSON for Forecast") as caught:
        parse_structured("Sure! Here is the forecast: sunny.", Forecast)
    assert caught.value.text == "Sure! Here is the forecast: sunny."
    assert isinstance(caught.value, ResponseFormatError)
    with pytest.raises(StructuredOutputError, match=r"missing key 'city'.*missing key 'sky'"):
        parse_structured("{}", Forecast)
    with pytest.raises(StructuredOutputError, match="expected object, got"):
        parse_structured("[1, 2]", Forecast)
    with pytest.raises(StructuredOutputError, match="empty"):
        parse_structured("  ", Forecast)
    cut = ChatResponse(Message.assistant('{"city": "Os'), finish_reason="length", request_id="rid-7")
    with pytest.raises(StructuredOutputError, match=r"cut off.*max_tokens") as caught:
        parse_structured(cut, Forecast)
    assert caught.value.request_id == "rid-7"
    assert caught.value.text == '{"city": "Os'
    with pytest.raises(InvalidRequestError, match="ChatResponse or a string"):
        parse_structured(b"{}", Forecast)  # type: ignore[arg-type]


def test_attrs_validators_count_as_misfits() -> None:
    @attrs.frozen
    class Percent:
        value: int = attrs.field(validator=attrs.validators.le(100))

    assert parse_structured('{"value": 50}', Percent) == Percent(50)
    with pytest.raises(StructuredOutputError, match=r"does not fit .*Percent"):
        parse_structured('{"value": 150}', Percent)


# --- over HTTP ------------------------------------------------------------------------------------


def json_model(turn: ChatTurn) -> str | ScriptedReply:
    """A scripted model that follows response_format: a forecast, or broken JSON when asked."""
    text = turn.messages[-1]["content"]
    if text == "broken":
        return '{"city": "Oslo", "sky": "stormy"'
    if text == "misfit":
        return json.dumps({**GOOD, "windy": "very"})
    fmt = turn.params.get("response_format")
    assert fmt is not None
    assert fmt["type"] in ("json_schema", "json_object")
    return json.dumps(GOOD)


@pytest.fixture
def json_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(api_key=API_KEY, responder=json_model) as endpoint:
        yield endpoint


@mode_param
def test_chat_structured_success(json_endpoint: LocalEndpoint, mode: str) -> None:
    forecast = with_client(
        mode,
        json_endpoint.url,
        lambda c: c.chat_structured("Forecast for Oslo?", Forecast, temperature=0),
        lambda c: c.chat_structured("Forecast for Oslo?", Forecast, temperature=0),
    )
    assert forecast == EXPECTED
    body = json_endpoint.requests[-1].json
    assert body["response_format"] == response_format_for(Forecast)
    assert body["temperature"] == 0


@mode_param
def test_chat_structured_failure(json_endpoint: LocalEndpoint, mode: str) -> None:
    for prompt, fragment in (("broken", "not valid JSON"), ("misfit", r"\$\.windy: expected boolean")):
        with pytest.raises(StructuredOutputError, match=fragment) as caught:
            with_client(
                mode,
                json_endpoint.url,
                lambda c, p=prompt: c.chat_structured(p, Forecast),
                lambda c, p=prompt: c.chat_structured(p, Forecast),
            )
        assert caught.value.text.startswith('{"city": "Oslo"')
        assert caught.value.request_id  # the reply's request id, for support tickets


@mode_param
def test_response_format_values_in_chat(json_endpoint: LocalEndpoint, mode: str) -> None:
    reply = with_client(
        mode,
        json_endpoint.url,
        lambda c: c.chat("json please", response_format={"type": "json_object"}),
        lambda c: c.chat("json please", response_format={"type": "json_object"}),
    )
    assert json_endpoint.requests[-1].json["response_format"] == {"type": "json_object"}
    assert parse_structured(reply, Forecast) == EXPECTED
    # an attrs class as response_format is turned into its json_schema
    with_client(
        mode,
        json_endpoint.url,
        lambda c: c.chat("class please", response_format=Forecast),
        lambda c: c.chat("class please", response_format=Forecast),
    )
    assert json_endpoint.requests[-1].json["response_format"] == response_format_for(Forecast)
    # an explicit response_format wins over chat_structured's own
    with_client(
        mode,
        json_endpoint.url,
        lambda c: c.chat_structured("object please", Forecast, response_format={"type": "json_object"}),
        lambda c: c.chat_structured("object please", Forecast, response_format={"type": "json_object"}),
    )
    assert json_endpoint.requests[-1].json["response_format"] == {"type": "json_object"}


@mode_param
def test_chat_structured_on_a_dedicated_endpoint_sends_no_response_format(mode: str) -> None:
    with LocalEndpoint(kind="dedicated", api_key=API_KEY, responder=lambda turn: json.dumps(GOOD)) as dedicated:
        dedicated.add_fault(Fault())  # a no-op fault: the normal reply
        forecast = with_client(
            mode,
            dedicated.url,
            lambda c: c.chat_structured("Forecast?", Forecast),
            lambda c: c.chat_structured("Forecast?", Forecast),
        )
        assert forecast == EXPECTED
        assert "response_format" not in dedicated.requests[-1].json["input_data"]["parameters"]


# --- every schema style over HTTP -----------------------------------------------------------------


@attrs.frozen
class StyleCase:
    """A type in one schema style, what a strict-mode model answers for it, and a misfit."""

    tp: Any
    reply: Any
    expected: Any
    misfit: Any
    fragment: str


CASES = {
    "attrs": StyleCase(
        Task,
        {"title": "Ship", "priority": "high", "tags": None, "estimate": None},
        Task("Ship", Priority.HIGH),
        {"title": "Ship", "priority": "urgent", "tags": None, "estimate": None},
        r"\$\.priority: expected one of",
    ),
    "dataclass": StyleCase(
        Invoice,
        {"number": "A-7", "items": [{"sku": "k", "quantity": 2}], "issued": "2024-05-01", "paid": True, "note": None},
        Invoice("A-7", [LineItem("k", 2)], datetime.date(2024, 5, 1), paid=True),
        {"number": 7, "items": [], "issued": "2024-05-01", "paid": None, "note": None},
        r"\$\.number: expected string, got 7",
    ),
    "typeddict": StyleCase(
        Movie,
        {"title": "Heat", "year": 1995, "genres": None},
        {"title": "Heat", "year": 1995},
        {"title": None, "year": 1995, "genres": None},
        r"\$\.title: expected string, got null",
    ),
    "list": StyleCase(list[int], {"response": [1, 2]}, [1, 2], {"response": ["1"]}, r"\$\[0\]: expected integer"),
    "literal": StyleCase(Literal["yes", "no"], {"response": "no"}, "no", {"response": "maybe"}, "expected one of"),
    "annotated-optional": StyleCase(
        Annotated[int | None, "a count"], {"response": None}, None, {"response": "x"}, "expected integer or null"
    ),
}
STYLES = [*CASES, pytest.param("pydantic", marks=pytest.mark.skipif(pydantic is None, reason=needs_pydantic))]
if pydantic is not None:
    from schema_styles import Person

    CASES["pydantic"] = StyleCase(
        Person,
        {"name": "Ann", "age": None, "items": [{"sku": "k", "quantity": None}]},
        Person(name="Ann", items=[LineItem("k")]),
        {"name": "R2D2", "age": None, "items": None},
        r"\$\.name: Value error, a name has no digits",
    )


def style_model(turn: ChatTurn) -> str:
    """A scripted model answering "fit:<style>" with a good reply and "misfit:<style>" with a bad one."""
    verdict, _, style = turn.messages[-1]["content"].partition(":")
    case = CASES[style]
    return json.dumps(case.reply if verdict == "fit" else case.misfit)


@pytest.fixture(scope="module")
def style_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(api_key=API_KEY, responder=style_model) as endpoint:
        yield endpoint


@pytest.mark.parametrize("style", STYLES)
@mode_param
def test_chat_structured_in_every_style(style_endpoint: LocalEndpoint, style: str, mode: str) -> None:
    case = CASES[style]
    value = with_client(
        mode,
        style_endpoint.url,
        lambda c: c.chat_structured(f"fit:{style}", case.tp),
        lambda c: c.chat_structured(f"fit:{style}", case.tp),
    )
    assert value == case.expected
    assert type(value) is type(case.expected)
    sent = style_endpoint.requests[-1].json["response_format"]
    assert sent == response_format_for(case.tp)
    assert sent["json_schema"]["strict"] is True
    assert_strict(sent["json_schema"]["schema"])
    with pytest.raises(StructuredOutputError, match=case.fragment) as caught:
        with_client(
            mode,
            style_endpoint.url,
            lambda c: c.chat_structured(f"misfit:{style}", case.tp),
            lambda c: c.chat_structured(f"misfit:{style}", case.tp),
        )
    assert caught.value.text == json.dumps(case.misfit)
    assert caught.value.request_id
