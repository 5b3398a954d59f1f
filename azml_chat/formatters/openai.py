"""OpenAI chat-completions bodies: serverless, Foundry, Azure OpenAI and vLLM routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._wire import message_to_wire, parse_chat_completion
from ..messages import ChatResponse, Message
from ._base import CALL_FEATURES, ChatFormatter, Dialect

__all__ = ["STANDARD_KEYS", "OpenAIChatFormatter"]

#: Body keys of the Azure AI model inference API; anything else is an "extra parameter".
STANDARD_KEYS = frozenset(
    {
        "messages",
        "frequency_penalty",
        "presence_penalty",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "stream",
        "response_format",
        "tools",
        "tool_choice",
        "model",
    }
)


class OpenAIChatFormatter(ChatFormatter):
    """``{"messages": [...], "temperature": ..., ...}``; replies are ``chat.completion`` objects."""

    name: ClassVar[str] = "openai"
    dialect: ClassVar[Dialect] = "chat-completions"
    supports_streaming: ClassVar[bool] = True
    param_aliases: ClassVar[Mapping[str, str]] = {"max_new_tokens": "max_tokens"}
    features: ClassVar[frozenset[str]] = CALL_FEATURES

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        """The chat-completions body: the renamed parameters and the messages in wire form."""
        return self.body_with(params, [message_to_wire(message) for message in messages])

    def body_with(self, params: Mapping[str, Any], wire_messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The chat-completions body for messages already in wire form."""
        body = self.rename_params(params)
        body["messages"] = wire_messages
        return body

    def parse_response(self, payload: Any) -> ChatResponse:
        """A ``chat.completion`` object as a :class:`ChatResponse`."""
        return parse_chat_completion(payload)
