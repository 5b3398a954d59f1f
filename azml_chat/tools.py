'''Tool calling: OpenAI tool dicts from plain Python functions, and running the calls a model asks for.

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        """Current weather in a city.

        Args:
            city: The city name, e.g. "Oslo".
            unit: Temperature unit.
        """

    reply = await client.chat(messages, tools=[get_weather])
    while reply.tool_calls:
        messages += [reply.message, *execute_tool_calls(reply, [get_weather])]
        reply = await client.chat(messages, tools=[get_weather])

A function's parameters become the JSON schema of the tool: each parameter may be of any
type :func:`azml_chat.structured.json_schema` describes (attrs classes, dataclasses,
TypedDicts, pydantic models, ``typing`` annotations), a parameter with a default is
optional. The docstring's text before its sections is the description, and ``Args:``
(Google style) or ``:param x:`` (Sphinx style) lines describe the parameters.
``tool_schema(fn, strict=True)`` gives a strict tool (OpenAI ``"strict": true``; the rules are
those of :mod:`azml_chat.structured`). When a call is run, its arguments are checked against
the schema and built into the annotated types (a dataclass instance, a pydantic model, ...);
a ``null`` for an optional parameter that takes no ``None`` means "use the default".
'''

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attrs import NOTHING

from ._json import dumps
from .errors import InvalidRequestError, ResponseFormatError, StructuredOutputError
from .messages import ChatResponse, Message, ToolCall
from .structured import FieldSpec, object_schema, structure_fields, unstructure_value

__all__ = [
    "aexecute_tool_calls",
    "execute_tool_calls",
    "parse_docstring",
    "tool_choice_to_wire",
    "tool_schema",
    "tools_to_wire",
]

ToolFunction = Callable[..., Any]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SECTION = re.compile(
    r"(args|arguments|parameters|params|keyword args|keyword arguments|returns?|yields?|raises|"
    r"examples?|notes?|attributes|see also|warnings?|todo)\s*:",
    re.IGNORECASE,
)
_ARG_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_GOOGLE_ITEM = re.compile(r"\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")
_SPHINX_PARAM = re.compile(r":param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)")
_TOOL_SHAPE = '{"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}'


# --- docstrings ----------------------------------------------------------------------------


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description (the text before any section) and the
    parameter descriptions of its ``Args:`` section or ``:param name:`` lines."""
    description: list[str] = []
    params: dict[str, str] = {}
    section = "text"  # "text" (the description), "args", "sphinx" or "other"
    current: str | None = None
    base: int | None = None  # indentation of the entries of an Args: section
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.fullmatch(stripped) if indent == 0 else None
        if header:
            section, current, base = ("args" if header.group(1).lower() in _ARG_SECTIONS else "other"), None, None
            continue
        sphinx = _SPHINX_PARAM.fullmatch(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if stripped.startswith(":") and indent == 0:  # :returns:, :raises X:, :type x: ...
            section, current = "other", None
            continue
        if section == "text":
            description.append(stripped)
        elif section == "args" and stripped:
            base = indent if base is None else base
            item = _GOOGLE_ITEM.fullmatch(stripped) if indent <= base else None
            if item:
                current = item.group(1)
                params[current] = item.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section == "sphinx" and stripped and indent > 0 and current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    paragraphs = " ".join(line or "\n\n" for line in description).split("\n\n")
    text = "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())
    return text, params


# --- functions -> tool dicts ---------------------------------------------------------------


def _hints(fn: Any) -> dict[str, Any]:
    for target in (fn, type(fn).__call__):
        try:
            return typing.get_type_hints(target, include_extras=True)
        except NameError as exc:
            raise InvalidRequestError(f"cannot resolve the type annotations of {fn!r}: {exc}") from None
        except TypeError:
            continue
    return {}


def _name_of(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"cannot use {fn!r} as a tool: a tool name must be 1-64 letters, digits, '_' or '-' "
            "(use a def function, or tool_schema(fn, name=...))"
        )
    return name


def _signature(fn: Any, name: str) -> inspect.Signature:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"cannot read the parameters of tool {name!r}: {exc}") from None
    for param in signature.parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise InvalidRequestError(
                f"tool {name!r}: parameter {param.name!r} is {param.kind.description}; "
                "tools are called with keyword arguments only"
            )
    return signature


def _parameters(fn: Any, name: str) -> list[FieldSpec]:
    hints = _hints(fn)
    _, documented = parse_docstring(inspect.getdoc(fn))
    return [
        FieldSpec(
            param.name,
            hints.get(param.name, Any),
            required=param.default is param.empty,
            default=NOTHING if param.default is param.empty else param.default,
            description=documented.get(param.name),
        )
        for param in _signature(fn, name).parameters.values()
    ]


def tool_schema(
    fn: ToolFunction, *, name: str | None = None, description: str | None = None, strict: bool = False
) -> dict[str, Any]:
    """The OpenAI tool dict of a Python function, from its signature, annotations and docstring.

    With ``strict`` the parameters follow OpenAI's strict-mode rules (see
    :mod:`azml_chat.structured`) and the function says ``"strict": true``; leave it off for
    models that do not know the flag. Raises :class:`InvalidRequestError` if ``fn`` has
    ``*args``/``**kwargs``, a positional-only parameter, an annotation JSON schema cannot
    describe, or (with ``strict``) one strict mode cannot express.
    """
    if not callable(fn):
        raise InvalidRequestError(f"a tool must be a function or a tool dict, not {type(fn).__name__}")
    if name is not None and not _NAME.fullmatch(name):
        raise InvalidRequestError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    name = name or _name_of(fn)
    summary, _ = parse_docstring(inspect.getdoc(fn))
    fields = _parameters(fn, name)
    try:
        parameters = object_schema(fields, strict=strict)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"tool {name!r}: {exc.message}") from None
    function: dict[str, Any] = {"name": name}
    if description or summary:
        function["description"] = description or summary
    function["parameters"] = parameters
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def tools_to_wire(tools: Iterable[Mapping[str, Any] | ToolFunction]) -> list[dict[str, Any]]:
    """The ``tools`` body value: tool dicts are checked and copied, functions described.

    Raises :class:`InvalidRequestError` for anything else, a malformed tool dict or
    two tools with the same name.
    """
    if isinstance(tools, str | bytes | Mapping) or callable(tools) or not isinstance(tools, Iterable):
        raise InvalidRequestError(f"tools must be a list of tool dicts or functions, not {type(tools).__name__}")
    wire: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, Mapping):
            function = tool.get("function")
            if (
                tool.get("type") != "function"
                or not isinstance(function, Mapping)
                or not isinstance(function.get("name"), str)
                or not function["name"]
            ):
                raise InvalidRequestError(f"a tool dict must look like {_TOOL_SHAPE}, got {dict(tool)!r:.120}")
            wire.append(dict(tool))
        else:
            wire.append(tool_schema(tool))
    names = [tool["function"]["name"] for tool in wire]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidRequestError(f"two tools share the name {duplicates[0]!r}: tool names must be unique")
    return wire


def tool_choice_to_wire(choice: Any) -> Any:
    """The ``tool_choice`` body value: a function becomes ``{"type": "function", "function": {"name"}}``;
    strings (``"auto"``, ``"none"``, ``"required"``) and dicts pass through."""
    if isinstance(choice, str | Mapping):
        return choice if isinstance(choice, str) else dict(choice)
    if callable(choice):
        return {"type": "function", "function": {"name": _name_of(choice)}}
    raise InvalidRequestError(f"tool_choice must be 'auto', 'none', 'required', a dict or a function, not {choice!r}")


# --- running tool calls --------------------------------------------------------------------


def _registry(functions: Iterable[Any] | Mapping[str, ToolFunction]) -> dict[str, ToolFunction]:
    if isinstance(functions, Mapping):
        return dict(functions)
    if isinstance(functions, str | bytes) or not isinstance(functions, Iterable):
        raise InvalidRequestError("functions must be a list of functions or a dict of name -> function")
    registry: dict[str, ToolFunction] = {}
    fn: Any
    for fn in functions:
        if not isinstance(fn, Mapping):  # tool dicts have no code to run
            registry[_name_of(fn)] = fn
    return registry


def _bind(call: ToolCall, registry: Mapping[str, ToolFunction]) -> tuple[ToolFunction, dict[str, Any]]:
    """The function a tool call names and its keyword arguments, checked against its annotations."""
    fn = registry.get(call.name)
    if fn is None:
        known = ", ".join(sorted(registry)) or "none"
        raise ResponseFormatError(f"the model called the unknown tool {call.name!r} (known: {known})")
    arguments = call.parsed_arguments()
    if not isinstance(arguments, dict):
        raise StructuredOutputError(
            f"tool call {call.name!r}: the arguments are not a JSON object", text=call.arguments
        )
    parameters = _signature(fn, call.name).parameters
    unknown = sorted(set(arguments) - set(parameters))
    missing = [p.name for p in parameters.values() if p.default is p.empty and p.name not in arguments]
    if unknown or missing:
        what = "; ".join(
            part
            for part in (f"unknown arguments {unknown}" if unknown else "", f"missing {missing}" if missing else "")
            if part
        )
        raise StructuredOutputError(f"tool call {call.name!r} does not fit the function: {what}", text=call.arguments)
    try:
        kwargs = structure_fields(arguments, _parameters(fn, call.name))
    except StructuredOutputError as exc:
        raise StructuredOutputError(f"tool call {call.name!r}: {exc.message}", text=call.arguments) from None
    return fn, kwargs


def _result_text(name: str, result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return dumps(unstructure_value(result)).decode()
    except InvalidRequestError:
        raise InvalidRequestError(
            f"tool {name!r} returned a {type(result).__name__}, which is not JSON-serializable: return a str"
        ) from None


def execute_tool_calls(
    reply: ChatResponse | Message, functions: Iterable[Any] | Mapping[str, ToolFunction]
) -> list[Message]:
    """Run each tool call of ``reply`` with the function of the same name; return the tool messages
    (``role="tool"``, ``tool_call_id``) to send back. Non-string results are sent as JSON.

    Raises :class:`ResponseFormatError` for an unknown tool, :class:`StructuredOutputError`
    for arguments that do not fit the function; the functions' own exceptions propagate.
    """
    registry = _registry(functions)
    messages: list[Message] = []
    for call in reply.tool_calls:
        fn, kwargs = _bind(call, registry)
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise InvalidRequestError(f"tool {call.name!r} is async: use aexecute_tool_calls")
        messages.append(Message.tool(_result_text(call.name, result), call.id))
    return messages


async def aexecute_tool_calls(
    reply: ChatResponse | Message, functions: Iterable[Any] | Mapping[str, ToolFunction]
) -> list[Message]:
    """:func:`execute_tool_calls` for async code: ``async def`` tools are awaited (one after another)."""
    registry = _registry(functions)
    messages: list[Message] = []
    for call in reply.tool_calls:
        fn, kwargs = _bind(call, registry)
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        messages.append(Message.tool(_result_text(call.name, result), call.id))
    return messages
