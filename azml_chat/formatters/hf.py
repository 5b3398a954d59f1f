"""Hugging Face / "foundation models" containers on dedicated ``/score`` endpoints.

Chat families (Llama, Phi, Mistral) take ``{"input_data": {"input_string": [messages],
"parameters": {...}}}``; text-generation families (gpt2, dolly, falcon) take a list
of prompt strings. Parameters use the container's names (``max_new_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..messages import ChatResponse, Message, _unstructure_message
from ._base import ChatFormatter, parse_dedicated_reply

__all__ = ["LlamaChatFormatter", "MistralChatFormatter", "PhiChatFormatter", "TextGenerationFormatter"]

_HF_PARAMS: Mapping[str, str] = {"max_tokens": "max_new_tokens"}


class LlamaChatFormatter(ChatFormatter):
    """Llama-2/3 chat and other Hugging Face chat models on ``/score``.

    ``legacy_inputs=True`` sends the older ``{"inputs": {...}, "parameters": {...}}`` shape.
    """

    name: ClassVar[str] = "llama"
    param_aliases: ClassVar[Mapping[str, str]] = _HF_PARAMS

    def __init__(self, *, legacy_inputs: bool = False) -> None:
        self.legacy_inputs = legacy_inputs

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        """The ``input_string`` list: the messages in wire form."""
        return [_unstructure_message(message) for message in messages]

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        inputs = self.input_strings(messages)
        parameters = self.rename_params(params)
        if self.legacy_inputs:
            return {"inputs": {"input_string": inputs}, "parameters": parameters}
        return {"input_data": {"input_string": inputs, "parameters": parameters}}

    def parse_response(self, payload: Any) -> ChatResponse | str:
        return parse_dedicated_reply(payload)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(legacy_inputs={self.legacy_inputs})"


class PhiChatFormatter(LlamaChatFormatter):
    """Phi-3 / Phi-3.5 chat models: same wire shape as the Llama chat containers."""

    name: ClassVar[str] = "phi"


class MistralChatFormatter(LlamaChatFormatter):
    """Mistral-instruct: its template has no system role, so system text joins the first user turn."""

    name: ClassVar[str] = "mistral"

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        system = "\n\n".join(message.text for message in messages if message.role == "system")
        rest = [message for message in messages if message.role != "system"]
        if system:
            if rest and rest[0].role == "user" and isinstance(rest[0].content, str):
                rest[0] = Message("user", f"{system}\n\n{rest[0].content}")
            else:
                rest.insert(0, Message("user", system))
        return [_unstructure_message(message) for message in rest]


class TextGenerationFormatter(LlamaChatFormatter):
    """Text-generation models (gpt2, dolly, falcon, ...): the chat becomes one prompt string.

    A single user message is sent as it is; a longer chat is rendered as a transcript
    (``System: ...``, ``User: ...``, ``Assistant: ...``) ending with ``Assistant:``.
    """

    name: ClassVar[str] = "text-generation"

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        if len(messages) == 1 and messages[0].role == "user":
            return [messages[0].text]
        lines = [f"{message.role.capitalize()}: {message.text}" for message in messages]
        lines.append("Assistant:")
        return ["\n\n".join(lines)]
