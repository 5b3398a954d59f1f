"""Formatters turn messages into each model family's request body and parse its replies."""

from .._wire import error_of_payload, parse_chat_completion
from ._base import CALL_FEATURES, ChatFormatter, Dialect
from ._score import ScoreFormatter, parse_dedicated_reply
from .hf import LlamaChatFormatter, MistralChatFormatter, PhiChatFormatter, TextGenerationFormatter
from .openai import STANDARD_KEYS, OpenAIChatFormatter
from .registry import available_formatters, family_for_model, get_formatter, register_formatter

__all__ = [
    "CALL_FEATURES",
    "STANDARD_KEYS",
    "ChatFormatter",
    "Dialect",
    "LlamaChatFormatter",
    "MistralChatFormatter",
    "OpenAIChatFormatter",
    "PhiChatFormatter",
    "ScoreFormatter",
    "TextGenerationFormatter",
    "available_formatters",
    "error_of_payload",
    "family_for_model",
    "get_formatter",
    "parse_chat_completion",
    "parse_dedicated_reply",
    "register_formatter",
]
