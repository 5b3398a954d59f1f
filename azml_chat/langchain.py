"""LangChain adapter: ``AzureMLChatOnlineEndpoint`` as a real ``BaseChatModel`` built on azml_chat.

Switch from ``langchain_community`` by changing one import::

    # from langchain_community.chat_models.azureml_endpoint import (...)
    from azml_chat.langchain import (
        AzureMLChatOnlineEndpoint,
        AzureMLEndpointApiType,
        CustomOpenAIChatContentFormatter,
    )

The old constructor arguments (``endpoint_url``, ``endpoint_api_type``, ``endpoint_api_key``,
``deployment_name``, ``content_formatter`` as an instance or a class, ``model_kwargs``,
``timeout``, ``max_retries``) and the ``AZUREML_*`` environment variables keep working. On top
come true async (``ainvoke``/``astream`` on ``AsyncChatClient``), streaming, tool calling,
structured output, token usage, working retries and time-outs, and typed errors from
:mod:`azml_chat.errors`.

This is the only module of azml_chat that imports ``langchain_core``; it needs the ``langchain``
extra: ``pip install "azml-chat[langchain]"``.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import uuid
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, ClassVar, Literal

from . import _core
from ._json import dumps, loads
from .client import AsyncChatClient, ChatClient
from .config import DEFAULT_API_VERSION, ApiType, ChatParams, Endpoint, RetryPolicy, parse_endpoint
from .errors import ConfigurationError, InvalidRequestError
from .formatters import ChatFormatter, OpenAIChatFormatter, get_formatter
from .messages import ChatResponse, Message, StreamChunk, ToolCall, Usage, coerce_messages, converter


class LangChainNotInstalledError(ImportError):
    """``langchain-core`` is missing: install the extra with ``pip install "azml-chat[langchain]"``."""


try:
    from langchain_core._api import LangChainDeprecationWarning
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        convert_to_openai_messages,
    )
    from langchain_core.messages.ai import UsageMetadata
    from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
    from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
    from langchain_core.utils import from_env, secret_from_env
    from langchain_core.utils.function_calling import convert_to_openai_function, convert_to_openai_tool
    from langchain_core.utils.pydantic import is_basemodel_subclass
    from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise LangChainNotInstalledError(
        "azml_chat.langchain needs langchain-core, which is not installed or failed to import "
        f'({_exc}): install azml-chat[langchain] (pip install "azml-chat[langchain]")',
        name="langchain_core",
    ) from _exc

__all__ = [
    "AzureMLChatOnlineEndpoint",
    "AzureMLEndpointApiType",
    "ContentFormatterBase",
    "CustomOpenAIChatContentFormatter",
    "LangChainNotInstalledError",
    "LlamaChatContentFormatter",
    "MistralChatContentFormatter",
]


class AzureMLEndpointApiType(enum.StrEnum):
    """The endpoint kind, as in LangChain: ``dedicated`` (managed online endpoint, ``/score``),
    ``serverless`` (pay-as-you-go, chat completions); ``realtime`` is the old name of dedicated."""

    dedicated = "dedicated"
    realtime = "realtime"
    serverless = "serverless"


# --- content formatters --------------------------------------------------------------------


class ContentFormatterBase:
    """Base class of content formatters, with the interface of LangChain's ``ContentFormatterBase``.

    A custom formatter written for ``langchain_community`` keeps working: subclass this class
    (or keep your old base class) and implement :meth:`format_messages_request_payload` (return
    the JSON body as ``bytes`` or ``str``) and :meth:`format_response_payload` (turn the reply
    bytes into a ``ChatGeneration``). The model sends your body and parses replies with your
    code, while retries, time-outs and typed errors come from azml_chat. For new code, subclass
    :class:`azml_chat.ChatFormatter` and pass it as ``content_formatter`` instead.
    """

    content_type: str | None = "application/json"
    """The MIME type of the request body (only JSON is supported)."""
    accepts: str | None = "application/json"
    """The MIME type of the reply."""
    format_error_msg: str = (
        "Error while formatting response payload for chat model of type `{api_type}`. "
        "Are you using the right formatter for the deployed model and endpoint type?"
    )

    @staticmethod
    def escape_special_characters(prompt: str) -> str:
        """Escape backslashes, quotes and control characters, as LangChain did.

        Kept for old subclasses that build JSON text by hand. Do not call it before
        ``json.dumps``: that escapes the prompt twice (a defect of the old formatters).
        """
        for char, escaped in (
            ("\\", "\\\\"),
            ('"', '\\"'),
            ("\b", "\\b"),
            ("\f", "\\f"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ):
            prompt = prompt.replace(char, escaped)
        return prompt

    @property
    def supported_api_types(self) -> list[AzureMLEndpointApiType]:
        """The endpoint kinds this formatter can talk to."""
        return [AzureMLEndpointApiType.dedicated, AzureMLEndpointApiType.realtime, AzureMLEndpointApiType.serverless]

    def format_messages_request_payload(
        self, messages: list[BaseMessage], model_kwargs: dict[str, Any], api_type: AzureMLEndpointApiType
    ) -> bytes | str:
        """Return the JSON request body for these messages and parameters."""
        raise NotImplementedError

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> ChatGeneration:
        """Turn the reply body into a ``ChatGeneration``."""
        raise NotImplementedError


class CustomOpenAIChatContentFormatter(ContentFormatterBase):
    """Chat models taking OpenAI-style messages (Llama, Phi, vLLM, Azure AI serverless models).

    On dedicated ``/score`` endpoints the body is ``{"input_data": {"input_string": [messages],
    "parameters": {...}}}`` (``max_tokens`` becomes ``max_new_tokens``) and every known reply
    shape parses; on chat-completions URLs the body is an OpenAI chat-completions request.
    The model uses azml_chat's own formatters for it, so prompts are JSON-escaped once.
    """

    family: ClassVar[str] = "llama"

    def chat_formatter(self, api_type: AzureMLEndpointApiType | str) -> ChatFormatter:
        """The azml_chat formatter this formatter stands for on this kind of endpoint."""
        kind = getattr(api_type, "value", api_type)
        return OpenAIChatFormatter() if kind == "serverless" else get_formatter(self.family)

    def format_messages_request_payload(
        self, messages: list[BaseMessage], model_kwargs: dict[str, Any], api_type: AzureMLEndpointApiType
    ) -> bytes:
        """The request body, built by the azml_chat formatter for ``api_type``."""
        wire = coerce_messages(_wire_messages(messages))
        return dumps(_core.format_body(self.chat_formatter(api_type), wire, dict(model_kwargs)))

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> ChatGeneration:
        """Parse any reply shape of the endpoint kind into a ``ChatGeneration``."""
        reply = _core.parse_reply(self.chat_formatter(api_type), output, None, 0.0)
        return ChatGeneration(message=_ai_message(reply, None), generation_info={"finish_reason": reply.finish_reason})


class LlamaChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Deprecated alias of :class:`CustomOpenAIChatContentFormatter` (as in LangChain)."""

    def __init__(self) -> None:
        warnings.warn(  # LangChain shows its deprecation warnings by default
            "LlamaChatContentFormatter is deprecated: use CustomOpenAIChatContentFormatter",
            LangChainDeprecationWarning,
            stacklevel=2,
        )


class MistralChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Mistral-instruct: on ``/score`` the system text joins the first user turn (the template has
    no system role; a system-only chat becomes one user turn instead of crashing)."""

    family: ClassVar[str] = "mistral"


class _LegacyFormatter(ChatFormatter):
    """Runs an old-style LangChain content formatter inside azml_chat's client."""

    name: ClassVar[str] = "langchain-content-formatter"

    def __init__(self, legacy: Any, api_type: AzureMLEndpointApiType) -> None:
        self.legacy = legacy
        self.api_type = api_type

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        payload = self.legacy.format_messages_request_payload(
            [_langchain_message(message) for message in messages], dict(params), self.api_type
        )
        if isinstance(payload, bytes | bytearray):
            payload = bytes(payload).decode("utf-8")
        if not isinstance(payload, str):
            return payload  # already a JSON value
        try:
            return loads(payload)
        except ValueError:
            raise InvalidRequestError(
                f"{type(self.legacy).__name__}.format_messages_request_payload did not return JSON: {payload[:100]!r}"
            ) from None

    def parse_response(self, payload: Any) -> ChatResponse | str:
        result = self.legacy.format_response_payload(dumps(payload), self.api_type)
        message = getattr(result, "message", None)
        if isinstance(message, BaseMessage):
            info = getattr(result, "generation_info", None) or {}
            calls = tuple(
                ToolCall(call.get("id") or _new_call_id(), call["name"], dumps(call["args"]).decode())
                for call in getattr(message, "tool_calls", ())
            )
            return ChatResponse(
                Message("assistant", _text_of(message.content), tool_calls=calls),
                finish_reason=info.get("finish_reason"),
            )
        if isinstance(result, Generation):
            return result.text
        if isinstance(result, str):
            return result
        raise TypeError(f"format_response_payload returned {type(result).__name__}, not a ChatGeneration")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.legacy).__name__})"


def _overrides_builtin(formatter: CustomOpenAIChatContentFormatter) -> bool:
    cls = type(formatter)
    return any(
        getattr(cls, name) is not getattr(CustomOpenAIChatContentFormatter, name)
        for name in ("format_messages_request_payload", "format_response_payload")
    )


def _resolve_formatter(spec: Any, api_type: ApiType) -> ChatFormatter | None:
    """The azml_chat formatter for ``content_formatter`` (``None``: the client's default)."""
    if spec is None:
        return None
    if isinstance(spec, str | ChatFormatter) or (isinstance(spec, type) and issubclass(spec, ChatFormatter)):
        return get_formatter(spec)
    instance = spec() if isinstance(spec, type) else spec  # the LangChain docs pass the class too
    supported = {getattr(kind, "value", kind) for kind in getattr(instance, "supported_api_types", ())}
    wanted = ("serverless",) if api_type == "serverless" else ("dedicated", "realtime")
    if supported and not supported.intersection(wanted):
        raise ConfigurationError(
            f"content_formatter {type(instance).__name__} does not support {api_type} endpoints "
            f"(it supports {sorted(supported)})"
        )
    if isinstance(instance, CustomOpenAIChatContentFormatter) and not _overrides_builtin(instance):
        return get_formatter(instance.family)  # the client uses the OpenAI body on chat-completions URLs
    if callable(getattr(instance, "format_messages_request_payload", None)) and callable(
        getattr(instance, "format_response_payload", None)
    ):
        if getattr(instance, "content_type", "application/json") not in (None, "application/json"):
            raise ConfigurationError("content_formatter.content_type must be application/json: only JSON is sent")
        legacy_kind = next((kind for kind in wanted if not supported or kind in supported), wanted[0])
        return _LegacyFormatter(instance, AzureMLEndpointApiType(legacy_kind))
    raise ConfigurationError(
        "content_formatter must be a ContentFormatterBase subclass or instance (e.g. "
        "CustomOpenAIChatContentFormatter), an azml_chat.ChatFormatter, or a formatter name like 'mistral'; "
        f"got {spec!r:.80}"
    )


# --- message conversion --------------------------------------------------------------------

_PART_TYPES = frozenset({"text", "image_url"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
    )


def _wire_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI-style dicts: text and image parts; tool calls; tool results."""
    wire = []
    for message in messages:
        try:
            item = convert_to_openai_messages(message)
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"cannot convert a {type(message).__name__}: {exc}") from None
        content = item.get("content")
        if isinstance(content, list):
            if item.get("role") in ("assistant", "system", "developer"):
                item["content"] = _text_of(content)  # drop reasoning/tool_use blocks; tool calls travel apart
            else:
                for part in content:
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    if kind not in _PART_TYPES:
                        raise InvalidRequestError(
                            f"{item.get('role')} content block of type {kind!r} is not supported: "
                            "Azure ML chat endpoints take text and image parts"
                        )
        wire.append(item)
    return wire


def _langchain_message(message: Message) -> BaseMessage:
    """An azml_chat message as a LangChain message (for old-style formatters)."""
    content: Any = message.content or ""
    if not isinstance(content, str):
        content = [converter.unstructure(part) for part in content]
    if message.role in ("system", "developer"):
        return SystemMessage(content=content)
    if message.role == "assistant":
        calls = [tool_call(name=call.name, args=_arguments(call)[0] or {}, id=call.id) for call in message.tool_calls]
        return AIMessage(content=content, tool_calls=calls)
    if message.role == "tool":
        return ToolMessage(content=content, tool_call_id=message.tool_call_id or "")
    return HumanMessage(content=content, name=message.name)


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments(call: ToolCall) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded arguments of a tool call, or ``(None, error)`` if they are not a JSON object."""
    try:
        args = loads(call.arguments or "{}")
    except ValueError as exc:
        return None, f"arguments are not valid JSON: {exc}"
    if not isinstance(args, dict):
        return None, f"arguments are not a JSON object: {call.arguments[:100]!r}"
    return args, None


def _usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    metadata = UsageMetadata(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )
    if usage.cached_tokens is not None:
        metadata["input_token_details"] = {"cache_read": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        metadata["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return metadata


def _response_metadata(reply: ChatResponse, model_name: str | None) -> dict[str, Any]:
    found = {
        "model_name": reply.model or model_name,
        "finish_reason": reply.finish_reason,
        "id": reply.id,
        "request_id": reply.request_id,
    }
    return {key: value for key, value in found.items() if value is not None}


def _ai_message(reply: ChatResponse, model_name: str | None) -> AIMessage:
    calls, invalid = [], []
    for call in reply.tool_calls:
        args, error = _arguments(call)
        call_id = call.id or _new_call_id()
        if args is None:
            invalid.append(invalid_tool_call(name=call.name, args=call.arguments, id=call_id, error=error))
        else:
            calls.append(tool_call(name=call.name, args=args, id=call_id))
    extra = {"reasoning_content": reply.reasoning_content} if reply.reasoning_content else {}
    return AIMessage(
        content=reply.content,
        additional_kwargs=extra,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage_metadata(reply.usage),
        response_metadata=_response_metadata(reply, model_name),
    )


def _generation_chunk(chunk: StreamChunk) -> ChatGenerationChunk | None:
    """A stream chunk's text and tool-call fragments; usage and metadata go in the last chunk."""
    if not (chunk.content or chunk.tool_calls or chunk.reasoning_content):
        return None
    message = AIMessageChunk(
        content=chunk.content,
        additional_kwargs={"reasoning_content": chunk.reasoning_content} if chunk.reasoning_content else {},
        tool_call_chunks=[
            # a fragment with a name starts a call: give it an id if the server sent none
            tool_call_chunk(
                name=delta.name,
                args=delta.arguments,
                id=delta.id or (_new_call_id() if delta.name else None),
                index=delta.index,
            )
            for delta in chunk.tool_calls
        ],
    )
    return ChatGenerationChunk(message=message)


def _last_chunk(reply: ChatResponse | None, model_name: str | None) -> ChatGenerationChunk:
    usage = _usage_metadata(reply.usage) if reply is not None else None
    metadata = _response_metadata(reply, model_name) if reply is not None else {}
    message = AIMessageChunk(content="", usage_metadata=usage, response_metadata=metadata, chunk_position="last")
    return ChatGenerationChunk(message=message)


def _tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> Any:
    """LangChain's ``tool_choice`` values in the chat-completions form."""
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice in ("auto", "none") or isinstance(choice, Mapping):
        return choice
    if isinstance(choice, str):
        names = [tool["function"]["name"] for tool in tools if isinstance(tool.get("function"), Mapping)]
        if choice not in names:
            raise InvalidRequestError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return {"type": "function", "function": {"name": choice}}
    raise InvalidRequestError(f"tool_choice must be 'auto', 'any', 'none', a tool name or a dict, not {choice!r}")


# --- the chat model ------------------------------------------------------------------------

_CALL_OPTIONS = ("timeout", "max_retries")


class AzureMLChatOnlineEndpoint(BaseChatModel):
    """Chat models on Azure ML online endpoints (dedicated ``/score``) and Azure AI serverless endpoints.

    Example::

        chat = AzureMLChatOnlineEndpoint(
            endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
            endpoint_api_type=AzureMLEndpointApiType.dedicated,
            endpoint_api_key="my-api-key",
            content_formatter=CustomOpenAIChatContentFormatter(),
        )
        chat.invoke("Will the Collatz conjecture ever be solved?", max_tokens=512)

    ``endpoint_url``, ``endpoint_api_key``, ``deployment_name``, ``endpoint_api_type`` and
    ``timeout`` default to ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``,
    ``AZUREML_DEPLOYMENT_NAME``, ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT``.
    ``endpoint_api_type`` is inferred from the URL when unset. Per-call keyword arguments
    (``max_tokens=512``, ``temperature``, ``timeout``, ``max_retries``) apply to that call only.
    The model builds one :class:`ChatClient` and one :class:`AsyncChatClient` lazily and reuses
    them; :meth:`close` / :meth:`aclose` release their connections.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="forbid")

    endpoint_url: str = Field(default_factory=from_env("AZUREML_ENDPOINT_URL", default=""))
    """The scoring URL (``.../score``) or chat-completions URL; env ``AZUREML_ENDPOINT_URL``."""
    endpoint_api_type: AzureMLEndpointApiType | None = Field(
        default_factory=from_env("AZUREML_ENDPOINT_API_TYPE", default=None), validate_default=True
    )
    """``dedicated`` / ``serverless`` (``realtime`` = dedicated); ``None`` infers it from the URL."""
    endpoint_api_key: SecretStr | None = Field(
        default_factory=secret_from_env("AZUREML_ENDPOINT_API_KEY", default=None), alias="api_key"
    )
    """The endpoint key (never shown or serialized); env ``AZUREML_ENDPOINT_API_KEY``."""
    deployment_name: str = Field(default_factory=from_env("AZUREML_DEPLOYMENT_NAME", default=""))
    """Pins one deployment (header ``azureml-model-deployment``); env ``AZUREML_DEPLOYMENT_NAME``."""
    content_formatter: Any = None
    """A content formatter instance or class, an ``azml_chat.ChatFormatter`` or a family name."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Default model parameters sent with every call (never modified by calls)."""
    timeout: float | None = Field(default_factory=from_env("AZUREML_TIMEOUT", default="50"), validate_default=True)
    """Seconds each attempt may take; env ``AZUREML_TIMEOUT`` (default 50)."""
    max_retries: int = 2
    """Retries of 408/429/5xx replies and connection failures, with backoff."""
    model_name: str | None = Field(default=None, alias="model")
    """The ``model`` sent on chat-completions routes (Foundry multi-model and vLLM endpoints)."""
    temperature: float | None = None
    """Sampling temperature (default: the model's)."""
    max_tokens: int | None = None
    """Most tokens to generate (``max_new_tokens`` on Hugging Face containers)."""
    stop: list[str] | None = None
    """Stop sequences."""
    streaming: bool = False
    """Whether ``invoke`` streams internally (callbacks then get tokens as they arrive)."""
    stream_usage: bool = True
    """Ask serverless streams for token usage (``stream_options={"include_usage": true}``)."""
    api_version: str = DEFAULT_API_VERSION
    """``api-version`` for ``/chat/completions`` routes that need one."""
    credential: Any = Field(default=None, exclude=True)
    """An Azure Entra ID credential (``azure.identity``) instead of a key."""
    retry_policy: RetryPolicy | None = Field(default=None, exclude=True)
    """Backoff between retries (default: :class:`azml_chat.RetryPolicy`)."""

    _endpoint: Endpoint = PrivateAttr()
    _formatter: ChatFormatter | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _client: ChatClient | None = PrivateAttr(default=None)
    _aclient: AsyncChatClient | None = PrivateAttr(default=None)
    _aclient_loop: Callable[[], object] | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.endpoint_url:
            raise ConfigurationError("no endpoint URL: pass endpoint_url=... or set AZUREML_ENDPOINT_URL")
        self._endpoint = parse_endpoint(self.endpoint_url, self.endpoint_api_type, self.api_version)
        self._formatter = _resolve_formatter(self.content_formatter, self._endpoint.api_type)
        if self.credential is not None:
            if "endpoint_api_key" in self.model_fields_set and self.endpoint_api_key is not None:
                raise ConfigurationError("pass either endpoint_api_key or credential, not both")
            self.endpoint_api_key = None  # a key from AZUREML_ENDPOINT_API_KEY yields to the credential

    @field_validator("endpoint_api_type", mode="before")
    @classmethod
    def _api_type(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("model_kwargs", mode="before")
    @classmethod
    def _model_kwargs(cls, value: Any) -> Any:
        return {} if value is None else value

    # --- LangChain metadata -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "azureml_chat_endpoint"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "endpoint_api_type": self._endpoint.api_type,
            "deployment_name": self.deployment_name,
            "model_name": self.model_name,
            "model_kwargs": self._default_params(),
        }

    def _model_label(self) -> str:
        return self.model_name or self.deployment_name or self._endpoint.url.split("//", 1)[-1].split(".", 1)[0]

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        defaults = {**self._default_params(), **kwargs}
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="azureml",
            ls_model_name=model if isinstance(model, str) else self._model_label(),
            ls_model_type="chat",
        )
        temperature = defaults.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            params["ls_temperature"] = temperature
        max_tokens = defaults.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop or defaults.get("stop")
        if stop_sequences:
            params["ls_stop"] = list(stop_sequences)
        return params

    # --- clients ------------------------------------------------------------------------

    def _default_params(self) -> dict[str, Any]:
        """``temperature``/``max_tokens``/``stop`` fields under ``model_kwargs``, in a new dict."""
        params: dict[str, Any] = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if self.stop:
            params["stop"] = list(self.stop)
        return {**params, **self.model_kwargs}

    def _client_settings(self) -> dict[str, Any]:
        return {
            "api_key": self.endpoint_api_key.get_secret_value() if self.endpoint_api_key else None,
            "api_type": self._endpoint.api_type,
            "deployment_name": self.deployment_name or None,
            "formatter": self._formatter
            if self._formatter is None or self._formatter.dialect == self._endpoint.dialect
            else None,
            "model": self.model_name,
            "model_kwargs": self._default_params(),
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "retry_policy": self.retry_policy,
            "credential": self.credential,
            "api_version": self.api_version,
        }

    def _sync_client(self) -> ChatClient:
        with self._lock:
            if self._client is None:
                self._client = ChatClient(self._endpoint.url, **self._client_settings())
                weakref.finalize(self, self._client.close)  # a model dropped unclosed still frees its sockets
            return self._client

    def _async_client(self) -> AsyncChatClient:
        """The async client of the running event loop (its connections belong to that loop)."""
        try:
            loop: object = asyncio.get_running_loop()
        except RuntimeError:  # another async library (trio): one client
            loop = AsyncChatClient
        with self._lock:
            if self._aclient is None or self._aclient_loop is None or self._aclient_loop() is not loop:
                self._aclient = AsyncChatClient(self._endpoint.url, **self._client_settings())
                self._aclient_loop = weakref.ref(loop) if isinstance(loop, asyncio.AbstractEventLoop) else lambda: loop
            return self._aclient

    def close(self) -> None:
        """Close the sync client's connections (a later call opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients' connections (call it in the event loop that used the model)."""
        with self._lock:
            aclient, self._aclient, self._aclient_loop = self._aclient, None, None
        if aclient is not None:
            await aclient.aclose()
        self.close()

    # --- calls --------------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any], *, stream: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        """(wire messages, body parameters, call options) for one call; nothing is mutated."""
        params = dict(kwargs)
        options = {key: params.pop(key) for key in _CALL_OPTIONS if key in params}
        params.pop("stream", None)
        if stop is not None:
            params["stop"] = stop
        if "stop" in params and not params["stop"]:
            params["stop"] = None  # an empty list means no stop sequences
        chat_route = self._endpoint.dialect == "chat-completions"
        if params.get("model") is not None and not chat_route:
            raise InvalidRequestError(
                "model= only applies to chat-completions URLs; a dedicated /score endpoint serves the "
                "deployment chosen by deployment_name"
            )
        if stream and chat_route and self.stream_usage and "stream_options" not in {**self.model_kwargs, **params}:
            params["stream_options"] = {"include_usage": True}
        extra = {key: params.pop(key) for key in list(params) if key not in ChatParams.__annotations__}
        if extra:  # LangChain passes any keyword: what chat() does not name goes in the body as it is
            params["extra_body"] = {**params.get("extra_body", {}), **extra}
        return _wire_messages(messages), params, options

    def _result(self, reply: ChatResponse) -> ChatResult:
        message = _ai_message(reply, self.model_name or self.deployment_name or None)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        wire, params, options = self._request(messages, stop, kwargs, stream=False)
        return self._result(self._sync_client().chat(wire, **options, **params))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        wire, params, options = self._request(messages, stop, kwargs, stream=False)
        return self._result(await self._async_client().chat(wire, **options, **params))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        wire, params, options = self._request(messages, stop, kwargs, stream=True)
        with self._sync_client().stream(wire, **options, **params) as stream:
            for chunk in stream:
                generation = _generation_chunk(chunk)
                if generation is not None:
                    if run_manager:
                        run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
            reply = stream.response
        yield _last_chunk(reply, self.model_name or self.deployment_name or None)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        wire, params, options = self._request(messages, stop, kwargs, stream=True)
        async with self._async_client().stream(wire, **options, **params) as stream:
            async for chunk in stream:
                generation = _generation_chunk(chunk)
                if generation is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
            reply = stream.response
        yield _last_chunk(reply, self.model_name or self.deployment_name or None)

    # --- tools and structured output ----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, pydantic models, ``BaseTool``s, OpenAI tool dicts) to the model.

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (call some
        tool), or a tool name (call that tool).
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable returning ``schema`` instances (pydantic) or dicts (TypedDict, JSON schema).

        ``method``: ``"function_calling"`` (a forced tool call; most widely supported),
        ``"json_schema"`` (``response_format`` with the schema) or ``"json_mode"``
        (``response_format={"type": "json_object"}``; say the keys in the prompt).
        """
        if kwargs:
            raise InvalidRequestError(f"with_structured_output got unsupported arguments {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema, strict=strict)
            llm = self.bind_tools([tool], tool_choice="any", strict=strict, ls_structured_output_format=trace)
            name = tool["function"]["name"]
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                function = convert_to_openai_function(schema, strict=strict)
                json_schema = {"name": function["name"], "schema": function.get("parameters", {})}
                if strict is not None:
                    json_schema["strict"] = strict
                response_format: dict[str, Any] = {"type": "json_schema", "json_schema": json_schema}
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise InvalidRequestError(
                f"method must be 'function_calling', 'json_schema' or 'json_mode', not {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")
