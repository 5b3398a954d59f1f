"""The shared base of dedicated ``/score`` containers and the reply shapes they send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._json import loads_exact
from .._wire import excerpt_of, message_to_wire, parse_chat_completion, raise_error_body
from ..errors import ModelError, ResponseFormatError
from ..messages import ChatResponse, Message
from ._base import ChatFormatter, Dialect

__all__ = ["ScoreFormatter", "parse_dedicated_reply"]


class ScoreFormatter(ChatFormatter):
    """``{"input_data": {"input_string": [...], "parameters": {...}}}`` (the Hugging Face /
    "foundation models" containers); ``legacy_inputs=True`` sends the older
    ``{"inputs": {"input_string": [...]}, "parameters": {...}}`` shape.

    Subclasses decide what goes in ``input_string`` (:meth:`input_strings`) and may add
    ``default_parameters``; a caller's parameter of the same name wins.
    """

    dialect: ClassVar[Dialect] = "score"
    param_aliases: ClassVar[Mapping[str, str]] = {"max_tokens": "max_new_tokens"}
    default_parameters: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, *, legacy_inputs: bool = False) -> None:
        self.legacy_inputs = legacy_inputs

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        """The ``input_string`` list: the messages in wire form."""
        return [message_to_wire(message) for message in messages]

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        """The ``input_data`` body (or the ``inputs`` one with ``legacy_inputs``): :meth:`input_strings`
        and the renamed parameters over ``default_parameters``."""
        return self.body_with(params, self.input_strings(messages))

    def body_with(self, params: Mapping[str, Any], inputs: list[Any]) -> dict[str, Any]:
        """The body for an ``input_string`` list already made."""
        parameters = {**self.default_parameters, **self.rename_params(params)}
        if self.legacy_inputs:
            return {"inputs": {"input_string": inputs}, "parameters": parameters}
        return {"input_data": {"input_string": inputs, "parameters": parameters}}

    def parse_response(self, payload: Any) -> ChatResponse | str:
        """Any reply shape of the dedicated containers (see :func:`parse_dedicated_reply`)."""
        return parse_dedicated_reply(payload)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(legacy_inputs={self.legacy_inputs})"


def parse_dedicated_reply(payload: Any) -> ChatResponse | str:
    """Parse any reply shape of the Azure ML dedicated containers (protocol.md section 3).

    ``{"output": text}``, ``{"output": [text]}``, ``[{"0": text}]``,
    ``[{"generated_text": text}]``, ``[text]``, an OpenAI-like object, and any of
    those JSON-encoded once more as a string. Error bodies sent with 200 raise
    :class:`ModelError`.
    """
    for _ in range(2):  # the inference server may have JSON-encoded a JSON string
        if not isinstance(payload, str):
            break
        try:
            payload = loads_exact(payload)  # may be the model's own text: exact
        except ValueError:
            return str(payload)  # a plain text answer
    if isinstance(payload, Mapping):
        if "choices" in payload:
            return parse_chat_completion(payload)
        output = payload.get("output", payload.get("generated_text"))
        if isinstance(output, list) and output:
            output = output[0]
        if isinstance(output, Mapping):
            output = output.get("generated_text", output.get("0"))
        if isinstance(output, str):
            return output
        raise_error_body(payload)
    elif isinstance(payload, list) and payload:
        first = payload[0]
        if isinstance(first, str):
            return first
        if isinstance(first, Mapping):
            text = first.get("0", first.get("generated_text", first.get("output")))
            if isinstance(text, str):
                return text
            raise_error_body(first)
    elif payload is None or payload == []:
        raise ModelError("the endpoint answered 200 with an empty body", status_code=200, body=payload)
    raise ResponseFormatError("unrecognized reply from the /score endpoint", excerpt=excerpt_of(payload))
