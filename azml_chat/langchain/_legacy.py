"""The content formatters of LangChain's Azure ML integration, kept so that code written for
``langchain_community.llms.azureml_endpoint`` and ``langchain_community.chat_models.azureml_endpoint``
runs unchanged: ``ContentFormatterBase``, the text formatters of the LLM class (GPT-2, Dolly,
Hugging Face, OpenAI-like, and the deprecated OSS and Llama names) and the chat formatters
(OpenAI-like, Mistral, and the deprecated Llama name).

They send the same body shapes as the originals, with two fixes: prompts are JSON-encoded
exactly once (the originals escaped quotes and newlines by hand before JSON-encoding, and
wrapped text prompts in an extra pair of quotes), and ``max_tokens`` becomes the containers'
``max_new_tokens`` on ``/score``. Replies are parsed in every shape Azure ML containers send;
a reply that fits none raises :class:`azml_chat.ResponseFormatError`, an error body sent with
HTTP 200 :class:`azml_chat.ModelError`.

The models run the built-in chat formatters through azml_chat's own formatters. A formatter of
your own (a subclass that overrides a ``format_*`` method) builds the request body and parses
the reply itself; azml_chat sends the body, retries, times out and raises typed errors.
"""

from __future__ import annotations

import enum
import inspect
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, NamedTuple

import attrs
from langchain_core._api import LangChainDeprecationWarning
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, Generation

from azml_chat.config import Endpoint
from azml_chat.errors import AzureMLChatError, ConfigurationError, InvalidRequestError, ResponseFormatError
from azml_chat.formatters import (
    ChatFormatter,
    OpenAIChatFormatter,
    TextGenerationFormatter,
    get_formatter,
    parse_chat_completion,
    parse_dedicated_reply,
)
from azml_chat.messages import ChatResponse, Message

from ._convert import ai_message, text_of, to_messages, wire_message

__all__ = [
    "AzureMLEndpointApiType",
    "ContentFormatterBase",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "FormatterPlan",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "LegacyReply",
    "LlamaChatContentFormatter",
    "LlamaContentFormatter",
    "MistralChatContentFormatter",
    "OSSContentFormatter",
    "plan_formatter",
    "preformatted",
]


class AzureMLEndpointApiType(enum.StrEnum):
    """The endpoint kind, as in LangChain: ``dedicated`` (managed online endpoint, ``/score``),
    ``serverless`` (pay-as-you-go, chat completions); ``realtime`` is the old name of dedicated."""

    dedicated = "dedicated"
    realtime = "realtime"
    serverless = "serverless"


def _is_serverless(api_type: Any) -> bool:
    return bool(getattr(api_type, "value", api_type) == "serverless")


def _deprecated(old: str, new: str) -> None:
    warnings.warn(  # LangChain's deprecation warnings are shown by default
        f"`{old}` will be deprecated in the future. Please use `{new}` instead.",
        LangChainDeprecationWarning,
        stacklevel=3,
    )


def _json_body(body: Any) -> bytes:
    return json.dumps(body).encode()


def _container_params(model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters for Hugging Face containers on ``/score``: ``max_tokens`` becomes ``max_new_tokens``."""
    return TextGenerationFormatter().rename_params(model_kwargs)


def _decode(output: bytes | str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        text = output.decode("utf-8", "replace") if isinstance(output, bytes | bytearray) else str(output)
        raise ResponseFormatError("the reply is not JSON", excerpt=text[:300]) from None


def _generation(reply: ChatResponse | str, payload: Any) -> Generation:
    if isinstance(reply, str):
        return Generation(text=reply)
    info: dict[str, Any] = {"finish_reason": reply.finish_reason}
    choices = payload.get("choices") if isinstance(payload, Mapping) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) and "logprobs" in choices[0]:
        info["logprobs"] = choices[0]["logprobs"]
    return Generation(text=reply.content, generation_info=info)


class ContentFormatterBase:
    """Base class of content formatters, with the interface of LangChain's ``ContentFormatterBase``.

    A custom formatter written for ``langchain_community`` keeps working: subclass this class
    (or keep your old base class) and implement :meth:`format_request_payload` (LLM class:
    one prompt) or :meth:`format_messages_request_payload` (chat model: messages), returning
    the JSON body as ``bytes``, ``str`` or a JSON value, and :meth:`format_response_payload`
    (turn the reply bytes into a ``Generation``/``ChatGeneration`` or the answer text). The
    ``api_type`` argument may be left out of your methods' signatures, as in LangChain's
    documented example. For new code, subclass :class:`azml_chat.ChatFormatter` and pass it as
    ``content_formatter`` instead.
    """

    content_type: str | None = "application/json"
    """The MIME type of the request body (only JSON is supported)."""
    accepts: str | None = "application/json"
    """The MIME type of the reply."""
    format_error_msg: str = (
        "Error while formatting response payload for chat model of type `{api_type}`. "
        "Are you using the right formatter for the deployed model and endpoint type?"
    )
    """The message of the ``ValueError`` a formatter raises for a reply it cannot read."""

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
        """The endpoint kinds this formatter can talk to (``dedicated`` includes ``realtime``)."""
        return [AzureMLEndpointApiType.dedicated]

    def format_request_payload(
        self,
        prompt: str,
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> Any:
        """Return the JSON request body for one prompt (LLM class)."""
        raise NotImplementedError

    def format_messages_request_payload(
        self,
        messages: list[BaseMessage],
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> Any:
        """Return the JSON request body for a chat (chat model)."""
        raise NotImplementedError

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> Any:
        """Turn the reply body into a ``Generation`` (LLM) or ``ChatGeneration`` (chat)."""
        raise NotImplementedError


# --- the LLM class's formatters --------------------------------------------------------------


def _dedicated_text(output: bytes) -> Generation:
    payload = _decode(output)
    return _generation(parse_dedicated_reply(payload), payload)


class GPT2ContentFormatter(ContentFormatterBase):
    """GPT-2 and other text-generation models of the Azure ML catalog:
    ``{"inputs": {"input_string": [prompt]}, "parameters": {...}}``, replies ``[{"0": text}]``."""

    def format_request_payload(
        self,
        prompt: str,
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> bytes:
        """The request body for ``prompt``."""
        return _json_body({"inputs": {"input_string": [prompt]}, "parameters": _container_params(model_kwargs)})

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> Generation:
        """The generated text (any reply shape of the Azure ML containers)."""
        return _dedicated_text(output)


class OSSContentFormatter(GPT2ContentFormatter):
    """Deprecated name of :class:`GPT2ContentFormatter` (as in LangChain), for OSS catalog models."""

    def __init__(self) -> None:
        _deprecated("OSSContentFormatter", "GPT2ContentFormatter")


class HFContentFormatter(ContentFormatterBase):
    """Hugging Face text-generation models: ``{"inputs": [prompt], "parameters": {...}}``,
    replies ``[{"0": {"generated_text": text}}]`` (``[{"generated_text": text}]`` too)."""

    def format_request_payload(
        self,
        prompt: str,
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> bytes:
        """The request body for ``prompt``."""
        return _json_body({"inputs": [prompt], "parameters": _container_params(model_kwargs)})

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> Generation:
        """The generated text."""
        payload = _decode(output)
        first = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(first, list) and first:  # one list of generations per prompt
            first = first[0]
        if isinstance(first, Mapping) and isinstance(first.get("0"), Mapping):
            first = first["0"]
        if isinstance(first, Mapping) and isinstance(first.get("generated_text"), str):
            return Generation(text=first["generated_text"])
        return _generation(parse_dedicated_reply(payload), payload)


class DollyContentFormatter(ContentFormatterBase):
    """Dolly-v2: ``{"input_data": {"input_string": [prompt]}, "parameters": {...}}``, replies ``[text]``."""

    def format_request_payload(
        self,
        prompt: str,
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> bytes:
        """The request body for ``prompt``."""
        return _json_body({"input_data": {"input_string": [prompt]}, "parameters": _container_params(model_kwargs)})

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> Generation:
        """The generated text."""
        return _dedicated_text(output)


class CustomOpenAIContentFormatter(ContentFormatterBase):
    """Models with an OpenAI-like scheme. On ``dedicated`` endpoints the body is
    ``{"input_data": {"input_string": [prompt], "parameters": {...}}}``; on ``serverless``
    (chat-completions) endpoints the prompt is sent as one user message of an OpenAI
    chat-completions body, and the model streams."""

    @property
    def supported_api_types(self) -> list[AzureMLEndpointApiType]:
        """Dedicated and serverless endpoints."""
        return [AzureMLEndpointApiType.dedicated, AzureMLEndpointApiType.serverless]

    def format_request_payload(
        self,
        prompt: str,
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> bytes:
        """The request body for ``prompt`` on this kind of endpoint."""
        if _is_serverless(api_type):
            return _json_body({"messages": [{"role": "user", "content": prompt}], **model_kwargs})
        return _json_body({"input_data": {"input_string": [prompt], "parameters": _container_params(model_kwargs)}})

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> Generation:
        """The generated text, with ``finish_reason`` (and ``logprobs``) from chat completions."""
        if not _is_serverless(api_type):
            return _dedicated_text(output)
        payload = _decode(output)
        return _generation(parse_chat_completion(payload), payload)


class LlamaContentFormatter(CustomOpenAIContentFormatter):
    """Deprecated name of :class:`CustomOpenAIContentFormatter` (as in LangChain)."""

    def __init__(self) -> None:
        _deprecated("LlamaContentFormatter", "CustomOpenAIContentFormatter")


# --- the chat model's formatters -------------------------------------------------------------


class CustomOpenAIChatContentFormatter(ContentFormatterBase):
    """Chat models taking OpenAI-style messages (Llama, Phi, vLLM, Azure AI serverless models).

    On dedicated ``/score`` endpoints the body is ``{"input_data": {"input_string": [messages],
    "parameters": {...}}}`` (``max_tokens`` becomes ``max_new_tokens``) and every known reply
    shape parses; on chat-completions URLs the body is an OpenAI chat-completions request.
    The models use azml_chat's own formatters for it.
    """

    family: ClassVar[str] = "llama"
    """The azml_chat formatter family that builds ``/score`` bodies for this formatter."""
    SUPPORTED_ROLES: ClassVar[list[str]] = ["user", "assistant", "system", "tool"]
    """Roles this formatter sends."""

    @staticmethod
    def _convert_message_to_dict(message: BaseMessage) -> dict[str, Any]:
        """One message in the OpenAI form (kept for subclasses written for LangChain; no hand escaping)."""
        return wire_message(message)

    @property
    def supported_api_types(self) -> list[AzureMLEndpointApiType]:
        """Dedicated and serverless endpoints."""
        return [AzureMLEndpointApiType.dedicated, AzureMLEndpointApiType.serverless]

    def chat_formatter(self, api_type: AzureMLEndpointApiType | str) -> ChatFormatter:
        """The azml_chat formatter this formatter stands for on this kind of endpoint."""
        return OpenAIChatFormatter() if _is_serverless(api_type) else get_formatter(self.family)

    def format_messages_request_payload(
        self,
        messages: list[BaseMessage],
        model_kwargs: dict[str, Any],
        api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated,
    ) -> bytes:
        """The request body, built by the azml_chat formatter for ``api_type``."""
        formatter = self.chat_formatter(api_type)
        try:
            body = formatter.format_request(tuple(to_messages(messages)), dict(model_kwargs))
        except AzureMLChatError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"{type(formatter).__name__} could not format the request: {exc}") from exc
        return _json_body(body)

    def format_response_payload(
        self, output: bytes, api_type: AzureMLEndpointApiType = AzureMLEndpointApiType.dedicated
    ) -> ChatGeneration:
        """Parse any reply shape of the endpoint kind into a ``ChatGeneration``."""
        parsed = self.chat_formatter(api_type).parse_response(_decode(output))
        reply = ChatResponse(Message("assistant", parsed)) if isinstance(parsed, str) else parsed
        return ChatGeneration(message=ai_message(reply, None), generation_info={"finish_reason": reply.finish_reason})


class LlamaChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Deprecated name of :class:`CustomOpenAIChatContentFormatter` (as in LangChain)."""

    def __init__(self) -> None:
        _deprecated("LlamaChatContentFormatter", "CustomOpenAIChatContentFormatter")


class MistralChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Mistral-instruct: on ``/score`` the system text joins the first user turn (the template has
    no system role; a system-only chat becomes one user turn instead of crashing)."""

    family: ClassVar[str] = "mistral"


# --- running a formatter in azml_chat's clients -----------------------------------------------

_FORMAT_METHODS = ("format_request_payload", "format_messages_request_payload", "format_response_payload")


def _implements(formatter: ContentFormatterBase, name: str) -> bool:
    method = getattr(type(formatter), name, None)
    return callable(method) and method is not getattr(ContentFormatterBase, name)


def _own_methods(formatter: ContentFormatterBase, builtin: type[ContentFormatterBase]) -> bool:
    """Whether a subclass of ``builtin`` replaced one of its ``format_*`` methods."""
    return any(getattr(type(formatter), name) is not getattr(builtin, name) for name in _FORMAT_METHODS)


def call_formatter(method: Callable[..., Any], *args: Any, api_type: AzureMLEndpointApiType) -> Any:
    """``method(*args, api_type)``, or ``method(*args)`` for methods written without ``api_type``
    (LangChain's documented custom-formatter example has none)."""
    try:
        inspect.signature(method).bind(*args, api_type)
    except TypeError:
        return method(*args)
    except ValueError:  # no signature to read (a builtin): pass everything
        pass
    return method(*args, api_type)


def body_text(payload: Any, formatter: object) -> str:
    """The JSON text of what a formatter's ``format_*request_payload`` returned."""
    if isinstance(payload, bytes | bytearray):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            text = ""
    elif isinstance(payload, str):
        text = payload
    else:
        try:
            return json.dumps(payload)
        except (TypeError, ValueError):
            text = ""
    try:
        json.loads(text)
    except ValueError:
        raise InvalidRequestError(
            f"{type(formatter).__name__} built a request body that is not JSON (azml_chat sends JSON bodies): "
            f"{str(payload)[:100]!r}"
        ) from None
    return text


@attrs.frozen
class LegacyReply(ChatResponse):
    """A reply parsed by a LangChain content formatter: ``generation`` is what it returned."""

    generation: Generation | None = attrs.field(default=None, repr=False)


class _PreformattedBody(ChatFormatter):
    """Sends a request body a LangChain content formatter built before the call (it arrives as
    the text of the only message, see :func:`preformatted`) and parses replies with that
    formatter's ``format_response_payload``."""

    name: ClassVar[str] = "langchain-content-formatter"

    def __init__(self, legacy: ContentFormatterBase, api_type: AzureMLEndpointApiType) -> None:
        self.legacy = legacy
        self.api_type = api_type

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        return json.loads(messages[0].text)

    def parse_response(self, payload: Any) -> ChatResponse:
        result = call_formatter(self.legacy.format_response_payload, _json_body(payload), api_type=self.api_type)
        if isinstance(result, str):
            result = Generation(text=result)
        elif isinstance(result, BaseMessage):
            result = ChatGeneration(message=result)
        if not isinstance(result, Generation):
            raise TypeError(
                f"format_response_payload returned {type(result).__name__}, not a Generation, ChatGeneration or str"
            )
        info = result.generation_info or {}
        text = text_of(result.message.content) if isinstance(result, ChatGeneration) else result.text
        return LegacyReply(Message("assistant", text), finish_reason=info.get("finish_reason"), generation=result)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.legacy).__name__})"


class _PreformattedChatBody(_PreformattedBody):
    """:class:`_PreformattedBody` on a chat-completions route (the body dialect the client checks)."""

    dialect: ClassVar[Literal["score", "chat-completions"]] = "chat-completions"

    def request_headers(self, body: Any) -> Mapping[str, str]:
        # Body keys outside the standard set need the gateway's pass-through header.
        return OpenAIChatFormatter().request_headers(body)


def preformatted(body: str) -> list[Message]:
    """The messages argument that carries a pre-built request body to :class:`_PreformattedBody`."""
    return [Message("user", body)]


class FormatterPlan(NamedTuple):
    """How a model runs its ``content_formatter``.

    ``client_formatter`` is what its clients get (``None``: the client's default for the
    route). ``legacy`` is set when the content formatter's own methods build each request
    body (then ``client_formatter`` sends that body and parses replies with it).
    """

    client_formatter: str | ChatFormatter | None
    legacy: ContentFormatterBase | None


def _kind(api_type: Any) -> str:
    """``dedicated`` or ``serverless`` (``realtime`` is dedicated) of an api type, enum or string."""
    value = getattr(api_type, "value", api_type)
    return "dedicated" if value == "realtime" else str(value)


def _check_kind(formatter: ContentFormatterBase, api_type: AzureMLEndpointApiType) -> None:
    supported = {_kind(supported_kind) for supported_kind in formatter.supported_api_types}
    kind = _kind(api_type)
    if kind not in supported:
        raise ConfigurationError(
            f"content_formatter {type(formatter).__name__} does not support {kind} endpoints "
            f"(it supports {sorted(supported)})"
        )


def plan_formatter(spec: Any, endpoint: Endpoint, api_type: AzureMLEndpointApiType, *, prompts: bool) -> FormatterPlan:
    """Work out how to run ``content_formatter=spec`` on ``endpoint``.

    ``spec`` is a content formatter instance or class (the LangChain docs pass both), an
    :class:`azml_chat.ChatFormatter` (instance or class), a formatter family name, or
    ``None``. ``prompts`` says the caller is the LLM class (one prompt per call) rather than
    the chat model.
    """
    chat_route = endpoint.route != "score"
    if spec is None and prompts:
        spec = CustomOpenAIContentFormatter()
    if spec is None:
        return FormatterPlan(None, None)
    if isinstance(spec, str):
        get_formatter(spec)  # an unknown name fails here, not at the first call
        return FormatterPlan(spec, None)  # the client picks the family's body for the route
    if isinstance(spec, ChatFormatter) or (isinstance(spec, type) and issubclass(spec, ChatFormatter)):
        return FormatterPlan(get_formatter(spec), None)
    formatter = spec() if isinstance(spec, type) else spec
    if not isinstance(formatter, ContentFormatterBase) and not callable(
        getattr(formatter, "format_response_payload", None)
    ):
        raise ConfigurationError(
            "content_formatter must be a ContentFormatterBase subclass or instance (e.g. "
            "CustomOpenAIChatContentFormatter), an azml_chat.ChatFormatter, or a formatter name like 'mistral'; "
            f"got {spec!r:.80}"
        )
    if getattr(formatter, "content_type", "application/json") not in (None, "application/json"):
        raise ConfigurationError("content_formatter.content_type must be application/json: azml_chat sends JSON")
    _check_kind(formatter, api_type)
    chat_builtin = isinstance(formatter, CustomOpenAIChatContentFormatter)
    if chat_builtin and not _own_methods(formatter, CustomOpenAIChatContentFormatter):
        return FormatterPlan(None if chat_route else formatter.family, None)
    text_builtin = isinstance(formatter, CustomOpenAIContentFormatter)
    if text_builtin and not _own_methods(formatter, CustomOpenAIContentFormatter) and (chat_route or not prompts):
        return FormatterPlan(None, None)  # the OpenAI-like scheme, run natively (the chat route streams)
    builds_prompts = _implements(formatter, "format_request_payload")
    builds_chats = _implements(formatter, "format_messages_request_payload")
    name = type(formatter).__name__
    if not (builds_prompts or builds_chats):
        raise ConfigurationError(
            f"content_formatter {name} implements neither format_request_payload (for AzureMLOnlineEndpoint) "
            "nor format_messages_request_payload (for AzureMLChatOnlineEndpoint)"
        )
    if not (prompts or builds_chats):
        raise ConfigurationError(
            f"content_formatter {name} formats text prompts for AzureMLOnlineEndpoint (the LLM class); the chat "
            "model needs format_messages_request_payload, e.g. CustomOpenAIChatContentFormatter"
        )
    body_formatter = _PreformattedChatBody if chat_route else _PreformattedBody
    return FormatterPlan(body_formatter(formatter, api_type), formatter)


def build_body(
    legacy: ContentFormatterBase,
    params: dict[str, Any],
    api_type: AzureMLEndpointApiType,
    *,
    messages: list[BaseMessage] | None = None,
    prompt: str | None = None,
) -> str:
    """The request body ``legacy`` builds for a chat (``messages``) or one ``prompt``."""
    method: Callable[..., Any]
    subject: str | list[BaseMessage]
    if prompt is not None and _implements(legacy, "format_request_payload"):
        method, subject = legacy.format_request_payload, prompt
    else:
        method, subject = legacy.format_messages_request_payload, messages or [HumanMessage(prompt or "")]
    try:
        payload = call_formatter(method, subject, params, api_type=api_type)
    except AzureMLChatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"{type(legacy).__name__}.{method.__name__} failed ({type(exc).__name__}: {exc})"
        ) from exc
    return body_text(payload, legacy)
