"""OpenTelemetry GenAI spans and metrics over real HTTP, read back from the SDK's in-memory
exporters: chat, stream (read to the end, closed early, failing), tool calls, errors and
retries, on ChatClient, AsyncChatClient (httpx, asyncio and trio) and the aiohttp driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from support import API_KEY, settings, stream, with_client

import azml_chat.otel
from azml_chat import (
    APIConnectionError,
    AsyncChatClient,
    AttemptInfo,
    BadRequestError,
    ChatClient,
    ChatHooks,
    Message,
    RateLimitError,
    StreamError,
    ToolCall,
)
from azml_chat.otel import CAPTURE_CONTENT_ENV, OpenTelemetryHooks
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

MODES = ["sync", "asyncio", "aiohttp"]
mode_param = pytest.mark.parametrize("mode", MODES)
SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class Telemetry:
    """An SDK tracer and meter provider writing to memory, and what they recorded."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def hooks(self, **options: Any) -> OpenTelemetryHooks:
        return OpenTelemetryHooks(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options)

    def spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.instrumentation_scope.name == "azml_chat"]

    def span(self) -> ReadableSpan:
        (span,) = self.spans()
        return span

    def points(self) -> dict[str, list[HistogramDataPoint]]:
        """Histogram points by metric name."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[HistogramDataPoint]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)  # type: ignore[arg-type]
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    found = Telemetry()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


def chat(mode: str, url: str, messages: Any, *, client: dict[str, Any], **params: Any) -> Any:
    return with_client(mode, url, lambda c: c.chat(messages, **params), lambda c: c.chat(messages, **params), **client)


def base_attributes(endpoint: LocalEndpoint, model: str | None = "m1") -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.inference",
        "server.address": "127.0.0.1",
        "server.port": endpoint.port,
    }
    if model is not None:
        attributes["gen_ai.request.model"] = model
    return attributes


@mode_param
def test_a_chat_is_one_client_span_with_request_and_reply_attributes(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    hooks = telemetry.hooks()
    reply = chat(
        mode,
        endpoint.url,
        "Hello there",
        client={"hooks": [hooks], "model": "m1"},
        temperature=0.5,
        max_tokens=20,
        top_p=0.9,
        stop=["END"],
        seed=7,
        n=1,
    )
    span = telemetry.span()
    assert span.name == "chat m1"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()  # no failed attempt
    assert dict(span.attributes or {}) == {
        **base_attributes(endpoint),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 20,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.response.id": reply.id,
        "gen_ai.response.model": "m1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 2,
        "azml_chat.api_type": "serverless",
        "azml_chat.route": "v1-chat",
        "azml_chat.attempts": 1,
        "az.client_request_id": endpoint.requests[0].headers["x-ms-client-request-id"],
        "az.service_request_id": reply.request_id,
    }
    assert reply.id and reply.request_id
    points = telemetry.points()
    assert set(points) == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
    (duration,) = points["gen_ai.client.operation.duration"]
    assert dict(duration.attributes) == {**base_attributes(endpoint), "gen_ai.response.model": "m1"}
    assert duration.count == 1 and duration.sum > 0
    assert tuple(duration.explicit_bounds) == SECONDS_BUCKETS
    tokens = {p.attributes["gen_ai.token.type"]: p for p in points["gen_ai.client.token.usage"]}
    assert {kind: (p.count, p.sum) for kind, p in tokens.items()} == {"input": (1, 2), "output": (1, 2)}
    assert dict(tokens["input"].attributes) == {**duration.attributes, "gen_ai.token.type": "input"}
    assert tuple(tokens["input"].explicit_bounds) == tuple(float(4**i) for i in range(14))


@mode_param
def test_a_stream_span_ends_with_the_stream_and_records_time_to_first_chunk(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    hooks = telemetry.hooks()
    chunks, reply = stream(
        mode,
        endpoint.url,
        "one two three",
        client={"hooks": [hooks], "model": "m1"},
        max_tokens=5,
        stream_options={"include_usage": True},
    )
    assert reply is not None and len(chunks) > 3
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.request.max_tokens"] == 5
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (3, 3)
    assert attributes["gen_ai.response.id"] == reply.id
    assert "azml_chat.closed_early" not in attributes
    first_chunk = attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(first_chunk, float)
    assert 0 < first_chunk * 1e9 <= span.end_time - span.start_time  # type: ignore[operator]
    points = telemetry.points()
    (ttfc,) = points["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1 and ttfc.sum == first_chunk
    assert dict(ttfc.attributes) == {**base_attributes(endpoint), "gen_ai.response.model": "m1"}
    assert sum(p.sum for p in points["gen_ai.client.token.usage"]) == 6


@mode_param
def test_a_stream_closed_early_ends_its_span_without_an_error(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    hooks = telemetry.hooks()
    chunks, reply = stream(mode, endpoint.url, "a b c d e f", client={"hooks": [hooks], "model": "m1"}, stop_after=2)
    assert reply is None and len(chunks) == 2
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert attributes["azml_chat.closed_early"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in attributes and "gen_ai.usage.input_tokens" not in attributes
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    points = telemetry.points()
    (duration,) = points["gen_ai.client.operation.duration"]
    assert dict(duration.attributes) == base_attributes(endpoint)
    assert "gen_ai.client.token.usage" not in points  # no usage came: none is made up


@mode_param
def test_a_stream_that_fails_midway_is_an_error_span(endpoint: LocalEndpoint, telemetry: Telemetry, mode: str) -> None:
    endpoint.add_fault(Fault(stream_error={"error": {"message": "the model crashed"}}))
    with pytest.raises(StreamError):
        stream(mode, endpoint.url, "a b c d", client={"hooks": [telemetry.hooks()]})
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert span.name == "chat"  # no model was asked for
    assert attributes["error.type"] == "StreamError"
    assert "gen_ai.request.model" not in attributes
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.status.status_code is StatusCode.ERROR
    assert "the model crashed" in (span.status.description or "")
    (duration,) = telemetry.points()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "StreamError"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def weather_responder(turn: ChatTurn) -> ScriptedReply:
    """Ask for the weather tool first; answer once its result is in."""
    if turn.messages[-1]["role"] == "tool":
        return ScriptedReply(content=f"It is {turn.messages[-1]['content']}.")
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    return ScriptedReply(tool_calls=[call], usage={"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39})


@pytest.mark.parametrize("operation", ["chat", "stream"])
@mode_param
def test_tool_calls_and_their_results_are_captured_when_asked(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str, operation: str
) -> None:
    endpoint.responder = weather_responder
    hooks = telemetry.hooks(capture_content=True)
    asked = [Message("system", "Be brief."), Message("user", "Weather in Paris?")]
    client = {"hooks": [hooks], "model": "m1"}
    if operation == "chat":
        first = chat(mode, endpoint.url, asked, client=client, tools=TOOLS)
    else:
        _, first = stream(mode, endpoint.url, asked, client=client, tools=TOOLS)
    assert first is not None and first.message.tool_calls
    follow_up = [*asked, first.message, Message("tool", "sunny", tool_call_id="call_1")]
    second = chat(mode, endpoint.url, follow_up, client=client, tools=TOOLS)
    assert second.content == "It is sunny."

    asking, answering = telemetry.spans()
    attributes = dict(asking.attributes or {})
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(attributes["gen_ai.input.messages"]) == [  # type: ignore[arg-type]
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    tool_call = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(attributes["gen_ai.output.messages"]) == [  # type: ignore[arg-type]
        {"role": "assistant", "parts": [tool_call], "finish_reason": "tool_calls"}
    ]
    function = TOOLS[0]["function"]
    assert json.loads(attributes["gen_ai.tool.definitions"]) == [  # type: ignore[arg-type]
        {"type": "function", **function}  # type: ignore[dict-item]
    ]
    if operation == "chat":  # a stream reports usage only with stream_options
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (30, 9)

    sent = json.loads(answering.attributes["gen_ai.input.messages"])  # type: ignore[arg-type,index]
    assert sent[2] == {"role": "assistant", "parts": [tool_call]}
    assert sent[3] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]}
    assert json.loads(answering.attributes["gen_ai.output.messages"]) == [  # type: ignore[arg-type,index]
        {"role": "assistant", "parts": [{"type": "text", "content": "It is sunny."}], "finish_reason": "stop"}
    ]


def test_content_is_captured_only_when_asked(endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    def captured(**options: Any) -> bool:
        telemetry = Telemetry()
        chat("sync", endpoint.url, "secret question", client={"hooks": [telemetry.hooks(**options)]})
        attributes = telemetry.span().attributes or {}
        found = {"gen_ai.input.messages", "gen_ai.output.messages"} & set(attributes)
        assert found in (set(), {"gen_ai.input.messages", "gen_ai.output.messages"})
        return bool(found)

    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    assert not captured()
    assert captured(capture_content=True)
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "True")
    assert captured()
    assert not captured(capture_content=False)
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "false")
    assert not captured()


def test_images_are_captured_as_uri_and_blob_parts(endpoint: LocalEndpoint, telemetry: Telemetry) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    chat("sync", endpoint.url, [message], client={"hooks": [telemetry.hooks(capture_content=True)]})
    (sent,) = json.loads(telemetry.span().attributes["gen_ai.input.messages"])  # type: ignore[arg-type,index]
    assert sent["parts"] == [
        {"type": "text", "content": "What is this?"},
        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
    ]


@mode_param
def test_a_retried_call_records_each_failed_attempt_as_an_event(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    endpoint.add_fault(Fault(503, headers={"retry-after-ms": "1"}))
    reply = chat(mode, endpoint.url, "hi", client={"hooks": [telemetry.hooks()]})
    span = telemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    (event,) = span.events
    assert event.name == "azml_chat.attempt_failed"
    attributes = dict(event.attributes or {})
    failed_id = attributes.pop("az.service_request_id")
    assert attributes == {
        "azml_chat.attempt": 0,
        "error.type": "ServerError",
        "http.response.status_code": 503,
        "azml_chat.retry_in": 0.001,
    }
    assert failed_id != reply.request_id
    assert span.attributes["azml_chat.attempts"] == 2  # type: ignore[index]
    assert span.attributes["az.service_request_id"] == reply.request_id  # type: ignore[index]
    assert "error.type" not in (span.attributes or {})


FAILURES = {
    "bad request": ([Fault(400)], 0, BadRequestError, 400),
    "rate limited, retries used up": ([Fault(429, headers={"retry-after-ms": "1"}, times=2)], 1, RateLimitError, 429),
    "connection dropped": ([Fault(drop="before_headers")], 0, APIConnectionError, None),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=list(FAILURES))
@mode_param
def test_a_failed_call_is_an_error_span_with_its_attempts(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str, failure: tuple[Any, ...]
) -> None:
    faults, retries, error, status = failure
    for fault in faults:
        endpoint.add_fault(fault)
    with pytest.raises(error) as raised:
        chat(mode, endpoint.url, "hi", client={"hooks": [telemetry.hooks()], "model": "m1", "max_retries": retries})
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(raised.value)
    assert attributes["error.type"] == error.__name__
    assert attributes.get("http.response.status_code") == status
    assert attributes["azml_chat.attempts"] == retries + 1
    assert "gen_ai.response.id" not in attributes
    assert [e.attributes["azml_chat.attempt"] for e in span.events] == list(range(retries + 1))  # type: ignore[index]
    assert [e.attributes["error.type"] for e in span.events] == [error.__name__] * (retries + 1)  # type: ignore[index]
    last = dict(span.events[-1].attributes or {})
    assert "azml_chat.retry_in" not in last  # nothing followed the last attempt
    assert last.get("http.response.status_code") == status
    points = telemetry.points()
    (duration,) = points["gen_ai.client.operation.duration"]
    assert dict(duration.attributes) == {**base_attributes(endpoint), "error.type": error.__name__}
    assert "gen_ai.client.token.usage" not in points


class CurrentSpanProbe(ChatHooks):
    """Notes which span is current while the client works (where HTTP spans would nest)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_attempt(self, attempt: AttemptInfo) -> None:
        self.seen.append(trace.get_current_span().get_span_context().span_id)


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio", "aiohttp"])
def test_spans_nest_under_the_callers_span_and_a_chat_span_is_current_while_it_runs(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    probe = CurrentSpanProbe()
    with tracer.start_as_current_span("request") as outer:
        chat(mode, endpoint.url, "hi", client={"hooks": [telemetry.hooks(), probe]})
        stream(mode, endpoint.url, "hi", client={"hooks": [telemetry.hooks(), probe]})
    in_chat, in_stream = telemetry.spans()
    outer_id = outer.get_span_context().span_id
    assert in_chat.parent is not None and in_chat.parent.span_id == outer_id
    assert in_stream.parent is not None and in_stream.parent.span_id == outer_id
    assert in_chat.context is not None
    # the chat's span is current during its attempts; a stream's is not (see the module docstring)
    assert probe.seen == [in_chat.context.span_id, outer_id]
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing was left attached


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_concurrent_async_calls_keep_their_own_parents(
    endpoint: LocalEndpoint, telemetry: Telemetry, backend: str
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    jobs: dict[int, int] = {}

    async def job(client: AsyncChatClient, number: int) -> None:
        with tracer.start_as_current_span(f"job {number}") as span:
            jobs[number] = span.get_span_context().span_id
            await client.chat(f"job {number}")
            await anyio.lowlevel.checkpoint()
            async with client.stream(f"job {number} stream") as chunks:
                async for _ in chunks:
                    await anyio.lowlevel.checkpoint()

    async def main() -> None:
        hooks = [telemetry.hooks(capture_content=True)]
        async with AsyncChatClient(endpoint.url, **settings(hooks=hooks)) as client, anyio.create_task_group() as group:
            for number in range(3):
                group.start_soon(job, client, number)

    anyio.run(main, backend=backend)
    spans = telemetry.spans()
    assert len(spans) == 6
    for span in spans:
        (sent,) = json.loads(span.attributes["gen_ai.input.messages"])  # type: ignore[arg-type,index]
        number = int(sent["parts"][0]["content"].split()[1])
        assert span.parent is not None and span.parent.span_id == jobs[number]


def test_provider_names_follow_the_api_type(
    endpoint: LocalEndpoint, dedicated: LocalEndpoint, telemetry: Telemetry
) -> None:
    hooks = telemetry.hooks()
    urls = {
        "azure.ai.inference": (endpoint.base_url + "/models/chat/completions", {"api_type": "foundry"}),
        "azure.ai.openai": (endpoint.base_url + "/v1/chat/completions", {"api_type": "azure-openai"}),
        "azure.ai.ml": (dedicated.url, {"deployment_name": "blue"}),
    }
    for url, options in urls.values():
        with ChatClient(url, **settings(hooks=[hooks], **options)) as client:
            client.chat("hi", temperature=0.2)
    foundry, azure_openai, score = telemetry.spans()
    assert [s.attributes["gen_ai.provider.name"] for s in (foundry, azure_openai, score)] == list(urls)  # type: ignore[index]
    assert foundry.attributes["azml_chat.route"] == "models-chat"  # type: ignore[index]
    assert (score.name, score.attributes["azml_chat.deployment_name"]) == ("chat", "blue")  # type: ignore[index]
    assert score.attributes["gen_ai.request.temperature"] == 0.2  # type: ignore[index]
    assert "gen_ai.request.stream" not in (score.attributes or {})
    assert "gen_ai.usage.input_tokens" not in (score.attributes or {})  # /score replies carry no usage
    durations = telemetry.points()["gen_ai.client.operation.duration"]
    assert sorted(p.attributes["gen_ai.provider.name"] for p in durations) == sorted(urls)


def test_model_info_makes_no_span(endpoint: LocalEndpoint, telemetry: Telemetry) -> None:
    with ChatClient(endpoint.url, **settings(hooks=[telemetry.hooks()])) as client:
        assert client.model_info().model_name
    assert telemetry.spans() == [] and telemetry.points() == {}


def test_instrument_reaches_clients_made_afterwards(endpoint: LocalEndpoint, telemetry: Telemetry) -> None:
    before = ChatClient(endpoint.url, **settings())
    try:
        hooks = azml_chat.otel.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        assert azml_chat.otel.is_instrumented() and hooks.capture_content is False
        again = azml_chat.otel.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, capture_content=True
        )
        with ChatClient(endpoint.url, **settings()) as client:
            client.chat("counted once")
        before.chat("not counted")
        azml_chat.otel.uninstrument()
        assert not azml_chat.otel.is_instrumented()
        with ChatClient(endpoint.url, **settings()) as client:
            client.chat("not counted either")
    finally:
        azml_chat.otel.uninstrument()
        before.close()
    (span,) = telemetry.spans()
    assert "counted once" in span.attributes["gen_ai.input.messages"]  # type: ignore[operator,index]
    assert again.capture_content is True


def test_a_tool_call_without_json_arguments_is_kept_as_text(endpoint: LocalEndpoint, telemetry: Telemetry) -> None:
    calls = (ToolCall("call_9", "lookup", "not json"),)
    messages = [
        Message("user", "go"),
        Message("assistant", "", tool_calls=calls),
        Message("tool", "done", tool_call_id="call_9"),
    ]
    chat("sync", endpoint.url, messages, client={"hooks": [telemetry.hooks(capture_content=True)]})
    sent = json.loads(telemetry.span().attributes["gen_ai.input.messages"])  # type: ignore[arg-type,index]
    assert sent[1] == {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": "not json"}],
    }


def test_importing_azml_chat_loads_no_opentelemetry_and_otel_says_what_to_install() -> None:
    code = (
        "import sys, azml_chat\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'loaded'\n"
        "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
        "try:\n"
        "    import azml_chat.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "azml-chat[otel]"' in done.stdout


def test_a_client_without_an_sdk_still_works(endpoint: LocalEndpoint) -> None:
    """With only the API (no provider set), spans are no-ops and the call is unaffected."""
    with ChatClient(endpoint.url, api_key=API_KEY, hooks=[OpenTelemetryHooks(capture_content=True)]) as client:
        assert client.chat("still fine").content == "still fine"


def test_the_observability_example_runs() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {key: value for key, value in os.environ.items() if not key.startswith("AZUREML_")}
    env["PYTHONPATH"] = str(root)  # this checkout's azml_chat, whatever is installed
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "observability.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert out.count("span 'chat demo-model' ") == 2 and '"gen_ai.request.stream": true' in out
    assert "reply: What is OpenTelemetry?" in out and "tokens by tenant: {'contoso': 12}" in out
    for metric in ("operation.duration", "token.usage", "operation.time_to_first_chunk"):
        assert f'"name": "gen_ai.client.{metric}"' in out


@mode_param
def test_more_request_parameters_reasoning_and_cached_tokens(
    endpoint: LocalEndpoint, telemetry: Telemetry, mode: str
) -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "completion_tokens_details": {"reasoning_tokens": 4},
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    endpoint.responder = lambda turn: ScriptedReply(content="42", reasoning_content="six times seven", usage=usage)
    hooks = telemetry.hooks(capture_content=True)
    chat(
        mode,
        endpoint.url,
        [Message("user", "The answer?", name="ann")],
        client={"hooks": [hooks]},
        n=3,
        stop="END",
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        response_format={"type": "json_object"},
        extra_body={"top_k": 40},
    )
    attributes = dict(telemetry.span().attributes or {})
    assert {key: value for key, value in attributes.items() if key.startswith("gen_ai.request.")} == {
        "gen_ai.request.choice.count": 3,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.frequency_penalty": 0.5,
        "gen_ai.request.presence_penalty": -0.5,
        "gen_ai.request.top_k": 40.0,
    }
    assert attributes["gen_ai.output.type"] == "json"
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 4
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 6
    assert json.loads(attributes["gen_ai.input.messages"]) == [  # type: ignore[arg-type]
        {"role": "user", "parts": [{"type": "text", "content": "The answer?"}], "name": "ann"}
    ]
    (said,) = json.loads(attributes["gen_ai.output.messages"])  # type: ignore[arg-type]
    assert said["parts"] == [{"type": "reasoning", "content": "six times seven"}, {"type": "text", "content": "42"}]
    assert repr(hooks) == "OpenTelemetryHooks(capture_content=True)"


@pytest.mark.parametrize(("backend", "error_type"), [("asyncio", "CancelledError"), ("trio", "trio.Cancelled")])
def test_a_cancelled_call_ends_its_span_with_the_cancellation(
    endpoint: LocalEndpoint, telemetry: Telemetry, backend: str, error_type: str
) -> None:
    endpoint.add_fault(Fault(delay_before_headers=30))

    async def main() -> None:
        client = AsyncChatClient(endpoint.url, **settings(hooks=[telemetry.hooks()]))
        async with client, anyio.create_task_group() as group:
            group.start_soon(client.chat, "never answered")
            with anyio.fail_after(5):
                while not endpoint.requests:  # noqa: ASYNC110 - the endpoint's thread records it: poll
                    await anyio.sleep(0.002)
            group.cancel_scope.cancel()  # once the request is at the server

    anyio.run(main, backend=backend)
    span = telemetry.span()
    assert span.attributes["error.type"] == error_type  # type: ignore[index]
    assert span.status.status_code is StatusCode.ERROR
    (duration,) = telemetry.points()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == error_type


def test_instrument_reaches_the_langchain_chat_model(endpoint: LocalEndpoint, telemetry: Telemetry) -> None:
    """The LangChain models make their clients on first use: instrument() before that covers them."""
    from azml_chat.langchain import AzureMLChatOnlineEndpoint, AzureMLEndpointApiType

    azml_chat.otel.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        model = AzureMLChatOnlineEndpoint(
            endpoint_url=endpoint.chat_url,
            endpoint_api_type=AzureMLEndpointApiType.serverless,
            endpoint_api_key=API_KEY,
            model_name="m1",
            temperature=0.3,
        )
        assert model.invoke("from langchain").content == "from langchain"
        model.close()
    finally:
        azml_chat.otel.uninstrument()
    span = telemetry.span()
    assert span.name == "chat m1"
    assert span.attributes["gen_ai.request.temperature"] == 0.3  # type: ignore[index]
