"""OpenAI chat-completions bodies: serverless endpoints and OpenAI-like (vLLM) containers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ..messages import ChatResponse, Message, _unstructure_message
from ._base import ChatFormatter, parse_chat_completion

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
_PASS_THROUGH = {"extra-parameters": "pass-through"}


class OpenAIChatFormatter(ChatFormatter):
    """``{"messages": [...], "temperature": ..., ...}``; replies are ``chat.completion`` objects.

    When the body carries keys outside the standard set (``stream_options``, ``n``,
    vendor knobs), the request gets ``extra-parameters: pass-through`` so the Azure
    gateway forwards them instead of rejecting the call.
    """

    name: ClassVar[str] = "openai"
    route: ClassVar[Literal["score", "chat"]] = "chat"
    supports_streaming: ClassVar[bool] = True
    param_aliases: ClassVar[Mapping[str, str]] = {"max_new_tokens": "max_tokens"}

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        body = self.rename_params(params)
        body["messages"] = [_unstructure_message(message) for message in messages]
        return body

    def parse_response(self, payload: Any) -> ChatResponse:
        return parse_chat_completion(payload)

    def request_headers(self, body: Any) -> Mapping[str, str]:
        if isinstance(body, Mapping) and not STANDARD_KEYS.issuperset(body):
            return _PASS_THROUGH
        return {}
