"""Hugging Face / "foundation models" families on dedicated ``/score`` endpoints.

Chat families (Llama, Phi, Mistral) send the messages; text-generation families
(gpt2, dolly, falcon) send one prompt string. All share :class:`ScoreFormatter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._wire import message_to_wire
from ..messages import Message
from ._score import ScoreFormatter

__all__ = ["LlamaChatFormatter", "MistralChatFormatter", "PhiChatFormatter", "TextGenerationFormatter"]


class LlamaChatFormatter(ScoreFormatter):
    """Llama-2/3 chat and other Hugging Face chat models on ``/score``."""

    name: ClassVar[str] = "llama"


class PhiChatFormatter(ScoreFormatter):
    """Phi-3 / Phi-3.5 chat models: the same wire shape as the Llama chat containers."""

    name: ClassVar[str] = "phi"


class MistralChatFormatter(ScoreFormatter):
    """Mistral-instruct: its template has no system role, so system text joins the first user turn."""

    name: ClassVar[str] = "mistral"

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        """The messages in wire form, the system text joined to the first user turn."""
        system = "\n\n".join(message.text for message in messages if message.role == "system")
        rest = [message for message in messages if message.role != "system"]
        if system:
            if rest and rest[0].role == "user" and isinstance(rest[0].content, str):
                rest[0] = Message("user", f"{system}\n\n{rest[0].content}")
            else:
                rest.insert(0, Message("user", system))
        return [message_to_wire(message) for message in rest]


class TextGenerationFormatter(ScoreFormatter):
    """Text-generation models (gpt2, dolly, falcon, ...): the chat becomes one prompt string.

    A single user message is sent as it is; a longer chat is rendered as a transcript
    (``System: ...``, ``User: ...``, ``Assistant: ...``) ending with ``Assistant:``.
    ``return_full_text`` is false unless the call says otherwise, so the container does
    not echo the prompt back in front of the answer.
    """

    name: ClassVar[str] = "text-generation"
    default_parameters: ClassVar[Mapping[str, Any]] = {"return_full_text": False}

    def input_strings(self, messages: tuple[Message, ...]) -> list[Any]:
        """One prompt: a lone user message as it is, a longer chat as a transcript ending ``Assistant:``."""
        if len(messages) == 1 and messages[0].role == "user":
            return [messages[0].text]
        lines = [f"{message.role.capitalize()}: {message.text}" for message in messages]
        lines.append("Assistant:")
        return ["\n\n".join(lines)]
