"""Formatters turn messages into each model family's request body and parse its replies."""

from ._base import ChatFormatter, error_of_payload, parse_chat_completion, parse_dedicated_reply
from .hf import LlamaChatFormatter, MistralChatFormatter, PhiChatFormatter, TextGenerationFormatter
from .openai import STANDARD_KEYS, OpenAIChatFormatter
from .registry import available_formatters, family_for_model, get_formatter, register_formatter

__all__ = [
    "STANDARD_KEYS",
    "ChatFormatter",
    "LlamaChatFormatter",
    "MistralChatFormatter",
    "OpenAIChatFormatter",
    "PhiChatFormatter",
    "TextGenerationFormatter",
    "available_formatters",
    "error_of_payload",
    "family_for_model",
    "get_formatter",
    "parse_chat_completion",
    "parse_dedicated_reply",
    "register_formatter",
]
