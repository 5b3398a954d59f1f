"""Types in every schema style (attrs, dataclass, TypedDict, pydantic, typing annotations),
shared by the structured-output and tool tests, and a checker of OpenAI's strict-mode rules.

Annotations here are strings (``from __future__ import annotations``), the harder case:
on Python 3.11 ``TypedDict.__required_keys__`` ignores ``NotRequired`` written that way.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

import attrs

try:
    import pydantic
except ImportError:  # pydantic is optional: its cases are skipped
    pydantic = None  # type: ignore[assignment]

needs_pydantic = "pydantic is not installed"


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@attrs.frozen
class Task:
    """A task to do.

    Second paragraph, not part of the description.
    """

    title: str
    priority: Priority = Priority.LOW
    tags: list[str] = attrs.Factory(list)
    estimate: float | None = attrs.field(default=None, metadata={"description": "hours"})


@dataclasses.dataclass
class LineItem:
    sku: str
    quantity: int = 1


@dataclasses.dataclass
class Invoice:
    """An invoice."""

    number: str
    items: list[LineItem]
    issued: datetime.date
    paid: bool = False
    note: Annotated[str | None, "anything else"] = dataclasses.field(default=None, metadata={"unrelated": 1})


@dataclasses.dataclass
class Positive:
    value: int

    def __post_init__(self) -> None:
        if self.value <= 0:
            raise ValueError("value must be positive")


class Movie(TypedDict, total=False):
    """A movie."""

    title: Required[str]
    year: int
    genres: NotRequired[list[Literal["drama", "comedy"]]]


class Address(TypedDict):
    street: str
    city: NotRequired[Annotated[str, "the city, if known"]]


@attrs.frozen
class Tree:
    label: str
    children: list[Tree] = attrs.Factory(list)


if pydantic is not None:

    class Person(pydantic.BaseModel):
        """A person."""

        name: str = pydantic.Field(description="full name", max_length=40)
        age: int | None = None
        items: list[LineItem] = []

        @pydantic.field_validator("name")
        @classmethod
        def _no_digits(cls, value: str) -> str:
            if any(char.isdigit() for char in value):
                raise ValueError("a name has no digits")
            return value

    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        a: int

    @dataclasses.dataclass
    class Team:
        lead: Person
        members: list[Person] = dataclasses.field(default_factory=list)

    class Numbers(pydantic.RootModel[list[int]]):
        pass


# --- OpenAI strict mode ---------------------------------------------------------------------

_TYPED = ("type", "anyOf", "$ref", "enum", "const")
_FORBIDDEN = {
    "default",
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "prefixItems",
    "discriminator",
    "minLength",
    "maxLength",
    "uniqueItems",
    "patternProperties",
    "minProperties",
    "maxProperties",
}
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}


def assert_strict(schema: dict[str, Any]) -> None:
    """Fail unless ``schema`` keeps OpenAI's strict structured-output rules (root an object,
    every object closed with every property required, a type on every node, no keyword
    strict mode rejects, ``$ref`` alone and resolvable)."""
    assert schema.get("type") == "object", schema
    defs = schema.get("$defs", {})

    def check(node: Any, where: str) -> None:
        assert isinstance(node, dict), where
        assert not (_FORBIDDEN & node.keys()), (where, _FORBIDDEN & node.keys())
        assert any(key in node for key in _TYPED), (where, node)
        if "$ref" in node:
            assert set(node) == {"$ref"}, (where, node)
            assert node["$ref"] == "#" or node["$ref"].removeprefix("#/$defs/") in defs, (where, node)
        if "format" in node:
            assert node["format"] in _FORMATS, where
        kinds = node.get("type")
        if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
            assert isinstance(node.get("properties"), dict), where
            assert node["required"] == list(node["properties"]), where
            assert node["additionalProperties"] is False, where
            for name, prop in node["properties"].items():
                check(prop, f"{where}.{name}")
        if "items" in node:
            check(node["items"], f"{where}[]")
        for option in node.get("anyOf", ()):
            check(option, f"{where}|")

    check({key: value for key, value in schema.items() if key != "$defs"}, "$")
    for name, node in defs.items():
        check(node, f"$defs.{name}")
