"""Tool calling: schemas from Python functions (parameters in every schema style), the
tools/tool_choice body values, running tool calls, and full tool round trips (plain and
streamed) over HTTP with both clients."""

from __future__ import annotations

import copy
import datetime
import enum
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
import attrs
import pytest
from schema_styles import Invoice, LineItem, Movie, Task, assert_strict, needs_pydantic, pydantic
from support import API_KEY, MODES, mode_param, stream, with_client

from azml_chat import (
    AsyncChatClient,
    ChatClient,
    ChatResponse,
    InvalidRequestError,
    Message,
    ResponseFormatError,
    StructuredOutputError,
    ToolCall,
    aexecute_tool_calls,
    execute_tool_calls,
    tool_schema,
    tools_to_wire,
)
from azml_chat.testing import ChatTurn, LocalEndpoint, ScriptedReply
from azml_chat.tools import parse_docstring, tool_choice_to_wire


class Unit(enum.Enum):
    CELSIUS = "C"
    FAHRENHEIT = "F"


@attrs.frozen
class Place:
    city: str
    country: str | None = None


def get_weather(place: Place, unit: Unit = Unit.CELSIUS, days: int = 1) -> dict[str, Any]:
    """Weather forecast for a place.

    Uses the local weather service.

    Args:
        place: Where to look.
        unit (Unit): Temperature unit,
            Celsius or Fahrenheit.
        days: How many days ahead.

    Returns:
        The forecast.
    """
    return {"city": place.city, "unit": unit.value, "temperature": 21 if unit is Unit.CELSIUS else 70, "days": days}


def add(a: int, b: float, note: Annotated[str, "free text"] = "", flags: list[bool] | None = None) -> float:
    """Add two numbers.

    :param a: the first number
    :param float b: the second
        number
    :returns: the sum
    """
    return a + b


# --- schemas ----------------------------------------------------------------------------------


def test_schema_from_signature_annotations_and_google_docstring() -> None:
    assert tool_schema(get_weather) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast for a place.\n\nUses the local weather service.",
            "parameters": {
                "type": "object",
                "properties": {
                    "place": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "country": {"type": ["string", "null"], "default": None},
                        },
                        "required": ["city"],
                        "additionalProperties": False,
                        "description": "Where to look.",
                    },
                    "unit": {
                        "type": "string",
                        "enum": ["C", "F"],
                        "description": "Temperature unit, Celsius or Fahrenheit.",
                        "default": "C",
                    },
                    "days": {"type": "integer", "description": "How many days ahead.", "default": 1},
                },
                "required": ["place"],
                "additionalProperties": False,
            },
        },
    }


def test_schema_with_sphinx_docstring_and_more_types() -> None:
    function = tool_schema(add)["function"]
    assert function["description"] == "Add two numbers."
    assert function["parameters"]["properties"] == {
        "a": {"type": "integer", "description": "the first number"},
        "b": {"type": "number", "description": "the second number"},
        "note": {"type": "string", "description": "free text", "default": ""},
        "flags": {"type": ["array", "null"], "items": {"type": "boolean"}, "default": None},
    }
    assert function["parameters"]["required"] == ["a", "b"]


def test_schema_of_literal_dict_any_and_overrides() -> None:
    def pick(mode: Literal["fast", "slow"], extra: dict[str, int], anything, size: Literal[1, 2] | None = None) -> None:  # type: ignore[no-untyped-def]
        pass

    schema = tool_schema(pick, name="chooser", description="Pick one.")
    assert schema["function"]["name"] == "chooser"
    assert schema["function"]["description"] == "Pick one."
    assert schema["function"]["parameters"]["properties"] == {
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
        "anything": {},
        "size": {"type": ["integer", "null"], "enum": [1, 2, None], "default": None},
    }


def test_docstring_parsing_edge_cases() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("Just a summary.") == ("Just a summary.", {})
    text, params = parse_docstring("Summary\n    line two.\n\nArgs:\n    *args: extra\n    x (int): the x\n")
    assert (text, params) == ("Summary line two.", {"args": "extra", "x": "the x"})


@pytest.mark.parametrize(
    ("fn", "fragment"),
    [
        (lambda x: x, "tool name"),
        (lambda: None, "tool name"),
        (print, "keyword arguments only"),
        ("not callable", "function or a tool dict"),
    ],
)
def test_unusable_functions_are_rejected(fn: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        tool_schema(fn)


def test_bad_signatures_are_rejected() -> None:
    def star(*values: int) -> None:
        pass

    def kwargs(**options: int) -> None:
        pass

    def positional(a: int, /) -> None:
        pass

    def complex_number(z: complex) -> None:
        pass

    def fixed_tuple(pair: tuple[int, str]) -> None:
        pass

    for fn, fragment in [
        (star, "variadic positional"),
        (kwargs, "variadic keyword"),
        (positional, "positional-only"),
        (complex_number, "tool 'complex_number': property 'z': cannot describe"),
        (fixed_tuple, "fixed-length tuple"),
    ]:
        with pytest.raises(InvalidRequestError, match=fragment):
            tool_schema(fn)
    with pytest.raises(InvalidRequestError, match="1-64"):
        tool_schema(add, name="has space")


def test_tools_to_wire_checks_and_copies_dicts() -> None:
    raw = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    before = copy.deepcopy(raw)
    wire = tools_to_wire([raw, get_weather])
    assert wire[0] == raw
    assert wire[0] is not raw
    assert wire[1] == tool_schema(get_weather)
    assert raw == before
    assert tools_to_wire(()) == []
    for bad, fragment in [
        ({"function": {"name": "x"}}, "must look like"),
        ({"type": "function", "function": {"description": "no name"}}, "must look like"),
        ({"type": "code_interpreter"}, "must look like"),
    ]:
        with pytest.raises(InvalidRequestError, match=fragment):
            tools_to_wire([bad])
    for bad_list in (get_weather, raw, "get_weather", 5):
        with pytest.raises(InvalidRequestError, match="must be a list"):
            tools_to_wire(bad_list)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="share the name 'get_weather'"):
        tools_to_wire([get_weather, get_weather])


def test_tool_choice_values() -> None:
    assert tool_choice_to_wire("auto") == "auto"
    assert tool_choice_to_wire("required") == "required"
    assert tool_choice_to_wire(get_weather) == {"type": "function", "function": {"name": "get_weather"}}
    forced = {"type": "function", "function": {"name": "x"}}
    assert tool_choice_to_wire(forced) == forced
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        tool_choice_to_wire(3)


# --- running tool calls -------------------------------------------------------------------------


def reply_with(*calls: ToolCall) -> ChatResponse:
    return ChatResponse(Message.assistant(None, calls), finish_reason="tool_calls")


def test_execute_tool_calls_structures_arguments_and_encodes_results() -> None:
    reply = reply_with(
        ToolCall("c1", "get_weather", '{"place": {"city": "Oslo"}, "unit": "F"}'),
        ToolCall("c2", "add", '{"a": 2, "b": 0.5}'),
    )
    messages = execute_tool_calls(reply, [get_weather, add, {"type": "function", "function": {"name": "dict_only"}}])
    assert messages == [
        Message.tool('{"city":"Oslo","unit":"F","temperature":70,"days":1}', "c1"),
        Message.tool("2.5", "c2"),
    ]
    by_name = execute_tool_calls(reply_with(ToolCall("c3", "sum", '{"a": 1, "b": 2}')), {"sum": add})
    assert by_name == [Message.tool("3.0", "c3")]  # b: float, so 1 + 2.0


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (ToolCall("c", "nope", "{}"), ResponseFormatError, r"unknown tool 'nope' \(known: add, get_weather\)"),
        (ToolCall("c", "add", "{broken"), ResponseFormatError, "not valid JSON"),
        (ToolCall("c", "add", "[1, 2]"), StructuredOutputError, "not a JSON object"),
        (ToolCall("c", "add", '{"a": 1}'), StructuredOutputError, r"missing \['b'\]"),
        (ToolCall("c", "add", '{"a": 1, "b": 2, "c": 3}'), StructuredOutputError, r"unknown arguments \['c'\]"),
        (ToolCall("c", "add", '{"a": "one", "b": 2}'), StructuredOutputError, r"\$\.a: expected integer"),
        (
            ToolCall("c", "get_weather", '{"place": {"city": "X"}, "unit": "K"}'),
            StructuredOutputError,
            r"tool call 'get_weather': the arguments do not fit: \$\.unit: expected one of",
        ),
    ],
)
def test_execute_tool_calls_rejects_calls_that_do_not_fit(call: ToolCall, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment) as caught:
        execute_tool_calls(reply_with(call), [add, get_weather])
    if isinstance(caught.value, StructuredOutputError):
        assert caught.value.text == call.arguments


def test_async_tools_need_aexecute_and_run_there() -> None:
    async def lookup(key: str) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return [key, key.upper()]

    reply = reply_with(ToolCall("c1", "lookup", '{"key": "ab"}'), ToolCall("c2", "add", '{"a": 1, "b": 1}'))
    with pytest.raises(InvalidRequestError, match="aexecute_tool_calls"):
        execute_tool_calls(reply, [lookup, add])
    messages = anyio.run(aexecute_tool_calls, reply, [lookup, add])
    assert messages == [Message.tool('["ab","AB"]', "c1"), Message.tool("2.0", "c2")]


def test_non_json_results_are_a_clear_error() -> None:
    def opaque() -> object:
        return object()

    with pytest.raises(InvalidRequestError, match="not JSON-serializable: return a str"):
        execute_tool_calls(reply_with(ToolCall("c", "opaque", "{}")), [opaque])


# --- round trips over HTTP ---------------------------------------------------------------------


def weather_model(turn: ChatTurn) -> str | ScriptedReply:
    """A scripted model: asks for get_weather, then answers from the tool result."""
    last = turn.messages[-1]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        return f"It is {result['temperature']} degrees {result['unit']} in {result['city']}."
    assert [tool["function"]["name"] for tool in turn.params["tools"]] == ["get_weather"]
    arguments = {"place": {"city": "Oslo", "country": "NO"}, "unit": "C"}
    return ScriptedReply(tool_calls=[{"id": "call_1", "function": {"name": "get_weather", "arguments": arguments}}])


@pytest.fixture
def weather() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(api_key=API_KEY, responder=weather_model) as endpoint:
        yield endpoint


def check_round_trip_requests(endpoint: LocalEndpoint) -> None:
    first, second = (request.json for request in endpoint.requests)
    assert first["tools"] == [tool_schema(get_weather)]
    assert first["tool_choice"] == "auto"
    assistant, tool = second["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"place": {"city": "Oslo", "country": "NO"}, "unit": "C"}',
                },
            }
        ],
    }
    assert tool == {
        "role": "tool",
        "content": '{"city":"Oslo","unit":"C","temperature":21,"days":1}',
        "tool_call_id": "call_1",
    }


@mode_param
def test_full_tool_round_trip(weather: LocalEndpoint, mode: str) -> None:
    question: list[Any] = ["What's the weather in Oslo?"]

    def sync_action(client: ChatClient) -> tuple[ChatResponse, ChatResponse]:
        first = client.chat(question, tools=[get_weather], tool_choice="auto")
        second = client.chat([*question, first.message, *execute_tool_calls(first, [get_weather])], tools=[get_weather])
        return first, second

    async def async_action(client: AsyncChatClient) -> tuple[ChatResponse, ChatResponse]:
        first = await client.chat(question, tools=[get_weather], tool_choice="auto")
        results = await aexecute_tool_calls(first, [get_weather])
        second = await client.chat([*question, first.message, *results], tools=[get_weather])
        return first, second

    first, second = with_client(mode, weather.url, sync_action, async_action)
    assert first.finish_reason == "tool_calls"
    assert first.message.content is None
    assert first.content == ""
    assert [(call.id, call.name) for call in first.tool_calls] == [("call_1", "get_weather")]
    assert second.content == "It is 21 degrees C in Oslo."
    assert second.finish_reason == "stop"
    check_round_trip_requests(weather)


@mode_param
def test_streamed_tool_round_trip(weather: LocalEndpoint, mode: str) -> None:
    _, first = stream(mode, weather.url, "What's the weather in Oslo?", tools=[get_weather], tool_choice="auto")
    assert first is not None
    assert first.message.content is None
    history = ["What's the weather in Oslo?", first.message, *execute_tool_calls(first, [get_weather])]
    chunks, second = stream(mode, weather.url, history, tools=[get_weather])
    assert second is not None
    assert "".join(chunk.content for chunk in chunks) == second.content == "It is 21 degrees C in Oslo."
    check_round_trip_requests(weather)


@mode_param
def test_tools_in_model_kwargs_and_forced_choice(weather: LocalEndpoint, mode: str) -> None:
    reply = with_client(
        mode,
        weather.url,
        lambda c: c.chat("weather?", tool_choice=get_weather),
        lambda c: c.chat("weather?", tool_choice=get_weather),
        model_kwargs={"tools": [get_weather]},
    )
    assert reply.tool_calls[0].parsed_arguments() == {"place": {"city": "Oslo", "country": "NO"}, "unit": "C"}
    body = weather.requests[-1].json
    assert body["tools"] == [tool_schema(get_weather)]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("mode", MODES)
def test_bad_tools_fail_before_any_request(endpoint: LocalEndpoint, mode: str) -> None:
    with pytest.raises(InvalidRequestError, match="must look like"):
        with_client(
            mode,
            endpoint.url,
            lambda c: c.chat("x", tools=[{"name": "flat"}]),
            lambda c: c.chat("x", tools=[{"name": "flat"}]),
        )
    assert endpoint.requests == []


# --- parameters in every schema style -----------------------------------------------------------


def plan(
    task: Task,
    invoice: Invoice,
    movie: Movie,
    due: datetime.date,
    steps: Annotated[list[str], "what to do, in order"],
    mode: Literal["fast", "careful"] | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Plan a task.

    Args:
        task: The task.
        invoice: Its invoice.
    """
    assert type(task) is Task
    assert type(invoice) is Invoice
    assert type(invoice.items[0]) is LineItem
    assert type(movie) is dict
    return {
        "task": task,
        "total": sum(item.quantity for item in invoice.items),
        "movie": movie["title"],
        "due": due,
        "steps": len(steps),
        "mode": mode,
        "repeat": repeat,
    }


PLAN_ARGUMENTS = {
    "task": {"title": "Ship", "priority": "high", "tags": None, "estimate": None},
    "invoice": {"number": "A-1", "items": [{"sku": "k", "quantity": 3}], "issued": "2024-05-01", "paid": None},
    "movie": {"title": "Heat", "year": None},
    "due": "2024-06-01",
    "steps": ["build", "test"],
    "mode": None,
    "repeat": None,
}  # as a strict-mode model sends them: nulls for what it leaves at the default
PLAN_RESULT = {
    "task": {"title": "Ship", "priority": "high", "tags": [], "estimate": None},
    "total": 3,
    "movie": "Heat",
    "due": "2024-06-01",
    "steps": 2,
    "mode": None,
    "repeat": 1,
}


def test_schema_of_parameters_in_every_style() -> None:
    function = tool_schema(plan)["function"]
    properties = function["parameters"]["properties"]
    assert function["parameters"]["required"] == ["task", "invoice", "movie", "due", "steps"]
    assert properties["task"]["description"] == "The task."  # the docstring wins over the class's
    assert properties["task"]["properties"]["priority"] == {"type": "string", "enum": ["low", "high"], "default": "low"}
    assert properties["invoice"]["properties"]["items"]["items"]["required"] == ["sku"]
    assert properties["movie"]["required"] == ["title"]
    assert properties["due"] == {"type": "string", "format": "date"}
    assert properties["steps"] == {"type": "array", "items": {"type": "string"}, "description": "what to do, in order"}
    assert properties["repeat"] == {"type": "integer", "default": 1}
    assert "strict" not in function


def test_strict_tool_schema() -> None:
    function = tool_schema(plan, strict=True)["function"]
    assert function["strict"] is True
    parameters = function["parameters"]
    assert_strict(parameters)
    assert parameters["required"] == ["task", "invoice", "movie", "due", "steps", "mode", "repeat"]
    assert parameters["properties"]["repeat"] == {"type": ["integer", "null"]}
    assert parameters["properties"]["mode"] == {"type": ["string", "null"], "enum": ["fast", "careful", None]}

    def tag(labels: dict[str, str]) -> None:
        pass

    with pytest.raises(
        InvalidRequestError, match=r"tool 'tag': cannot be described in strict mode: \$\.labels: an object"
    ):
        tool_schema(tag, strict=True)
    assert "strict" not in tool_schema(tag)["function"]


def test_execute_builds_arguments_of_every_style() -> None:
    reply = reply_with(ToolCall("c1", "plan", json.dumps(PLAN_ARGUMENTS)))
    [message] = execute_tool_calls(reply, [plan])
    assert json.loads(message.content) == PLAN_RESULT
    misfit = {**PLAN_ARGUMENTS, "invoice": {**PLAN_ARGUMENTS["invoice"], "issued": "someday"}, "movie": {}}
    with pytest.raises(StructuredOutputError, match=r"\$\.movie: missing key 'title'") as caught:
        execute_tool_calls(reply_with(ToolCall("c2", "plan", json.dumps(misfit))), [plan])
    assert caught.value.text == json.dumps(misfit)
    misfit = {**PLAN_ARGUMENTS, "invoice": {**PLAN_ARGUMENTS["invoice"], "issued": "someday"}}
    with pytest.raises(StructuredOutputError, match=r"\$\.invoice\.issued: ValueError: Invalid isoformat"):
        execute_tool_calls(reply_with(ToolCall("c3", "plan", json.dumps(misfit))), [plan])


if pydantic is not None:
    from schema_styles import Person

    def greet(person: Person, formal: bool = False) -> Person:
        """Greet a person."""
        return Person(name=("Dear " if formal else "") + person.name, age=person.age)


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_parameters_and_results() -> None:
    parameters = tool_schema(greet)["function"]["parameters"]
    assert parameters["properties"]["person"] == {"$ref": "#/$defs/Person"}
    assert parameters["$defs"]["Person"] == {
        key: value for key, value in Person.model_json_schema().items() if key != "$defs"
    }
    assert_strict(tool_schema(greet, strict=True)["function"]["parameters"])
    call = ToolCall("c1", "greet", '{"person": {"name": "Ann", "age": "40"}, "formal": null}')
    [message] = execute_tool_calls(reply_with(call), [greet])
    assert json.loads(message.content) == {"name": "Ann", "age": 40, "items": []}
    bad = ToolCall("c2", "greet", '{"person": {"name": "4nn"}}')
    with pytest.raises(StructuredOutputError, match=r"\$\.person\.name: Value error, a name has no digits"):
        execute_tool_calls(reply_with(bad), [greet])


def planning_model(turn: ChatTurn) -> str | ScriptedReply:
    """A scripted model: calls plan with arguments in every style, then reports its result."""
    last = turn.messages[-1]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        return f"{result['task']['title']}: {result['steps']} steps, {result['total']} items, due {result['due']}."
    call = {"id": "call_plan", "function": {"name": "plan", "arguments": PLAN_ARGUMENTS}}
    return ScriptedReply(tool_calls=[call])


@mode_param
def test_tool_round_trip_with_every_style(mode: str) -> None:
    question: list[Any] = ["Plan the release."]

    def sync_action(client: ChatClient) -> ChatResponse:
        first = client.chat(question, tools=[tool_schema(plan, strict=True)])
        return client.chat([*question, first.message, *execute_tool_calls(first, [plan])], tools=[plan])

    async def async_action(client: AsyncChatClient) -> ChatResponse:
        first = await client.chat(question, tools=[tool_schema(plan, strict=True)])
        results = await aexecute_tool_calls(first, [plan])
        return await client.chat([*question, first.message, *results], tools=[plan])

    with LocalEndpoint(api_key=API_KEY, responder=planning_model) as endpoint:
        answer = with_client(mode, endpoint.url, sync_action, async_action)
        first, second = (request.json for request in endpoint.requests)
    assert answer.content == "Ship: 2 steps, 3 items, due 2024-06-01."
    assert first["tools"] == [tool_schema(plan, strict=True)]
    assert second["tools"] == [tool_schema(plan)]
    assert json.loads(second["messages"][-1]["content"]) == PLAN_RESULT


class Lookup:
    """Look a word up."""

    __name__ = "lookup"

    def __call__(self, word: str, limit: int = 3) -> str:
        return f"{word}:{limit}"


def test_callable_objects_and_string_results() -> None:
    lookup = Lookup()
    assert tool_schema(lookup)["function"]["parameters"]["properties"] == {
        "word": {"type": "string"},
        "limit": {"type": "integer", "default": 3},
    }
    reply = reply_with(ToolCall("c1", "lookup", '{"word": "kettle", "limit": null}'))
    assert execute_tool_calls(reply, {"lookup": lookup}) == [Message.tool("kettle:3", "c1")]
    with pytest.raises(InvalidRequestError, match="a list of functions or a dict"):
        execute_tool_calls(reply, "lookup")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="cannot read the parameters of tool 'int'"):
        tool_schema(int)
