"""OpenTelemetry spans and metrics for chat calls, after the GenAI semantic conventions.

Needs the extra ``azml-chat[otel]`` (``opentelemetry-api`` only: you bring the SDK and
exporters). Turn it on for every client made afterwards::

    import azml_chat.otel

    azml_chat.otel.instrument()          # the global tracer and meter providers

or for one client with ``ChatClient(..., hooks=[azml_chat.otel.OpenTelemetryHooks()])``
(not both: a client then reports each call twice). :func:`uninstrument` turns the global
switch off again for clients made afterwards.

What each ``chat()`` or ``stream()`` call reports (``model_info()`` reports nothing):

- one ``CLIENT`` span named ``chat {gen_ai.request.model}`` (``chat`` when no model is
  known), a child of the span current when the call began. It is current while a
  ``chat()`` call runs, so HTTP spans from an httpx or aiohttp instrumentation nest under
  it; a stream's span ends when the stream ends, fails or is closed early.
  Attributes: ``gen_ai.operation.name`` (``chat``), ``gen_ai.provider.name``,
  ``gen_ai.request.model``, ``server.address``, ``server.port``; the request's
  ``gen_ai.request.temperature``/``max_tokens``/``top_p``/``top_k``/``frequency_penalty``/
  ``presence_penalty``/``stop_sequences``/``seed``/``choice.count``, ``gen_ai.output.type``
  and ``gen_ai.request.stream``; the reply's ``gen_ai.response.id``/``model``/
  ``finish_reasons``, ``gen_ai.usage.input_tokens``/``output_tokens`` (and
  ``reasoning.output_tokens``, ``cache_read.input_tokens`` when reported),
  ``gen_ai.response.time_to_first_chunk`` for streams; ``error.type`` and an error status
  when the call failed. Our own: ``az.client_request_id`` and ``az.service_request_id``
  (the names other Azure SDKs use), ``azml_chat.api_type``, ``azml_chat.route``,
  ``azml_chat.deployment_name``, ``azml_chat.attempts`` and ``azml_chat.closed_early``.
- one ``azml_chat.attempt_failed`` span event per failed attempt, with
  ``azml_chat.attempt`` (counting from 0), ``error.type``, ``http.response.status_code``,
  ``az.service_request_id`` and ``azml_chat.retry_in`` (seconds until the retry; absent
  when none follows).
- histograms ``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage``
  (``{token}``, one record per ``gen_ai.token.type``: ``input``, ``output``) and, for
  streams, ``gen_ai.client.operation.time_to_first_chunk`` (s), with the bucket
  boundaries the convention advises.

``gen_ai.provider.name`` is ``azure.ai.inference`` for serverless and Foundry endpoints
and ``azure.ai.openai`` for Azure OpenAI, both from the convention's list;
``azure.ai.ml`` for dedicated Azure ML online endpoints is ours: the convention lists no
value for them.

``error.type`` is the class name of the error: one of azml_chat's (``APIConnectionError``,
``APITimeoutError``, ``BadRequestError``, ``AuthenticationError``,
``PermissionDeniedError``, ``NotFoundError``, ``RateLimitError``, ``ServerError``,
``ModelError``, ``APIStatusError``, ``ResponseFormatError``, ``StreamError``,
``ClientClosedError``) or, for anything else, such as a cancellation, its qualified name
(``CancelledError``, ``trio.Cancelled``).

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.tool.definitions``, as JSON strings in the convention's message schema) is
recorded only when asked for: ``capture_content=True`` or the environment variable
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``. It may hold personal data.

This instrumentation is new, so it emits the latest experimental GenAI conventions; there
is no older version to keep (``OTEL_SEMCONV_STABILITY_OPT_IN`` changes nothing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.metrics import MeterProvider, get_meter
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as _exc:  # pragma: no cover - checked in a subprocess by tests/test_otel.py
    raise ImportError(f'azml_chat.otel needs opentelemetry-api: pip install "azml-chat[otel]" ({_exc})') from None

from ._version import __version__
from .errors import APIStatusError, AzureMLChatError
from .hooks import AttemptInfo, CallInfo, CallResult, ChatHooks, add_default_hooks, remove_default_hooks
from .messages import ChatResponse, ImagePart, Message, TextPart

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "PROVIDER_NAMES",
    "OpenTelemetryHooks",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

#: The convention's switch for recording message content.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: ``gen_ai.provider.name`` by api type; ``azure.ai.ml`` is ours (see the module docstring).
PROVIDER_NAMES: Mapping[str, str] = {
    "dedicated": "azure.ai.ml",
    "serverless": "azure.ai.inference",
    "foundry": "azure.ai.inference",
    "azure-openai": "azure.ai.openai",
}

# Bucket boundaries the convention advises for the two kinds of histogram.
_SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864

# Request parameters by body key: the attribute and the type it takes. Dedicated /score
# containers name the token limit max_new_tokens; OpenAI routes may send max_completion_tokens.
_FLOAT_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}
_INT_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_new_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
}
_OUTPUT_TYPES = {"json_object": "json", "json_schema": "json", "text": "text"}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def request_attributes(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.request.*`` and ``gen_ai.output.type`` attributes of the body parameters sent."""
    attributes: dict[str, Any] = {}
    for key, name in _FLOAT_PARAMS.items():
        value = params.get(key)
        if _is_number(value):
            attributes[name] = float(value)
    for key, name in _INT_PARAMS.items():
        value = params.get(key)
        if _is_number(value) and name not in attributes:
            attributes[name] = int(value)
    n = params.get("n")
    if _is_number(n) and n != 1:
        attributes["gen_ai.request.choice.count"] = int(n)
    stop = params.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in _OUTPUT_TYPES:
        attributes["gen_ai.output.type"] = _OUTPUT_TYPES[response_format["type"]]
    return attributes


def error_type(error: BaseException) -> str:
    """``error.type`` of an error: our class names bare, others qualified by their module."""
    cls = type(error)
    if isinstance(error, AzureMLChatError) or cls.__module__ == "builtins":
        return cls.__qualname__
    if cls.__module__.startswith("asyncio"):  # asyncio.exceptions.CancelledError reads as CancelledError
        return cls.__qualname__
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"


def _json_arguments(arguments: str) -> Any:
    """Tool-call arguments as the object they encode (the convention asks for objects), else as sent."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _image_part(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:"):
        header, _, data = part.url.partition(",")
        mime_type = header[5:].split(";")[0] or None
        return {"type": "blob", "modality": "image", "mime_type": mime_type, "content": data}
    return {"type": "uri", "modality": "image", "uri": part.url}


def _message_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.reasoning_content:
        parts.append({"type": "reasoning", "content": message.reasoning_content})
    content = message.content
    if message.role == "tool":
        texts = [content] if isinstance(content, str) else [p.text for p in content or () if isinstance(p, TextPart)]
        text = "".join(texts)
        parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": text})
    elif isinstance(content, str):
        if content:  # an assistant turn that only calls tools often has content ""
            parts.append({"type": "text", "content": content})
    elif content:
        for part in content:
            parts.append({"type": "text", "content": part.text} if isinstance(part, TextPart) else _image_part(part))
    for call in message.tool_calls:
        arguments = _json_arguments(call.arguments)
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments})
    return parts


def input_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The messages sent, in the convention's input-messages schema (``role``, ``parts``)."""
    result = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "parts": _message_parts(message)}
        if message.name:
            item["name"] = message.name
        result.append(item)
    return result


def output_messages(response: ChatResponse) -> list[dict[str, Any]]:
    """The reply's choices, in the convention's output-messages schema (with ``finish_reason``)."""
    messages = []
    for choice in response.choices:
        message = choice.message
        messages.append(
            {"role": message.role, "parts": _message_parts(message), "finish_reason": choice.finish_reason or ""}
        )
    return messages


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """The function tools of the request body, in the convention's tool-definitions shape."""
    definitions = []
    for tool in tools if isinstance(tools, list | tuple) else ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping):
            definition = {"type": tool.get("type", "function"), "name": function.get("name")}
            for key in ("description", "parameters"):
                if key in function:
                    definition[key] = function[key]
            definitions.append(definition)
    return definitions


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _capture_from_env() -> bool:
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


class _CallState:
    """What one instrumented call carries from its start to its end."""

    __slots__ = ("metric_attributes", "request_id", "span", "token")

    def __init__(self, span: Span, metric_attributes: dict[str, Any], token: object | None) -> None:
        self.span = span
        self.metric_attributes = metric_attributes
        self.token = token
        self.request_id: str | None = None


class OpenTelemetryHooks(ChatHooks):
    """Hooks that report each ``chat()``/``stream()`` call as a GenAI span and metrics
    (see the module docstring for what is recorded).

    ``tracer_provider`` and ``meter_provider`` default to the global ones (as they are when
    a span or metric is recorded, so they may be set later). ``capture_content`` records
    message content; ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
    ) -> None:
        self.capture_content: bool = _capture_from_env() if capture_content is None else capture_content
        self._tracer = trace.get_tracer("azml_chat", __version__, tracer_provider)
        meter = get_meter("azml_chat", __version__, meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed reply.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        # Where this instance keeps its state in CallInfo.context: two instances may observe one call.
        self._key = f"azml_chat.otel.{id(self)}"

    def __repr__(self) -> str:
        return f"OpenTelemetryHooks(capture_content={self.capture_content})"

    def on_call_start(self, call: CallInfo) -> None:
        """Start the call's span (current for the rest of a ``chat()`` call)."""
        if call.operation == "model_info":
            return
        provider = PROVIDER_NAMES.get(call.api_type, "azure.ai.ml")
        metric_attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "server.address": call.server_address,
            "server.port": call.server_port,
        }
        if call.model:
            metric_attributes["gen_ai.request.model"] = call.model
        attributes = {**metric_attributes, **request_attributes(call.params)}
        if call.params.get("stream") is True:  # not on routes that cannot stream (/score)
            attributes["gen_ai.request.stream"] = True
        attributes["azml_chat.api_type"] = call.api_type
        attributes["azml_chat.route"] = call.route
        attributes["az.client_request_id"] = call.client_request_id
        if call.deployment_name:
            attributes["azml_chat.deployment_name"] = call.deployment_name
        name = f"chat {call.model}" if call.model else "chat"
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        if self.capture_content and span.is_recording():
            span.set_attribute("gen_ai.input.messages", _dumps(input_messages(call.messages)))
            tools = tool_definitions(call.params.get("tools"))
            if tools:
                span.set_attribute("gen_ai.tool.definitions", _dumps(tools))
        # A stream's span is not made current: its chunks are read wherever the caller is,
        # and a context attached there could not be detached in the same place.
        token = otel_context.attach(trace.set_span_in_context(span)) if call.operation == "chat" else None
        call.context[self._key] = _CallState(span, metric_attributes, token)

    def on_attempt(self, attempt: AttemptInfo) -> None:
        """Record a failed attempt as a span event."""
        state = attempt.call.context.get(self._key)
        if state is None:
            return
        if attempt.request_id:
            state.request_id = attempt.request_id
        error = attempt.error
        if error is None:
            return
        attributes: dict[str, Any] = {"azml_chat.attempt": attempt.attempt, "error.type": error_type(error)}
        if attempt.status_code is not None:
            attributes["http.response.status_code"] = attempt.status_code
        if attempt.request_id:
            attributes["az.service_request_id"] = attempt.request_id
        if attempt.retry_in is not None:
            attributes["azml_chat.retry_in"] = attempt.retry_in
        state.span.add_event("azml_chat.attempt_failed", attributes)

    def on_call_end(self, result: CallResult) -> None:
        """End the span; record the duration, token usage and time to first chunk."""
        state: _CallState | None = result.call.context.pop(self._key, None)
        if state is None:
            return
        if state.token is not None:
            otel_context.detach(state.token)  # type: ignore[arg-type]
        span = state.span
        metric_attributes = state.metric_attributes
        response = result.response
        span.set_attribute("azml_chat.attempts", result.attempts)
        if result.closed_early:
            span.set_attribute("azml_chat.closed_early", True)
        if response is not None:
            self._record_response(span, response, metric_attributes)
            state.request_id = response.request_id or state.request_id
        if state.request_id:
            span.set_attribute("az.service_request_id", state.request_id)
        if result.time_to_first_chunk is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", result.time_to_first_chunk)
        if result.error is not None:
            kind = error_type(result.error)
            metric_attributes["error.type"] = kind
            span.set_attribute("error.type", kind)
            if isinstance(result.error, APIStatusError):
                span.set_attribute("http.response.status_code", result.error.status_code)
            span.set_status(Status(StatusCode.ERROR, str(result.error) or kind))
        span.end()
        self._duration.record(result.elapsed, metric_attributes)
        if result.time_to_first_chunk is not None:
            self._first_chunk.record(result.time_to_first_chunk, metric_attributes)
        usage = response.usage if response is not None else None
        if usage is not None:
            self._tokens.record(usage.prompt_tokens, {**metric_attributes, "gen_ai.token.type": "input"})
            self._tokens.record(usage.completion_tokens, {**metric_attributes, "gen_ai.token.type": "output"})

    def _record_response(self, span: Span, response: ChatResponse, metric_attributes: dict[str, Any]) -> None:
        if response.model:
            metric_attributes["gen_ai.response.model"] = response.model
            span.set_attribute("gen_ai.response.model", response.model)
        if response.id:
            span.set_attribute("gen_ai.response.id", response.id)
        reasons = [choice.finish_reason for choice in response.choices if choice.finish_reason]
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", reasons)
        usage = response.usage
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            if usage.reasoning_tokens is not None:
                span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
            if usage.cached_tokens is not None:
                span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens)
        if self.capture_content and span.is_recording():
            span.set_attribute("gen_ai.output.messages", _dumps(output_messages(response)))


_installed: OpenTelemetryHooks | None = None


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool | None = None,
) -> OpenTelemetryHooks:
    """Report every call of the clients made from now on (see the module docstring).

    Calling it again replaces the earlier hooks (for clients made afterwards). Returns the
    hooks installed. The arguments are those of :class:`OpenTelemetryHooks`.
    """
    global _installed
    uninstrument()
    hooks = OpenTelemetryHooks(
        tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=capture_content
    )
    add_default_hooks(hooks)
    _installed = hooks
    return hooks


def uninstrument() -> None:
    """Stop reporting the calls of clients made from now on (clients already made keep their hooks)."""
    global _installed
    if _installed is not None:
        remove_default_hooks(_installed)
        _installed = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in force."""
    return _installed is not None
