"""Structured output: JSON schemas from Python types, and replies read back into those types.

    @dataclass          # or @attrs.frozen, a TypedDict, a pydantic model, list[int], Literal[...]
    class Weather:
        city: str
        celsius: float

    weather = await client.chat_structured("Weather in Oslo, as JSON", Weather)  # a Weather
    # or by hand:
    reply = await client.chat("Weather in Oslo?", response_format=response_format_for(Weather))
    weather = parse_structured(reply, Weather)

Schema styles
    * **attrs classes and dataclasses**: one property per ``__init__`` field; a field with a
      default is optional; ``metadata={"description": ...}`` or ``Annotated[X, "text"]``
      describes a field, the first paragraph of the class docstring the object. Parsed with
      cattrs, so validators and ``__post_init__`` run; recursive classes are allowed.
    * **TypedDict**: ``total=False``, ``Required[X]`` and ``NotRequired[X]`` say which keys are
      optional. Parsed into a plain ``dict`` holding the declared keys only.
    * **pydantic v2 models** (when pydantic is installed; azml_chat never imports it): the
      schema is ``model_json_schema()``, and replies are read with ``model_validate``, so the
      model's own validators and coercions have the last word.
    * **typing annotations**: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``,
      ``list[X]``/``tuple[X, ...]``/``set[X]``/``Sequence[X]`` (array), ``dict[str, X]``/
      ``Mapping[str, X]`` (object), ``Literal[...]`` and ``Enum`` (enum), ``X | None``
      (nullable), ``X | Y`` (anyOf), ``Annotated[X, "text"]`` (a description; an object with a
      ``description`` string, such as ``pydantic.Field(description=...)``, works too),
      ``NewType``, and ``datetime``/``date``/``time``/``UUID`` (strings with a ``format``).
      Any of these may be nested in the classes above and the other way round.

Strict mode (OpenAI structured outputs, ``"strict": true``)
    :func:`json_schema` with ``strict=True`` and :func:`response_format_for` rewrite the
    schema the way openai-python's ``to_strict_json_schema`` and pydantic-ai's OpenAI
    transformer do:

    1. every object lists all its properties in ``required`` and has
       ``"additionalProperties": false``;
    2. a property that was optional becomes nullable (``"type": ["integer", "null"]`` or
       ``anyOf [..., {"type": "null"}]``), and a ``null`` in a reply for such a property means
       "absent": the field's default is used (for any style, strict or not);
    3. ``default`` and ``discriminator`` are dropped, ``oneOf`` becomes ``anyOf``, a one-entry
       ``allOf`` is merged into its parent, and a ``$ref`` with sibling keys (a description)
       moves into a one-entry ``anyOf``;
    4. constraints strict mode cannot enforce (``minLength``, ``maxLength``, ``uniqueItems``,
       ``minProperties``, ``maxProperties``, ``minContains``, ``maxContains``, a ``format``
       other than date-time/time/date/duration/email/hostname/ipv4/ipv6/uuid) move into the
       description; they are still checked when the reply is parsed;
    5. what strict mode cannot express at all makes the type non-strict: a free-form object
       (``dict[str, X]``, ``Mapping``, an object allowing extra keys), a value of any type
       (``Any``, ``object``), positional tuples (``prefixItems``), ``not``, ``if``/``then``/
       ``else``, a many-entry ``allOf``. :func:`response_format_for` then sends
       ``"strict": false`` (or raises if ``strict=True`` was asked for);
    6. the root of a response format must be an object: any other type (``list[int]``,
       ``Literal[...]``, ``dict[str, X]``, a pydantic ``RootModel``) is wrapped as
       ``{"response": <value>}``, as the OpenAI Agents SDK does; :func:`parse_structured`
       unwraps it.

Replies are checked against the schema before anything is built (so ``"5"`` is no ``int``
and ``"yes"`` no ``bool``; pydantic models are left to pydantic), unknown keys are ignored,
and every place that does not fit is named in the :class:`StructuredOutputError`.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import datetime
import enum
import functools
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, Required, TypeVar, Union, get_args, get_origin, overload

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ClassValidationError, IterableValidationError, IterableValidationNote

from ._json import dumps, loads_exact
from .errors import InvalidRequestError, StructuredOutputError
from .messages import ChatResponse

__all__ = [
    "RESPONSE_KEY",
    "FieldSpec",
    "json_schema",
    "object_schema",
    "parse_structured",
    "response_format_for",
    "structure_fields",
    "structure_value",
    "unstructure_value",
]

T = TypeVar("T")

#: The key a response format wraps a non-object type in: ``{"response": [1, 2]}`` for ``list[int]``.
RESPONSE_KEY = "response"

_PRIMITIVES: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_FORMATS: dict[Any, str] = {
    datetime.datetime: "date-time",
    datetime.date: "date",
    datetime.time: "time",
    uuid.UUID: "uuid",
}
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set, collections.abc.MutableSequence)
_OBJECTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_SUPPORTED = (
    "str, int, float, bool, None, Any, list[X], tuple[X, ...], set[X], dict[str, X], Literal[...], Enum, "
    "X | None, X | Y, Annotated[X, 'description'], NewType, datetime, date, time, UUID, attrs classes, "
    "dataclasses, TypedDicts and pydantic models"
)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```$", re.DOTALL)
# Strict mode: keywords it cannot enforce (moved into the description) and ones it cannot express.
_CONSTRAINTS = ("minLength", "maxLength", "uniqueItems", "minProperties", "maxProperties", "minContains", "maxContains")
_STRICT_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_INEXPRESSIBLE = ("prefixItems", "not", "if", "then", "else", "patternProperties", "propertyNames", "contains")
_TYPED_KEYS = ("type", "anyOf", "$ref", "enum", "const")


# --- what kind of type is it ---------------------------------------------------------------


def _is_pydantic_model(tp: Any) -> bool:
    """A pydantic v2 model class, recognised by its methods so pydantic is never imported."""
    return (
        isinstance(tp, type)
        and callable(getattr(tp, "model_json_schema", None))
        and callable(getattr(tp, "model_validate", None))
    )


def _is_typeddict(tp: Any) -> bool:
    # By shape, so typing_extensions.TypedDict counts too (typing.is_typeddict misses it on 3.11).
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


@attrs.frozen
class FieldSpec:
    """One property of a JSON object: a class field, a TypedDict key or a function parameter.

    ``default`` (``attrs.NOTHING`` for none) is shown in non-strict schemas when it is a plain
    JSON value or an Enum of one; ``description`` wins over one given by ``Annotated``.
    """

    name: str
    type: Any
    required: bool = True
    # attrs.NOTHING as a plain default would make the field mandatory, hence the factory.
    default: Any = attrs.field(factory=lambda: attrs.NOTHING)
    description: str | None = None


def _hints(owner: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except (NameError, TypeError) as exc:
        name = getattr(owner, "__qualname__", repr(owner))
        raise InvalidRequestError(f"cannot resolve the type annotations of {name}: {exc}") from None


def _unqualify(hint: Any) -> tuple[Any, bool | None]:
    """A TypedDict key's type without ``Required``/``NotRequired``/``ReadOnly``, and what they said."""
    required: bool | None = None
    extras: list[Any] = []
    while True:
        origin = get_origin(hint)
        if origin is Required or origin is NotRequired:
            required = origin is Required
            hint = get_args(hint)[0]
        elif getattr(origin, "_name", None) == "ReadOnly":
            hint = get_args(hint)[0]
        elif origin is Annotated and get_origin(get_args(hint)[0]) in (Required, NotRequired):
            extras.extend(hint.__metadata__)
            hint = get_args(hint)[0]
        else:
            break
    return (Annotated[(hint, *extras)] if extras else hint), required


@functools.lru_cache(maxsize=256)
def _typeddict_keys(tp: Any) -> dict[str, tuple[Any, bool]]:
    keys: dict[str, tuple[Any, bool]] = {}
    required_keys: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
    for name, hint in _hints(tp).items():
        # The wrapper decides; __required_keys__ is wrong on 3.11 when annotations are strings.
        inner, required = _unqualify(hint)
        keys[name] = (inner, name in required_keys if required is None else required)
    return keys


def _class_description(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return None  # the signature dataclasses writes when there is no docstring
    return " ".join(doc.strip().split("\n\n")[0].split())


def _record_fields(tp: Any) -> list[FieldSpec] | None:
    """The fields of an attrs class, dataclass or TypedDict (``None`` for anything else)."""
    if not isinstance(tp, type):
        return None
    if attrs.has(tp):
        hints = _hints(tp)
        return [
            FieldSpec(
                field.name,
                hints.get(field.name, field.type if field.type is not None else Any),
                required=field.default is attrs.NOTHING,
                default=field.default,
                description=_text_of(field.metadata.get("description")),
            )
            for field in attrs.fields(tp)
            if field.init
        ]
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        specs = []
        for field in dataclasses.fields(tp):
            if not field.init:
                continue
            missing = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            default = attrs.NOTHING if field.default is dataclasses.MISSING else field.default
            description = _text_of(field.metadata.get("description"))
            specs.append(FieldSpec(field.name, hints.get(field.name, Any), missing, default, description))
        return specs
    if _is_typeddict(tp):
        return [FieldSpec(name, hint, required) for name, (hint, required) in _typeddict_keys(tp).items()]
    return None


def _text_of(item: Any) -> str | None:
    """A description from ``Annotated`` metadata or field metadata: a string, or an object's
    ``description`` (pydantic ``Field``) or ``documentation`` (``typing_extensions.Doc``)."""
    for text in (item, getattr(item, "description", None), getattr(item, "documentation", None)):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def _json_default(value: Any) -> Any:
    if value is attrs.NOTHING:  # no default (and itself an Enum member, so checked first)
        return value
    if isinstance(value, enum.Enum):
        value = value.value
    return value if value is None or type(value) in _PRIMITIVES else attrs.NOTHING


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


# --- types -> JSON schema ------------------------------------------------------------------


class _Builder:
    """Builds one schema document; classes that refer to themselves and pydantic models go
    into ``$defs``, everything else is inlined."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self.names: dict[Any, str] = {}
        self.building: list[Any] = []
        self.recursive: set[Any] = set()
        self.lax: set[str] = set()  # defs that pydantic validates: parsing only prunes there

    def schema(self, tp: Any) -> dict[str, Any]:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            schema = self.schema(args[0])
            text = next((text for text in map(_text_of, args[1:]) if text), None)
            return {**schema, "description": text} if text else schema
        if tp is Any or tp is object:
            return {}
        if isinstance(tp, typing.NewType):
            return self.schema(tp.__supertype__)
        if isinstance(tp, type) and tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        if _is_format(tp):
            return {"type": "string", "format": _FORMATS[tp]}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if origin is Literal:
            return _enum_schema(list(args), tp)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_schema([member.value for member in tp], tp)
        if origin in (Union, types.UnionType):
            return self._union(args)
        if tp in _ARRAYS or origin in _ARRAYS:
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                raise InvalidRequestError(
                    f"cannot describe the fixed-length tuple {tp!r}: use tuple[X, ...] or a class"
                )
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if tp in _OBJECTS or origin in _OBJECTS:
            if args and args[0] is not str:
                raise InvalidRequestError(f"cannot describe {tp!r}: JSON object keys are strings, use dict[str, X]")
            if args and args[1] is not Any:
                return {"type": "object", "additionalProperties": self.schema(args[1])}
            return {"type": "object"}
        if _is_pydantic_model(tp):
            return self._pydantic(tp)
        fields = _record_fields(tp)
        if fields is not None:
            return self._class(tp, fields)
        raise InvalidRequestError(f"cannot describe {tp!r} as JSON schema; supported: {_SUPPORTED}")

    def _union(self, args: tuple[Any, ...]) -> dict[str, Any]:
        options = [arg for arg in args if arg is not type(None) and arg is not None]
        nullable = len(options) < len(args)
        if len(options) == 1:
            inner = self.schema(options[0])
            return _nullable(inner) if nullable else inner
        return {"anyOf": [self.schema(option) for option in options] + ([{"type": "null"}] if nullable else [])}

    def _name(self, tp: Any) -> str:
        if tp not in self.names:
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", getattr(tp, "__name__", "Model"))
            taken = set(self.names.values()) | set(self.defs)
            name, count = base, 1
            while name in taken:
                count += 1
                name = f"{base}{count}"
            self.names[tp] = name
        return self.names[tp]

    def _class(self, cls: type, fields: list[FieldSpec]) -> dict[str, Any]:
        if cls in self.building:
            self.recursive.add(cls)
            return {"$ref": f"#/$defs/{self._name(cls)}"}
        self.building.append(cls)
        try:
            schema = self.record(fields, _class_description(cls), owner=cls.__qualname__)
        finally:
            self.building.pop()
        if cls in self.recursive:
            self.defs[self._name(cls)] = schema
            return {"$ref": f"#/$defs/{self._name(cls)}"}
        return schema

    def record(self, fields: Sequence[FieldSpec], description: str | None, owner: str = "") -> dict[str, Any]:
        """An object schema with one property per field."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in fields:
            try:
                prop = self.schema(field.type)
            except InvalidRequestError as exc:
                where = f"{owner}.{field.name}" if owner else f"property {field.name!r}"
                raise InvalidRequestError(f"{where}: {exc.message}") from None
            if field.description:
                prop = {**prop, "description": field.description}
            if field.required:
                required.append(field.name)
            elif _json_default(field.default) is not attrs.NOTHING:
                prop = {**prop, "default": _json_default(field.default)}
            properties[field.name] = prop
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        if description:
            schema["description"] = description
        return schema

    def _pydantic(self, model: type) -> dict[str, Any]:
        if model not in self.names:
            raw = dict(model.model_json_schema(ref_template="#/$defs/{model}"))  # type: ignore[attr-defined]
            for name, schema in raw.pop("$defs", {}).items():
                self._add_def(name, schema)
            ref = raw.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and len(raw) == 1:
                self.names[model] = ref.removeprefix("#/$defs/")  # a recursive model is its own def
            else:
                self._add_def(self._name(model), raw)
        return {"$ref": f"#/$defs/{self.names[model]}"}

    def _add_def(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.defs and self.defs[name] != schema:
            raise InvalidRequestError(f"two different types are both named {name!r} in one schema: rename one")
        self.defs[name] = schema
        self.lax.add(name)

    def document(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` as a whole document: a root ``$ref`` inlined, the ``$defs`` it uses attached."""
        root = _resolve_root(schema, self.defs)
        used = _used_defs(root, self.defs)
        return {**root, "$defs": {name: self.defs[name] for name in self.defs if name in used}} if used else root


def _resolve_root(schema: dict[str, Any], defs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in defs:
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return {**defs[ref.removeprefix("#/$defs/")], **rest}
    return schema


def _used_defs(root: dict[str, Any], defs: Mapping[str, dict[str, Any]]) -> set[str]:
    used: set[str] = set()
    pending = [root]
    while pending:
        for ref in _refs(pending.pop()):
            name = ref.removeprefix("#/$defs/")
            if name in defs and name not in used:
                used.add(name)
                pending.append(defs[name])
    return used


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for key, value in node.items() if key != "$defs" for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _enum_schema(values: list[Any], tp: Any) -> dict[str, Any]:
    kinds = set()
    for value in values:
        if value is not None and type(value) not in _PRIMITIVES:
            raise InvalidRequestError(f"{tp!r}: enum values must be str, int, float, bool or None, not {value!r}")
        kinds.add("null" if value is None else _PRIMITIVES[type(value)])
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema or _takes_null(schema, {}):
        return schema
    if isinstance(schema.get("type"), str) and not {"anyOf", "$ref", "allOf", "oneOf"} & schema.keys():
        nullable = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    inner = {key: value for key, value in schema.items() if key != "description"}
    outer = {"description": schema["description"]} if "description" in schema else {}
    return {"anyOf": [inner, {"type": "null"}], **outer}


def _takes_null(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 0) -> bool:
    """Whether ``schema`` accepts ``null`` (following ``$ref`` into ``defs``)."""
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or not schema:
        return True
    if None in schema.get("enum", ()) or ("const" in schema and schema["const"] is None):
        return True
    if any(_takes_null(option, defs, depth) for option in schema.get("anyOf", schema.get("oneOf", ()))):
        return True
    ref = schema.get("$ref")
    target = defs.get(ref.removeprefix("#/$defs/")) if isinstance(ref, str) else None
    return target is not None and depth < 20 and _takes_null(target, defs, depth + 1)


@attrs.frozen
class _Document:
    """A schema document, built once per type and shared (so never handed out uncopied)."""

    schema: dict[str, Any]  # non-strict
    lax_defs: frozenset[str]  # the defs pydantic validates
    strict: dict[str, Any]  # the strict-mode rewrite, usable when blockers is empty
    blockers: tuple[str, ...]  # why strict mode cannot express the schema

    @classmethod
    def of(cls, builder: _Builder, schema: dict[str, Any]) -> _Document:
        schema = builder.document(schema)
        strict, blockers = _strict(schema)
        return cls(schema, frozenset(builder.lax), strict, tuple(blockers))


def _cached(build: Callable[[Any], _Document]) -> Callable[[Any], _Document]:
    """``build`` remembering its last 256 answers (by key; an unhashable key is built each time):
    a reply is read many times as one type, and pydantic's schema costs a millisecond."""
    remembered = functools.lru_cache(maxsize=256)(build)

    def lookup(key: Any) -> _Document:
        try:
            hash(key)
        except TypeError:
            return build(key)
        return remembered(key)

    return lookup


@_cached
def _document(tp: Any) -> _Document:
    """The schema document of a type."""
    builder = _Builder()
    return _Document.of(builder, builder.schema(tp))


@_cached
def _fields_document(fields: tuple[FieldSpec, ...]) -> _Document:
    """The schema document of an object with these fields."""
    builder = _Builder()
    return _Document.of(builder, builder.record(fields, None))


@_cached
def _response_document(tp: Any) -> _Document:
    """The schema document of a response format for ``tp``: an object, wrapping if need be."""
    schema = _document(tp).schema
    if _is_object(schema):
        return _document(tp)
    defs = schema.get("$defs")
    wrapper = {
        "type": "object",
        "properties": {RESPONSE_KEY: {key: value for key, value in schema.items() if key != "$defs"}},
        "required": [RESPONSE_KEY],
        "additionalProperties": False,
    }
    strict, blockers = _strict({**wrapper, "$defs": defs} if defs else wrapper)
    return _Document({**wrapper, "$defs": defs} if defs else wrapper, _document(tp).lax_defs, strict, tuple(blockers))


def _copy(node: Any) -> Any:
    """A deep copy of JSON data (a schema handed to a caller, who may change it)."""
    if isinstance(node, dict):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(item) for item in node]
    return node


def _strict(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``schema`` rewritten for strict mode (rules in the module docstring), and the reasons it
    cannot be strict at all (an empty list when it can)."""
    blockers: list[str] = []
    defs = schema.get("$defs", {})
    strict = _strict_node(schema, "$", blockers, defs)
    if defs:
        strict["$defs"] = {name: _strict_node(node, f"$defs.{name}", blockers, defs) for name, node in defs.items()}
    return strict, blockers


def _strict_node(node: dict[str, Any], where: str, blockers: list[str], defs: Mapping[str, Any]) -> dict[str, Any]:
    node = {key: value for key, value in node.items() if key not in ("default", "discriminator", "$defs")}
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1 and isinstance(all_of[0], dict):
            del node["allOf"]
            node = {**all_of[0], **node}
        else:
            blockers.append(f"{where}: allOf")
    blockers.extend(f"{where}: {key}" for key in _INEXPRESSIBLE if key in node)
    notes = [f"{key}={node.pop(key)}" for key in _CONSTRAINTS if key in node]
    if isinstance(node.get("format"), str) and node["format"] not in _STRICT_FORMATS:
        notes.append(f"format={node.pop('format')}")
    if notes:
        text = ", ".join(notes)
        node["description"] = f"{node['description']} ({text})" if node.get("description") else text
    if "$ref" in node and len(node) > 1:
        node = {"anyOf": [{"$ref": node.pop("$ref")}], **node}
    if not any(key in node for key in _TYPED_KEYS):
        blockers.append(f"{where}: a value of any type (Any or object)")
    kinds = node.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        properties = node.get("properties")
        if not isinstance(properties, dict):
            blockers.append(f"{where}: an object with free-form keys (dict[str, X], Mapping)")
        else:
            if node.get("additionalProperties", False) is not False:
                blockers.append(f"{where}: an object that allows extra keys")
            required = set(node.get("required", ()))
            node["properties"] = {
                name: _strict_property(prop, name in required, f"{where}.{name}", blockers, defs)
                for name, prop in properties.items()
            }
            node["required"] = list(properties)
            node["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        node["items"] = _strict_node(node["items"], f"{where}[]", blockers, defs)
    if isinstance(node.get("anyOf"), list):
        node["anyOf"] = [_strict_node(option, where, blockers, defs) for option in node["anyOf"]]
    return node


def _strict_property(
    prop: dict[str, Any], required: bool, where: str, blockers: list[str], defs: Mapping[str, Any]
) -> dict[str, Any]:
    strict = _strict_node(prop, where, blockers, defs)
    return strict if required or _takes_null(strict, defs) else _nullable(strict)


def json_schema(tp: Any, *, strict: bool = False) -> dict[str, Any]:
    """The JSON schema of a type: an attrs class, dataclass, TypedDict, pydantic model or
    ``typing`` annotation (see the module docstring for each style).

    Without ``strict`` optional fields are left out of ``required`` and carry their
    ``default`` when it is a plain JSON value. With ``strict`` the schema follows OpenAI's
    strict-mode rules (every property required, optional ones nullable, no defaults,
    ``additionalProperties: false``). Raises :class:`InvalidRequestError` for a type it
    cannot describe, or, with ``strict``, one strict mode cannot express (``dict[str, X]``,
    ``Any``), naming where.
    """
    document = _document(tp)
    if strict and document.blockers:
        raise InvalidRequestError(
            f"{_type_name(tp)} cannot be described in strict mode: {'; '.join(document.blockers)}"
        )
    return _copy(document.strict if strict else document.schema)  # type: ignore[no-any-return]


def object_schema(
    fields: Sequence[FieldSpec], *, strict: bool = False, description: str | None = None
) -> dict[str, Any]:
    """The JSON schema of an object with the given fields, as :func:`json_schema` builds for a
    class (used for the parameters of function tools).

    Raises :class:`InvalidRequestError` naming the field whose type cannot be described, or,
    with ``strict``, what strict mode cannot express.
    """
    document = _fields_document(tuple(fields))
    if strict and document.blockers:
        raise InvalidRequestError(f"cannot be described in strict mode: {'; '.join(document.blockers)}")
    schema: dict[str, Any] = _copy(document.strict if strict else document.schema)
    if description:
        schema["description"] = description
    return schema


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and isinstance(schema.get("properties"), dict)


def response_format_for(tp: Any, *, name: str | None = None, strict: bool | None = None) -> dict[str, Any]:
    """The ``response_format`` asking the model for JSON shaped like ``tp``:
    ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``.

    ``tp`` is any type :func:`json_schema` takes; a type whose schema is not an object is
    wrapped as ``{"response": ...}`` (:func:`parse_structured` unwraps it). ``strict=None``
    (the default) asks for strict mode when the type allows it and says ``"strict": false``
    otherwise; ``strict=True`` raises :class:`InvalidRequestError` when it does not.
    ``name`` (1-64 letters, digits, ``_`` or ``-``) defaults to the class name, else ``"response"``.
    """
    if name is None:
        name = tp.__name__ if isinstance(tp, type) and _NAME.fullmatch(tp.__name__) else RESPONSE_KEY
    elif not _NAME.fullmatch(name):
        raise InvalidRequestError(f"schema name {name!r} must be 1-64 letters, digits, '_' or '-'")
    document = _response_document(tp)
    if strict and document.blockers:
        raise InvalidRequestError(
            f"{_type_name(tp)} cannot be described in strict mode: {'; '.join(document.blockers)} (use strict=False)"
        )
    strict = strict is not False and not document.blockers
    schema = _copy(document.strict if strict else document.schema)
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


# --- JSON values -> Python objects ---------------------------------------------------------


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "boolean": bool,
        "null": type(None),
        "array": list,
        "object": dict,
    }
    return kind in checks and isinstance(value, checks[kind])


def _text(value: Any) -> str:
    try:
        return dumps(value).decode()
    except InvalidRequestError:  # NaN and the like
        return repr(value)


def _show(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(value: Any, item: Any) -> bool:
    return bool(value == item and type(value) is type(item))


class _Conformer:
    """Checks a decoded JSON value against a schema document and drops the ``null`` of each
    optional property that does not take ``null`` (strict mode's way of saying "absent").

    ``mode`` is "check" (report every misfit), "lax" (inside a pydantic model: only drop the
    nulls, pydantic decides the rest) or "choose" (picking an ``anyOf`` option: check pydantic
    models too, so the option that really fits wins).
    """

    def __init__(self, root: Mapping[str, Any], lax_defs: frozenset[str]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.lax_defs = lax_defs

    def conform(self, value: Any, schema: Mapping[str, Any], path: str, mode: str, problems: list[str]) -> Any:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix("#/$defs/")
            inner = "lax" if mode == "check" and name in self.lax_defs else mode
            value = self.conform(value, self.defs.get(name, {}), path, inner, problems)
        options = schema.get("anyOf", schema.get("oneOf"))
        if isinstance(options, list):
            # First the option that fits on every count, then one pydantic may still accept.
            for trial_mode in ("choose", mode) if mode != "choose" else ("choose",):
                for option in options:
                    trial: list[str] = []
                    fitted = self.conform(value, option, path, trial_mode, trial)
                    if not trial:
                        return fitted
            problems.append(f"{path}: {_show(value)} matches none of the allowed types")
            return value
        for part in schema.get("allOf", ()):
            value = self.conform(value, part, path, mode, problems)
        if mode != "lax" and not self._fits_kind(value, schema, path, problems):
            return value
        if isinstance(value, dict):
            return self._object(value, schema, path, mode, problems)
        items = schema.get("items")
        if isinstance(value, list) and isinstance(items, dict):
            return [self.conform(item, items, f"{path}[{index}]", mode, problems) for index, item in enumerate(value)]
        return value

    def _fits_kind(self, value: Any, schema: Mapping[str, Any], path: str, problems: list[str]) -> bool:
        kinds = schema.get("type")
        if kinds is not None:
            names = [kinds] if isinstance(kinds, str) else list(kinds)
            if not any(_is_type(value, kind) for kind in names):
                problems.append(f"{path}: expected {' or '.join(names)}, got {_show(value)}")
                return False
        if "enum" in schema and not any(_same(value, item) for item in schema["enum"]):
            problems.append(f"{path}: expected one of {_show(schema['enum'])}, got {_show(value)}")
            return False
        if "const" in schema and not _same(value, schema["const"]):  # pydantic's Literal of one value
            problems.append(f"{path}: expected {_show(schema['const'])}, got {_show(value)}")
            return False
        return True

    def _object(
        self, value: dict[str, Any], schema: Mapping[str, Any], path: str, mode: str, problems: list[str]
    ) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = schema.get("required", ())
        extra = schema.get("additionalProperties")
        fitted: dict[str, Any] = {}
        for key, item in value.items():
            prop = properties.get(key)
            if prop is not None:
                if item is None and key not in required and not _takes_null(prop, self.defs):
                    continue  # strict mode's null for an optional field: use the default
                fitted[key] = self.conform(item, prop, f"{path}.{key}", mode, problems)
            elif isinstance(extra, dict):
                fitted[key] = self.conform(item, extra, f"{path}.{key}", mode, problems)
            else:
                fitted[key] = item  # unknown keys: ignored by the classes, seen by pydantic
        if mode != "lax":
            problems.extend(f"{path}: missing key {key!r}" for key in required if key not in fitted)
        return fitted


def _conform(value: Any, tp: Any) -> tuple[Any, list[str]]:
    document = _document(tp)
    problems: list[str] = []
    mode = "lax" if _is_pydantic_model(tp) else "check"
    return _Conformer(document.schema, document.lax_defs).conform(value, document.schema, "$", mode, problems), problems


def _join(problems: list[str]) -> str:
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return "; ".join(problems[:10]) + more


def _failures(exc: BaseException, path: str) -> list[str]:
    """Where and why building a value failed (a validator said no), one line per place."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        noted, plain = exc.group_exceptions()
        lines = []
        for inner, note in noted:
            step = note.index if isinstance(note, IterableValidationNote) else note.name
            lines += _failures(inner, f"{path}[{step}]" if isinstance(step, int) else f"{path}.{step}")
        return lines + [line for inner in plain for line in _failures(inner, path)]
    errors = getattr(exc, "errors", None)
    if isinstance(exc, ValueError) and callable(errors):  # a pydantic ValidationError
        return [
            path
            + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
            + f": {error['msg']}"
            for error in errors()
        ]
    return [f"{path}: {type(exc).__name__}: {exc}"]


def _build(value: Any, tp: Any, path: str = "$") -> Any:
    """``_converter.structure`` with failures as ``ValueError`` naming each place."""
    try:
        return _converter.structure(value, tp)
    except (ValueError, TypeError, KeyError, cattrs.StructureHandlerNotFoundError, ExceptionGroup) as exc:
        raise ValueError(_join(_failures(exc, path))) from None


def _fit(value: Any, tp: Any) -> Any:
    """``value`` (decoded JSON) as ``tp``; raises ``ValueError`` listing what does not fit."""
    fitted, problems = _conform(value, tp)
    if problems:
        raise ValueError(_join(problems))
    return _build(fitted, tp)


def _fits(value: Any, tp: Any) -> bool:
    return not _conform(value, tp)[1]


# cattrs does the building; these hooks add what it lacks or does differently from us.
_converter = cattrs.Converter()


def _structure_union(value: Any, tp: Any) -> Any:
    # The first member the value fits and that builds (a validator may still say no).
    members = get_args(tp)
    if value is None and type(None) in members:
        return None
    fitting = [member for member in members if member is not type(None) and _fits(value, member)]
    for member in fitting[:-1]:
        with contextlib.suppress(Exception):
            return _converter.structure(value, member)
    return _converter.structure(value, fitting[-1])  # the schema check ran already: one fits


def _structure_typeddict(value: Any, tp: Any) -> dict[str, Any]:
    # Our own: cattrs relies on __required_keys__, which is wrong on 3.11 with string annotations.
    built: dict[str, Any] = {}
    errors: list[Exception] = []
    for key, (hint, _) in _typeddict_keys(tp).items():
        if key in value:
            try:
                built[key] = _converter.structure(value[key], hint)
            except Exception as exc:  # grouped below, each with its key's path
                exc.add_note(AttributeValidationNote(f"Structuring typeddict {tp.__qualname__} @ key {key}", key, hint))
                errors.append(exc)
    if errors:
        raise ClassValidationError(f"While structuring {tp.__qualname__}", errors, tp)
    return built


def _structure_iso(value: Any, tp: Any) -> Any:
    return tp(value) if tp is uuid.UUID else tp.fromisoformat(value)


def _is_format(tp: Any) -> bool:
    return isinstance(tp, type) and tp in _FORMATS


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


_converter.register_structure_hook_func(_is_union, _structure_union)
_converter.register_structure_hook_func(_is_typeddict, _structure_typeddict)
_converter.register_structure_hook_func(_is_pydantic_model, lambda value, tp: tp.model_validate(value))
_converter.register_unstructure_hook_func(_is_pydantic_model, lambda value: value.model_dump(mode="json"))
_converter.register_structure_hook_func(_is_format, _structure_iso)
_converter.register_unstructure_hook_func(
    _is_format, lambda value: str(value) if isinstance(value, uuid.UUID) else value.isoformat()
)
_converter.register_structure_hook_func(
    lambda tp: isinstance(tp, typing.NewType), lambda value, tp: _converter.structure(value, tp.__supertype__)
)


def unstructure_value(value: Any) -> Any:
    """``value`` as plain JSON-ready data: attrs instances, dataclasses, pydantic models,
    enums, datetimes and containers of them become dicts, lists, strings and numbers."""
    return _converter.unstructure(value)


@overload
def structure_value(value: Any, tp: type[T]) -> T: ...
@overload
def structure_value(value: Any, tp: Any) -> Any: ...
def structure_value(value: Any, tp: Any) -> Any:
    """Decoded JSON ``value`` as an instance of ``tp``, checked against ``json_schema(tp)``.

    Raises :class:`StructuredOutputError` naming each place that does not fit.
    """
    _document(tp)  # an unsupported type is the caller's mistake, not the value's
    try:
        return _fit(value, tp)
    except ValueError as exc:
        raise StructuredOutputError(f"the value does not fit {_type_name(tp)}: {exc}", text=_text(value)) from None


def structure_fields(value: Mapping[str, Any], fields: Sequence[FieldSpec]) -> dict[str, Any]:
    """The keys of ``value`` that name a field, each built as its field's type, checked
    against :func:`object_schema` (a ``null`` for an optional field that takes no ``None`` is
    left out, so the default applies). Used to turn tool-call arguments into keyword arguments.

    Raises :class:`StructuredOutputError` naming each place that does not fit.
    """
    document = _fields_document(tuple(fields))
    problems: list[str] = []
    conformer = _Conformer(document.schema, document.lax_defs)
    fitted = conformer.conform(dict(value), document.schema, "$", "check", problems)
    built: dict[str, Any] = {}
    for field in fields:
        if not problems and field.name in fitted:
            try:
                built[field.name] = _build(fitted[field.name], field.type, f"$.{field.name}")
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise StructuredOutputError(f"the arguments do not fit: {_join(problems)}", text=_text(value))
    return built


@overload
def parse_structured(reply: ChatResponse | str, tp: type[T]) -> T: ...
@overload
def parse_structured(reply: ChatResponse | str, tp: Any) -> Any: ...
def parse_structured(reply: ChatResponse | str, tp: Any) -> Any:
    """Read a reply (a :class:`ChatResponse` or its text) as JSON shaped like ``tp`` and return
    an instance of it: the attrs class, dataclass or pydantic model, a ``dict`` for a
    TypedDict, or the plain value (``list[int]``, ``Literal[...]``, ...).

    A Markdown code fence around the JSON is tolerated, unknown keys are ignored, and a
    ``{"response": ...}`` wrapper (see :func:`response_format_for`) is taken off. Raises
    :class:`StructuredOutputError` (``.text`` holds the whole reply) when the text is not JSON
    or does not fit ``tp``, and :class:`InvalidRequestError` when ``tp`` is no type it can read.
    """
    if isinstance(reply, ChatResponse):
        text, request_id, finish = reply.content, reply.request_id, reply.finish_reason
    elif isinstance(reply, str):
        text, request_id, finish = reply, None, None
    else:
        raise InvalidRequestError(f"parse_structured() takes a ChatResponse or a string, not {type(reply).__name__}")
    schema = _document(tp).schema  # an unsupported type is the caller's mistake, not the reply's
    cut = " (the reply was cut off: finish_reason is 'length', raise max_tokens)" if finish == "length" else ""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise StructuredOutputError(
            f"the reply is empty, expected JSON for {_type_name(tp)}{cut}", request_id=request_id
        )
    try:
        value = loads_exact(body)  # model-written: integers of any size stay exact
    except ValueError as exc:
        raise StructuredOutputError(
            f"the reply is not valid JSON for {_type_name(tp)} ({exc}){cut}", text=text, request_id=request_id
        ) from None
    wrapped = not _is_object(schema) and isinstance(value, dict) and list(value) == [RESPONSE_KEY]
    if wrapped and (_fits(value[RESPONSE_KEY], tp) or not _fits(value, tp)):
        value = value[RESPONSE_KEY]
    try:
        return _fit(value, tp)
    except ValueError as exc:
        raise StructuredOutputError(
            f"the reply does not fit {_type_name(tp)}: {exc}{cut}", text=text, request_id=request_id
        ) from None
