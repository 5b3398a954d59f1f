"""azml-chat: a fast, async-first, typed client for chat models on Azure Machine Learning
online endpoints (dedicated ``/score`` and vLLM routes), serverless endpoints, Azure AI
Foundry and Azure OpenAI (``/models/chat/completions``, ``/openai/v1/...``).

    from azml_chat import AsyncChatClient

    async with AsyncChatClient.from_env() as client:
        reply = await client.chat("Hello!", temperature=0.8)
        print(reply.content)
"""

import importlib
from typing import TYPE_CHECKING, Any

from . import _log
from ._version import __version__

if TYPE_CHECKING:
    from .client import AsyncChatClient, AsyncChatStream, ChatClient, ChatStream
    from .config import DEFAULT_API_VERSION, ChatParams, ClientOptions, RetryPolicy
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        AzureMLChatError,
        BadRequestError,
        ClientClosedError,
        ConfigurationError,
        InvalidRequestError,
        ModelError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ResponseFormatError,
        ServerError,
        StreamError,
        StructuredOutputError,
    )
    from .formatters import (
        ChatFormatter,
        LlamaChatFormatter,
        MistralChatFormatter,
        OpenAIChatFormatter,
        PhiChatFormatter,
        TextGenerationFormatter,
        available_formatters,
        family_for_model,
        get_formatter,
        register_formatter,
    )
    from .hooks import AttemptInfo, CallInfo, CallResult, ChatHooks
    from .messages import (
        ChatResponse,
        Choice,
        ImagePart,
        Message,
        ModelInfo,
        RateLimit,
        StreamChunk,
        TextPart,
        TokenLogprob,
        ToolCall,
        ToolCallDelta,
        TopLogprob,
        Usage,
    )
    from .structured import json_schema, parse_structured, response_format_for
    from .tools import aexecute_tool_calls, execute_tool_calls, tool_schema, tools_to_wire

_log.configure_logging()  # a NullHandler; AZML_CHAT_LOG=debug prints the package's lines to stderr

# Every public name loads on first use (PEP 562), so ``import azml_chat`` (and the pytest
# plugin inside it) costs nothing until a name is used; ``from azml_chat import ChatClient``
# loads the client and what it needs, no more.
_SOURCES = {
    ".client": ["AsyncChatClient", "AsyncChatStream", "ChatClient", "ChatStream"],
    ".config": ["DEFAULT_API_VERSION", "ChatParams", "ClientOptions", "RetryPolicy"],
    ".errors": [
        "APIConnectionError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "AzureMLChatError",
        "BadRequestError",
        "ClientClosedError",
        "ConfigurationError",
        "InvalidRequestError",
        "ModelError",
        "NotFoundError",
        "PermissionDeniedError",
        "RateLimitError",
        "ResponseFormatError",
        "ServerError",
        "StreamError",
        "StructuredOutputError",
    ],
    ".formatters": [
        "ChatFormatter",
        "LlamaChatFormatter",
        "MistralChatFormatter",
        "OpenAIChatFormatter",
        "PhiChatFormatter",
        "TextGenerationFormatter",
        "available_formatters",
        "family_for_model",
        "get_formatter",
        "register_formatter",
    ],
    ".hooks": ["AttemptInfo", "CallInfo", "CallResult", "ChatHooks"],
    ".messages": [
        "ChatResponse",
        "Choice",
        "ImagePart",
        "Message",
        "ModelInfo",
        "RateLimit",
        "StreamChunk",
        "TextPart",
        "TokenLogprob",
        "ToolCall",
        "ToolCallDelta",
        "TopLogprob",
        "Usage",
    ],
    ".structured": ["json_schema", "parse_structured", "response_format_for"],
    ".tools": ["aexecute_tool_calls", "execute_tool_calls", "tool_schema", "tools_to_wire"],
}
_LAZY = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_API_VERSION",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatClient",
    "AsyncChatStream",
    "AttemptInfo",
    "AuthenticationError",
    "AzureMLChatError",
    "BadRequestError",
    "CallInfo",
    "CallResult",
    "ChatClient",
    "ChatFormatter",
    "ChatHooks",
    "ChatParams",
    "ChatResponse",
    "ChatStream",
    "Choice",
    "ClientClosedError",
    "ClientOptions",
    "ConfigurationError",
    "ImagePart",
    "InvalidRequestError",
    "LlamaChatFormatter",
    "Message",
    "MistralChatFormatter",
    "ModelError",
    "ModelInfo",
    "NotFoundError",
    "OpenAIChatFormatter",
    "PermissionDeniedError",
    "PhiChatFormatter",
    "RateLimit",
    "RateLimitError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "StreamChunk",
    "StreamError",
    "StructuredOutputError",
    "TextGenerationFormatter",
    "TextPart",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "Usage",
    "__version__",
    "aexecute_tool_calls",
    "available_formatters",
    "execute_tool_calls",
    "family_for_model",
    "get_formatter",
    "json_schema",
    "parse_structured",
    "register_formatter",
    "response_format_for",
    "tool_schema",
    "tools_to_wire",
]


def __dir__() -> list[str]:
    """The module's names, the lazily loaded ones included (for ``dir()`` and tab completion)."""
    return sorted({*globals(), *_LAZY})


# The map of the public API that ``help(azml_chat)`` shows; it lives here, beside __all__, so a
# name added there is added here too (tests/test_package.py checks that every one is listed).
__doc__ = f"""{__doc__}
Public API (``help(azml_chat.<name>)`` tells more about each):

Clients
    AsyncChatClient, ChatClient
        ``chat()``, ``stream()``, ``chat_structured()``, ``model_info()``; ``from_env()``
    AsyncChatStream, ChatStream
        what ``stream()`` returns: iterate for StreamChunk pieces, then ``get_final_response()``
    ClientOptions, ChatParams
        the keyword arguments of the constructors and of ``chat()``/``stream()``, typed
    RetryPolicy, ModelInfo, DEFAULT_API_VERSION
    ChatHooks, CallInfo, AttemptInfo, CallResult
        hooks=[...] on a client: told about every call and attempt (azml_chat.hooks)

Messages and replies
    Message, TextPart, ImagePart, ToolCall, ToolCallDelta
    ChatResponse, Choice, TokenLogprob, TopLogprob, RateLimit, StreamChunk, Usage

Tools and structured output (attrs classes, dataclasses, TypedDicts, pydantic models, typing)
    tool_schema, tools_to_wire, execute_tool_calls, aexecute_tool_calls
    response_format_for, json_schema, parse_structured

Formatters (the request and reply shapes of dedicated /score containers)
    ChatFormatter, OpenAIChatFormatter, LlamaChatFormatter, MistralChatFormatter,
    PhiChatFormatter, TextGenerationFormatter
    get_formatter, register_formatter, available_formatters, family_for_model

Errors (every one an AzureMLChatError)
    ConfigurationError, InvalidRequestError, ClientClosedError, APIConnectionError, APITimeoutError,
    APIStatusError, BadRequestError, AuthenticationError, PermissionDeniedError,
    NotFoundError, RateLimitError, ServerError, ModelError, ResponseFormatError,
    StructuredOutputError, StreamError

Submodules
    azml_chat.structured, azml_chat.tools   the schema and tool helpers in full
    azml_chat.testing                       LocalEndpoint, an embedded endpoint for tests
    azml_chat.langchain                     LangChain chat model and LLM (needs langchain-core)
    azml_chat.otel                          OpenTelemetry GenAI spans and metrics (needs opentelemetry-api)

__version__ is the installed version.
"""
