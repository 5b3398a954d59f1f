"""Structured output: JSON schemas from Python types, and replies read back into attrs classes.

    @attrs.frozen
    class Weather:
        city: str
        celsius: float

    reply = await client.chat("Weather in Oslo, as JSON", response_format=response_format_for(Weather))
    weather = parse_structured(reply, Weather)  # or: await client.chat_structured(..., Weather)

Types map to JSON schema as ``str`` -> string, ``int`` -> integer, ``float`` -> number,
``bool`` -> boolean, ``list[X]``/``tuple[X, ...]``/``set[X]`` -> array, ``dict[str, X]`` ->
object, ``Literal[...]`` and ``Enum`` -> enum, ``X | None`` -> nullable, ``X | Y`` -> anyOf,
attrs classes -> objects (``Annotated[X, "text"]`` or ``attrs.field(metadata={"description":
...})`` add a description). Replies are checked against the schema first (so ``"5"`` is no
``int`` and ``"yes"`` no ``bool``) and then built with a ``cattrs.Converter``.
"""

from __future__ import annotations

import collections.abc
import enum
import re
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.strategies import configure_union_passthrough

from ._json import dumps, loads
from .errors import InvalidRequestError, StructuredOutputError
from .messages import ChatResponse

__all__ = ["json_schema", "parse_structured", "response_format_for", "structure_value"]

T = TypeVar("T")

_PRIMITIVES: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_OBJECTS = (dict, collections.abc.Mapping)
_SUPPORTED = (
    "str, int, float, bool, None, Any, list[X], tuple[X, ...], set[X], dict[str, X], Literal[...], "
    "Enum, X | None, X | Y, Annotated[X, 'description'] and attrs classes"
)
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```$", re.DOTALL)

_converter = cattrs.Converter()
configure_union_passthrough(Union[str, int, float, bool, None], _converter)  # noqa: UP007


# --- types -> JSON schema ------------------------------------------------------------------


def json_schema(tp: Any, *, strict: bool = False) -> dict[str, Any]:
    """The JSON schema of a type annotation.

    With ``strict`` (OpenAI structured outputs) every object property is listed as
    required and no defaults are given; otherwise fields with defaults are optional.
    Raises :class:`InvalidRequestError` for a type it cannot describe.
    """
    return _schema(tp, strict, ())


def _schema(tp: Any, strict: bool, seen: tuple[type, ...]) -> dict[str, Any]:
    schema: dict[str, Any]
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        schema = _schema(args[0], strict, seen)
        text = next((item for item in args[1:] if isinstance(item, str)), None)
        return {**schema, "description": text} if text else schema
    if tp is Any or tp is object:
        return {}
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if origin is Literal:
        return _enum_schema(list(args), tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([member.value for member in tp], tp)
    if origin in (Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            inner = _schema(options[0], strict, seen)
            return _nullable(inner) if len(options) < len(args) else inner
        schemas = [_schema(option, strict, seen) for option in options]
        return {"anyOf": schemas + ([{"type": "null"}] if len(options) < len(args) else [])}
    if tp in _ARRAYS or origin in _ARRAYS:
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            raise InvalidRequestError(f"cannot describe the fixed-length tuple {tp!r}: use tuple[X, ...] or a class")
        return {"type": "array", "items": _schema(args[0], strict, seen) if args else {}}
    if tp in _OBJECTS or origin in _OBJECTS:
        if args and args[0] is not str:
            raise InvalidRequestError(f"cannot describe {tp!r}: JSON object keys are strings, use dict[str, X]")
        schema = {"type": "object"}
        if args and args[1] is not Any:
            schema["additionalProperties"] = _schema(args[1], strict, seen)
        return schema
    if isinstance(tp, type) and attrs.has(tp):
        if tp in seen:
            raise InvalidRequestError(f"cannot describe the recursive class {tp.__qualname__} as JSON schema")
        return _class_schema(tp, strict, (*seen, tp))
    raise InvalidRequestError(f"cannot describe {tp!r} as JSON schema; supported: {_SUPPORTED}")


def _enum_schema(values: list[Any], tp: Any) -> dict[str, Any]:
    kinds = set()
    for value in values:
        if value is not None and type(value) not in _PRIMITIVES:
            raise InvalidRequestError(f"{tp!r}: enum values must be str, int, float, bool or None, not {value!r}")
        kinds.add("null" if value is None else _PRIMITIVES[type(value)])
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        return schema  # "anything" already allows null
    if isinstance(schema.get("type"), str) and "anyOf" not in schema:
        nullable = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def _hints(owner: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except (NameError, TypeError) as exc:
        name = getattr(owner, "__qualname__", repr(owner))
        raise InvalidRequestError(f"cannot resolve the type annotations of {name}: {exc}") from None


def _class_schema(cls: type, strict: bool, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        prop = _schema(hints.get(field.name, field.type if field.type is not None else Any), strict, seen)
        description = field.metadata.get("description")
        if isinstance(description, str):
            prop = {**prop, "description": description}
        if strict or field.default is attrs.NOTHING:
            required.append(field.name)
        elif _is_plain(field.default):
            prop = {**prop, "default": field.default}
        properties[field.name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    doc = cls.__dict__.get("__doc__")
    if isinstance(doc, str) and doc.strip():
        schema["description"] = doc.strip().split("\n\n")[0].replace("\n", " ")
    return schema


def _is_plain(value: Any) -> bool:
    return value is None or type(value) in _PRIMITIVES


def response_format_for(cls: type, *, name: str | None = None, strict: bool = True) -> dict[str, Any]:
    """The ``response_format`` asking the model for JSON shaped like the attrs class ``cls``:
    ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``."""
    if not (isinstance(cls, type) and attrs.has(cls)):
        raise InvalidRequestError(f"response_format_for() takes an attrs class, not {cls!r}")
    name = name or cls.__name__
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise InvalidRequestError(f"schema name {name!r} must be 1-64 letters, digits, '_' or '-'")
    schema = json_schema(cls, strict=strict)
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
    return isinstance(value, checks[kind])


def _text(value: Any) -> str:
    try:
        return dumps(value).decode()
    except InvalidRequestError:  # NaN and the like
        return repr(value)


def _show(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    """Add to ``problems`` where ``value`` breaks ``schema`` (unknown object keys are allowed)."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            trial: list[str] = []
            _check(value, option, path, trial)
            if not trial:
                return
        problems.append(f"{path}: {_show(value)} matches none of the allowed types")
        return
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, kind) for kind in names):
            problems.append(f"{path}: expected {' or '.join(names)}, got {_show(value)}")
            return
    if "enum" in schema and not any(value == item and type(value) is type(item) for item in schema["enum"]):
        problems.append(f"{path}: expected one of {_show(schema['enum'])}, got {_show(value)}")
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems.extend(f"{path}: missing key {key!r}" for key in schema.get("required", ()) if key not in value)
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{path}.{key}", problems)
            elif isinstance(extra, dict):
                _check(item, extra, f"{path}.{key}", problems)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", problems)


def _fit(value: Any, tp: Any) -> Any:
    """``value`` (decoded JSON) as ``tp``; raises ``ValueError`` listing what does not fit."""
    problems: list[str] = []
    _check(value, json_schema(tp), "$", problems)
    if problems:
        raise ValueError("; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))
    try:
        return _converter.structure(value, tp)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc))) from None
    except (cattrs.StructureHandlerNotFoundError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None  # e.g. an attrs validator said no


def structure_value(value: Any, tp: type[T]) -> T:
    """Decoded JSON ``value`` as an instance of ``tp``, checked against ``json_schema(tp)``.

    Raises :class:`StructuredOutputError` naming each place that does not fit.
    """
    try:
        return typing.cast(T, _fit(value, tp))
    except ValueError as exc:
        raise StructuredOutputError(f"the value does not fit {_name(tp)}: {exc}", text=_text(value)) from None


def _name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def parse_structured(reply: ChatResponse | str, cls: type[T]) -> T:
    """Read a reply (a :class:`ChatResponse` or its text) as JSON shaped like ``cls``.

    A Markdown code fence around the JSON is tolerated; unknown keys are ignored.
    Raises :class:`StructuredOutputError` (``.text`` holds the whole reply) when the
    text is not JSON or does not fit ``cls``.
    """
    if isinstance(reply, ChatResponse):
        text, request_id, finish = reply.content, reply.request_id, reply.finish_reason
    elif isinstance(reply, str):
        text, request_id, finish = reply, None, None
    else:
        raise InvalidRequestError(f"parse_structured() takes a ChatResponse or a string, not {type(reply).__name__}")
    json_schema(cls)  # an unsupported type is the caller's mistake, not the reply's
    cut = " (the reply was cut off: finish_reason is 'length', raise max_tokens)" if finish == "length" else ""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise StructuredOutputError(f"the reply is empty, expected JSON for {_name(cls)}{cut}", request_id=request_id)
    try:
        value = loads(body)
    except ValueError as exc:
        raise StructuredOutputError(
            f"the reply is not valid JSON for {_name(cls)} ({exc}){cut}", text=text, request_id=request_id
        ) from None
    try:
        return typing.cast(T, _fit(value, cls))
    except ValueError as exc:
        raise StructuredOutputError(
            f"the reply does not fit {_name(cls)}: {exc}{cut}", text=text, request_id=request_id
        ) from None
