"""Schemas and parsing for every schema style, without sockets: attrs classes, dataclasses,
TypedDicts, pydantic models and typing annotations; OpenAI strict-mode rules; the
``{"response": ...}`` wrapper; nulls for optional fields; where a misfit is reported."""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NewType, Optional

import attrs
import pytest
import typing_extensions  # installed with cattrs
from schema_styles import (
    Address,
    Invoice,
    LineItem,
    Movie,
    Positive,
    Priority,
    Task,
    Tree,
    assert_strict,
    needs_pydantic,
    pydantic,
)

from azml_chat import InvalidRequestError, StructuredOutputError, json_schema, parse_structured, response_format_for
from azml_chat.structured import (
    RESPONSE_KEY,
    FieldSpec,
    object_schema,
    structure_fields,
    structure_value,
    unstructure_value,
)

UserId = NewType("UserId", int)


def strict_schema(tp: Any) -> dict[str, Any]:
    """The schema ``response_format_for`` sends, after checking it is strict and valid."""
    fmt = response_format_for(tp)
    assert fmt["json_schema"]["strict"] is True
    assert_strict(fmt["json_schema"]["schema"])
    return fmt["json_schema"]["schema"]  # type: ignore[no-any-return]


# --- attrs ----------------------------------------------------------------------------------------


def test_attrs_schema_lenient_and_strict() -> None:
    assert json_schema(Task) == {
        "type": "object",
        "description": "A task to do.",
        "properties": {
            "title": {"type": "string"},
            "priority": {"type": "string", "enum": ["low", "high"], "default": "low"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "estimate": {"type": ["number", "null"], "description": "hours", "default": None},
        },
        "required": ["title"],
        "additionalProperties": False,
    }
    assert strict_schema(Task)["properties"] == {
        "title": {"type": "string"},
        "priority": {"type": ["string", "null"], "enum": ["low", "high", None]},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "estimate": {"type": ["number", "null"], "description": "hours"},
    }


def test_attrs_parse_uses_defaults_for_strict_nulls() -> None:
    reply = {"title": "Write tests", "priority": None, "tags": None, "estimate": None}
    assert parse_structured(json.dumps(reply), Task) == Task("Write tests")
    full = {"title": "Ship", "priority": "high", "tags": ["release"], "estimate": 2}
    assert parse_structured(json.dumps(full), Task) == Task("Ship", Priority.HIGH, ["release"], 2.0)
    with pytest.raises(StructuredOutputError, match=r"\$\.priority: expected one of \[\"low\",\"high\"\]"):
        parse_structured('{"title": "x", "priority": "urgent"}', Task)
    with pytest.raises(StructuredOutputError, match=r"\$\.title: expected string, got null"):
        parse_structured('{"title": null}', Task)  # a required field's null is no "absent"


def test_recursive_classes_use_defs() -> None:
    schema = strict_schema(Tree)
    assert schema["properties"]["children"] == {"type": ["array", "null"], "items": {"$ref": "#/$defs/Tree"}}
    assert schema["$defs"]["Tree"]["properties"]["label"] == {"type": "string"}
    text = '{"label": "a", "children": [{"label": "b", "children": null}, {"label": "c", "children": []}]}'
    assert parse_structured(text, Tree) == Tree("a", [Tree("b"), Tree("c")])
    with pytest.raises(StructuredOutputError, match=r"\$\.children\[1\]\.label: expected string, got 3"):
        parse_structured('{"label": "a", "children": [{"label": "b"}, {"label": 3}]}', Tree)


# --- dataclasses ----------------------------------------------------------------------------------


def test_dataclass_schema() -> None:
    schema = json_schema(Invoice)
    assert schema["description"] == "An invoice."
    assert schema["required"] == ["number", "items", "issued"]
    assert schema["properties"]["items"] == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "default": 1}},
            "required": ["sku"],
            "additionalProperties": False,
        },  # no description: the signature dataclasses puts in __doc__ is not one
    }
    assert schema["properties"]["issued"] == {"type": "string", "format": "date"}
    assert schema["properties"]["note"] == {"type": ["string", "null"], "description": "anything else", "default": None}
    assert strict_schema(Invoice)["properties"]["paid"] == {"type": ["boolean", "null"]}


def test_dataclass_parse() -> None:
    text = json.dumps(
        {"number": "A-1", "items": [{"sku": "k", "quantity": None}], "issued": "2024-05-01", "paid": None, "note": None}
    )
    invoice = parse_structured(text, Invoice)
    assert invoice == Invoice("A-1", [LineItem("k")], datetime.date(2024, 5, 1))
    assert type(invoice.items[0]) is LineItem
    with pytest.raises(StructuredOutputError, match=r"\$\.issued: ValueError: Invalid isoformat string: 'soon'"):
        parse_structured('{"number": "A", "items": [], "issued": "soon"}', Invoice)
    with pytest.raises(StructuredOutputError, match=r"\$: ValueError: value must be positive") as caught:
        parse_structured('{"value": -1}', Positive)
    assert caught.value.text == '{"value": -1}'


# --- TypedDict ------------------------------------------------------------------------------------


def test_typeddict_schema_follows_total_required_and_notrequired() -> None:
    schema = json_schema(Movie)
    assert schema["required"] == ["title"]
    assert schema["description"] == "A movie."
    assert schema["properties"]["genres"] == {"type": "array", "items": {"type": "string", "enum": ["drama", "comedy"]}}
    address = json_schema(Address)
    assert address["required"] == ["street"]
    assert address["properties"]["city"] == {"type": "string", "description": "the city, if known"}
    assert strict_schema(Movie)["properties"]["year"] == {"type": ["integer", "null"]}


def test_typeddict_parse_returns_a_dict_of_declared_keys() -> None:
    movie = parse_structured('{"title": "Heat", "year": null, "genres": ["drama"], "rating": 5}', Movie)
    assert movie == {"title": "Heat", "genres": ["drama"]}
    assert type(movie) is dict
    assert parse_structured('{"street": "Main 1", "city": "Oslo"}', Address) == {"street": "Main 1", "city": "Oslo"}
    with pytest.raises(StructuredOutputError, match=r"\$\.genres\[0\]: expected one of"):
        parse_structured('{"title": "Heat", "genres": ["horror"]}', Movie)
    with pytest.raises(StructuredOutputError, match=r"\$: missing key 'street'"):
        parse_structured('{"city": "Oslo"}', Address)


class Point(typing_extensions.TypedDict):
    x: int
    y: typing_extensions.NotRequired[int]


def test_typing_extensions_typeddict() -> None:
    assert json_schema(Point)["required"] == ["x"]
    assert parse_structured('{"x": 1}', Point) == {"x": 1}


def test_typeddict_building_failures_name_the_key() -> None:
    class Event(dict):  # type: ignore[type-arg]  # a TypedDict-shaped class, to reach the key error path
        __required_keys__ = frozenset({"when"})
        __annotations__ = {"when": datetime.date}

    with pytest.raises(StructuredOutputError, match=r"\$\.when: ValueError: Invalid isoformat"):
        parse_structured('{"when": "later"}', Event)


# --- typing annotations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "schema"),
    [
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (tuple[str, ...], {"type": "array", "items": {"type": "string"}}),
        (Sequence[float], {"type": "array", "items": {"type": "number"}}),
        (frozenset[bool], {"type": "array", "items": {"type": "boolean"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Mapping[str, Any], {"type": "object"}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, "x"], {"enum": [1, "x"]}),
        (int | None, {"type": ["integer", "null"]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (list[int] | None, {"type": ["array", "null"], "items": {"type": "integer"}}),
        (Annotated[int, "how many"], {"type": "integer", "description": "how many"}),
        (Annotated[int, {"unhashable": []}], {"type": "integer"}),  # built, not cached
        (UserId, {"type": "integer"}),
        (datetime.datetime, {"type": "string", "format": "date-time"}),
        (uuid.UUID, {"type": "string", "format": "uuid"}),
        (Any, {}),
        (Optional[Any], {}),  # noqa: UP045 - Any | None is no valid expression
        (None, {"type": "null"}),
    ],
)
def test_typing_annotation_schemas(tp: Any, schema: dict[str, Any]) -> None:
    assert json_schema(tp) == schema


@pytest.mark.parametrize(
    ("tp", "text", "expected"),
    [
        (list[int], "[1, 2.0]", [1, 2]),
        (list[int], '{"response": [3]}', [3]),  # the response_format wrapper
        (tuple[int, ...], "[1, 2]", (1, 2)),
        (set[str], '["a", "a"]', {"a"}),
        (dict[str, float], '{"a": 1}', {"a": 1.0}),
        (dict[str, int], '{"response": 5}', {"response": 5}),  # not the wrapper: 5 is no dict
        (Literal["yes", "no"], '{"response": "no"}', "no"),
        (int | str, '"5"', "5"),
        (int | str, "5", 5),
        (float | None, "null", None),
        (Annotated[int, "n"], "7", 7),
        (UserId, "7", 7),
        (datetime.datetime, '"2024-05-01T12:30:00Z"', datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)),
        (uuid.UUID, '"12345678-1234-5678-1234-567812345678"', uuid.UUID("12345678-1234-5678-1234-567812345678")),
        (Any, '{"free": ["form"]}', {"free": ["form"]}),
    ],
)
def test_typing_annotation_parsing(tp: Any, text: str, expected: Any) -> None:
    value = parse_structured(text, tp)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("tp", "text", "fragment"),
    [
        (list[int], '["1"]', r"\$\[0\]: expected integer"),
        (list[int], '{"response": ["1"]}', r"\$\[0\]: expected integer"),
        (Literal["yes", "no"], '"maybe"', r"expected one of \[\"yes\",\"no\"\]"),
        (int | str, "true", "matches none of the allowed types"),
        (bool, "1", "expected boolean"),
        (uuid.UUID, '"nope"', "badly formed hexadecimal UUID"),
    ],
)
def test_typing_annotation_misfits(tp: Any, text: str, fragment: str) -> None:
    with pytest.raises(StructuredOutputError, match=fragment) as caught:
        parse_structured(text, tp)
    assert caught.value.text == text


@dataclasses.dataclass
class Cat:
    name: str
    lives: int


@dataclasses.dataclass
class Dog:
    name: str
    good: bool


@attrs.frozen
class Pet:
    pet: Cat | Dog
    tags: list[Literal["old", "young"]] | None = None


def test_unions_of_classes_pick_the_member_that_fits() -> None:
    assert parse_structured('{"pet": {"name": "Rex", "good": true}}', Pet) == Pet(Dog("Rex", True))
    assert parse_structured('{"pet": {"name": "Tom", "lives": 9}, "tags": ["old"]}', Pet) == Pet(Cat("Tom", 9), ["old"])
    with pytest.raises(StructuredOutputError, match=r"\$\.pet: .* matches none"):
        parse_structured('{"pet": {"name": "Nemo"}}', Pet)
    assert strict_schema(Pet)["properties"]["pet"]["anyOf"][1]["required"] == ["name", "good"]


# --- pydantic -------------------------------------------------------------------------------------


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_schema_is_its_own_and_strict_rewrites_it() -> None:
    from schema_styles import Person

    assert json_schema(Person) == Person.model_json_schema()
    strict = strict_schema(Person)
    assert strict["required"] == ["name", "age", "items"]
    assert strict["properties"]["name"]["description"] == "full name (maxLength=40)"  # not enforced: described
    assert strict["properties"]["age"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert strict["$defs"]["LineItem"]["required"] == ["sku", "quantity"]
    assert "default" not in json.dumps(strict)


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_parse_lets_the_model_validate() -> None:
    from schema_styles import Person

    person = parse_structured('{"name": "Ann", "age": "41", "items": [{"sku": "k", "quantity": null}]}', Person)
    assert person == Person(name="Ann", age=41, items=[LineItem("k")])  # pydantic coerces "41"
    assert parse_structured('{"name": "Bo", "age": null, "items": null}', Person) == Person(name="Bo")
    with pytest.raises(StructuredOutputError, match=r"\$\.name: Value error, a name has no digits") as caught:
        parse_structured('{"name": "R2D2"}', Person)
    assert caught.value.text == '{"name": "R2D2"}'
    with pytest.raises(StructuredOutputError, match=r"\$\.name: String should have at most 40 characters"):
        parse_structured(json.dumps({"name": "x" * 41}), Person)
    with pytest.raises(StructuredOutputError, match=r"\$\.name: Field required"):
        parse_structured("{}", Person)


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_models_inside_other_styles_and_back() -> None:
    from schema_styles import Person, Team

    schema = strict_schema(Team)
    assert schema["properties"]["lead"] == {"$ref": "#/$defs/Person"}
    assert set(schema["$defs"]) == {"Person", "LineItem"}
    team = parse_structured('{"lead": {"name": "Ann"}, "members": [{"name": "Bo", "age": 3}]}', Team)
    assert team == Team(Person(name="Ann"), [Person(name="Bo", age=3)])
    assert parse_structured('{"lead": {"name": "Ann", "age": "41"}}', Team).lead.age == 41  # pydantic coerces
    with pytest.raises(StructuredOutputError, match=r"\$\.members\[0\]\.name: Value error, a name has no digits"):
        parse_structured('{"lead": {"name": "Ann"}, "members": [{"name": "B0"}]}', Team)
    assert unstructure_value(team) == {
        "lead": {"name": "Ann", "age": None, "items": []},
        "members": [{"name": "Bo", "age": 3, "items": []}],
    }


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_shapes_strict_mode_cannot_take() -> None:
    from schema_styles import Loose, Numbers

    fmt = response_format_for(Loose)
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == Loose.model_json_schema()
    with pytest.raises(InvalidRequestError, match=r"Loose cannot be described in strict mode: \$: an object that"):
        response_format_for(Loose, strict=True)
    wrapped = strict_schema(Numbers)
    assert wrapped["properties"][RESPONSE_KEY]["items"] == {"type": "integer"}
    assert parse_structured('{"response": [1, 2]}', Numbers) == Numbers([1, 2])


if pydantic is not None:

    def _other_item() -> type:
        class Item(pydantic.BaseModel):
            a: int

        return Item

    class Item(pydantic.BaseModel):
        b: str

    class Holder(pydantic.BaseModel):
        item: Item

    OtherItem = _other_item()

    class OtherHolder(pydantic.BaseModel):
        item: OtherItem  # type: ignore[valid-type]

    @dataclasses.dataclass
    class Renamed:
        first: Holder
        second: OtherItem  # type: ignore[valid-type]

    @dataclasses.dataclass
    class Clash:
        first: Holder
        second: OtherHolder


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_models_with_one_name() -> None:
    schema = json_schema(Renamed)  # ours to name: the second Item becomes Item2
    assert schema["properties"]["second"] == {"$ref": "#/$defs/Item2"}
    assert schema["$defs"]["Item2"]["properties"] == {"a": {"title": "A", "type": "integer"}}
    with pytest.raises(InvalidRequestError, match="two different types are both named 'Item'"):
        json_schema(Clash)  # both named by pydantic


def test_pydantic_is_never_imported() -> None:
    code = (
        "import sys, dataclasses\n"
        "sys.modules['pydantic'] = None  # an import of pydantic would fail\n"
        "import azml_chat.structured, azml_chat.tools\n"
        "@dataclasses.dataclass\n"
        "class P:\n"
        "    x: int\n"
        "def f(p: P) -> None: ...\n"
        "print(azml_chat.structured.parse_structured('{\"x\": 1}', P), azml_chat.tools.tool_schema(f)['type'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "P(x=1) function"


# --- strict mode, names and wrapping --------------------------------------------------------------


@attrs.frozen
class Bag:
    counts: dict[str, int]
    anything: Any = None


def test_types_strict_mode_cannot_express() -> None:
    fmt = response_format_for(Bag)
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == json_schema(Bag)  # the lenient schema, defaults and all
    with pytest.raises(InvalidRequestError, match=r"\$\.counts: an object with free-form keys.*\$\.anything: a value"):
        json_schema(Bag, strict=True)
    with pytest.raises(InvalidRequestError, match=r"use strict=False"):
        response_format_for(Bag, strict=True)
    assert response_format_for(Task, strict=False)["json_schema"]["schema"] == json_schema(Task)


def test_non_object_types_are_wrapped_and_named_response() -> None:
    fmt = response_format_for(list[Task])
    assert fmt["json_schema"]["name"] == "response"
    schema = fmt["json_schema"]["schema"]
    assert_strict(schema)
    assert schema["required"] == [RESPONSE_KEY]
    assert schema["properties"][RESPONSE_KEY]["items"]["properties"]["title"] == {"type": "string"}
    assert response_format_for(Literal["a"], name="choice")["json_schema"]["name"] == "choice"
    tasks = parse_structured('{"response": [{"title": "a"}, {"title": "b", "priority": null}]}', list[Task])
    assert tasks == [Task("a"), Task("b")]
    tree_list = response_format_for(list[Tree])["json_schema"]["schema"]
    assert_strict(tree_list)
    assert tree_list["properties"][RESPONSE_KEY]["items"] == {"$ref": "#/$defs/Tree"}


def test_unsupported_types_name_the_field() -> None:
    @dataclasses.dataclass
    class Shape:
        corners: tuple[int, int]

    with pytest.raises(InvalidRequestError, match=r"Shape\.corners: cannot describe the fixed-length tuple"):
        json_schema(Shape)
    with pytest.raises(InvalidRequestError, match=r"cannot describe <class 'complex'>.*pydantic models"):
        parse_structured("1", complex)
    with pytest.raises(InvalidRequestError, match="cannot describe 'int'"):
        json_schema("int")  # a string is no type
    with pytest.raises(InvalidRequestError, match="enum values must be"):
        json_schema(Literal[b"x"])


# --- building blocks: fields, structure and unstructure -------------------------------------------


def test_object_schema_and_structure_fields() -> None:
    fields = [
        FieldSpec("when", datetime.date),
        FieldSpec("count", int, required=False, default=3, description="how many"),
        FieldSpec("kind", Priority, required=False, default=Priority.HIGH),
    ]
    assert object_schema(fields, description="Args.") == {
        "type": "object",
        "description": "Args.",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "count": {"type": "integer", "description": "how many", "default": 3},
            "kind": {"type": "string", "enum": ["low", "high"], "default": "high"},
        },
        "required": ["when"],
        "additionalProperties": False,
    }
    assert_strict(object_schema(fields, strict=True))
    assert structure_fields({"when": "2024-01-02", "count": None, "other": 1}, fields) == {
        "when": datetime.date(2024, 1, 2)
    }
    with pytest.raises(StructuredOutputError, match=r"the arguments do not fit: \$\.kind: expected one of"):
        structure_fields({"when": "2024-01-02", "kind": "mid"}, fields)
    with pytest.raises(StructuredOutputError, match=r"\$\.when: ValueError: month must be in 1\.\.12"):
        structure_fields({"when": "2024-13-02"}, fields)
    with pytest.raises(InvalidRequestError, match="free-form keys"):
        object_schema([FieldSpec("extra", dict[str, str])], strict=True)


def test_structure_and_unstructure_values() -> None:
    assert structure_value({"title": "t"}, Task) == Task("t")
    with pytest.raises(StructuredOutputError, match=r"the value does not fit Task: \$: missing key 'title'"):
        structure_value({}, Task)
    invoice = Invoice("A", [LineItem("k", 2)], datetime.date(2024, 1, 2), note="n")
    assert unstructure_value(invoice) == {
        "number": "A",
        "items": [{"sku": "k", "quantity": 2}],
        "issued": "2024-01-02",
        "paid": False,
        "note": "n",
    }
    assert unstructure_value([Priority.HIGH, uuid.UUID(int=1)]) == ["high", "00000000-0000-0000-0000-000000000001"]
    assert structure_value(unstructure_value(invoice), Invoice) == invoice


# --- corners --------------------------------------------------------------------------------------


class Labelled(typing_extensions.TypedDict, total=False):
    name: Annotated[typing_extensions.Required[str], "what it is called"]
    code: typing_extensions.ReadOnly[int]


@dataclasses.dataclass
class Counter:
    root: Annotated[Tree, "the root"]
    start: Annotated[int | str, "a number or a name"] = 0
    step: int | str | None = None
    mark: Literal["x", None] = "x"
    total: int = dataclasses.field(init=False, default=0)
    parent: Tree | None = None


def test_qualifiers_init_false_fields_and_nullable_unions() -> None:
    labelled = json_schema(Labelled)
    assert labelled["required"] == ["name"]
    assert labelled["properties"] == {
        "name": {"type": "string", "description": "what it is called"},
        "code": {"type": "integer"},
    }
    counter = strict_schema(Counter)
    assert list(counter["properties"]) == ["root", "start", "step", "mark", "parent"]  # total is no __init__ field
    assert counter["properties"]["mark"] == {"enum": ["x", None]}
    assert counter["properties"]["root"] == {"anyOf": [{"$ref": "#/$defs/Tree"}], "description": "the root"}
    assert counter["properties"]["step"] == {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}
    assert counter["properties"]["start"] == {
        "anyOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"type": "null"}],
        "description": "a number or a name",
    }
    assert counter["properties"]["parent"] == {"anyOf": [{"$ref": "#/$defs/Tree"}, {"type": "null"}]}
    text = '{"root": {"label": "r"}, "start": "ten", "step": null, "parent": {"label": "p"}}'
    assert parse_structured(text, Counter) == Counter(Tree("r"), "ten", parent=Tree("p"))


def test_a_union_member_that_fits_but_fails_to_build() -> None:
    with pytest.raises(StructuredOutputError, match=r"\$: ValueError: value must be positive"):
        parse_structured('{"value": -1}', Positive | str)
    assert parse_structured('{"value": 2}', Positive | str) == Positive(2)
    assert parse_structured('{"value": -1}', Positive | dict[str, int]) == {"value": -1}  # the next that builds
    with pytest.raises(StructuredOutputError, match=r"expected integer, got nan"):
        parse_structured("NaN", int)  # no JSON, yet Python's decoder takes it


if pydantic is not None:

    class Circle(pydantic.BaseModel):
        kind: Literal["circle"]
        radius: float

    class Square(pydantic.BaseModel):
        kind: Literal["square"]
        side: float = 1.0

    class Shape(pydantic.BaseModel):
        """A discriminated union (oneOf), a URL (format uri) and a described allOf, as older
        pydantic versions wrote a described $ref."""

        figure: Circle | Square = pydantic.Field(discriminator="kind")
        link: pydantic.AnyUrl | None = None
        size: int = pydantic.Field(
            1, json_schema_extra=lambda schema: schema.update(allOf=[{"type": schema.pop("type")}])
        )

    class Odd(pydantic.BaseModel):
        corners: tuple[int, int]
        both: int = pydantic.Field(json_schema_extra={"allOf": [{"minimum": 1}, {"maximum": 9}]})

    class Chain(pydantic.BaseModel):
        name: str
        next: Chain | None = None


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_keywords_strict_mode_rewrites() -> None:
    schema = strict_schema(Shape)
    figure = schema["properties"]["figure"]
    assert figure["anyOf"] == [{"$ref": "#/$defs/Circle"}, {"$ref": "#/$defs/Square"}]
    assert "oneOf" not in figure and "discriminator" not in figure
    assert schema["properties"]["link"]["anyOf"][0]["description"] == "minLength=1, format=uri"
    assert schema["properties"]["size"] == {"type": ["integer", "null"], "title": "Size"}
    shape = parse_structured('{"figure": {"kind": "square", "side": null}, "link": null, "size": 3}', Shape)
    assert shape == Shape(figure=Square(kind="square"), size=3)
    with pytest.raises(StructuredOutputError, match=r"\$\.figure\.circle\.radius: Field required"):
        parse_structured('{"figure": {"kind": "circle"}}', Shape)


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_pydantic_keywords_strict_mode_refuses() -> None:
    assert response_format_for(Odd)["json_schema"]["strict"] is False
    with pytest.raises(InvalidRequestError, match=r"\$\.corners: prefixItems; \$\.both: allOf"):
        json_schema(Odd, strict=True)


@pytest.mark.skipif(pydantic is None, reason=needs_pydantic)
def test_recursive_pydantic_model() -> None:
    schema = strict_schema(Chain)
    assert schema["properties"]["next"] == {"anyOf": [{"$ref": "#/$defs/Chain"}, {"type": "null"}]}
    assert parse_structured('{"name": "a", "next": {"name": "b", "next": null}}', Chain) == Chain(
        name="a", next=Chain(name="b")
    )


def test_schemas_handed_out_are_the_callers_to_change() -> None:
    # Documents are built once per type and shared: every caller gets its own copy.
    json_schema(Task)["properties"].clear()
    response_format_for(list[Task])["json_schema"]["schema"]["properties"].clear()
    object_schema([FieldSpec("a", Task)])["properties"].clear()
    assert list(json_schema(Task)["properties"]) == ["title", "priority", "tags", "estimate"]
    assert list(response_format_for(list[Task])["json_schema"]["schema"]["properties"]) == [RESPONSE_KEY]
    assert list(object_schema([FieldSpec("a", Task)])["properties"]) == ["a"]
