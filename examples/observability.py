"""Observability: OpenTelemetry spans and metrics for every call, and a hook that meters tokens.

Needs ``pip install "azml-chat[otel]" opentelemetry-sdk`` (the SDK provides the console
exporters used here; in production you would export over OTLP instead). With
AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set it talks to Azure; otherwise it starts
the embedded local endpoint.

    python examples/observability.py
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from _endpoint import endpoint_settings
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import azml_chat.otel
from azml_chat import CallResult, ChatClient, ChatHooks


def one_line(span: ReadableSpan) -> str:
    """A span as one line: its name and its attributes (the default prints indented JSON)."""
    return f"span {span.name!r} {json.dumps(dict(span.attributes or {}), sort_keys=True)}\n"


class TokenMeter(ChatHooks):
    """Counts the tokens of each tenant: a plain hook, no OpenTelemetry needed."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.tokens: Counter[str] = Counter()

    def on_call_end(self, result: CallResult) -> None:
        usage = result.response.usage if result.response else None
        if usage is not None:
            self.tokens[self.tenant] += usage.total_tokens


def main(settings: dict[str, Any]) -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
    trace.set_tracer_provider(tracer_provider)
    # Metrics are exported every minute and once more at shutdown (below).
    metrics = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    meter_provider = MeterProvider(metric_readers=[metrics])

    # Every client made from now on reports its calls; message content only when asked.
    azml_chat.otel.instrument(meter_provider=meter_provider, capture_content=True)
    meter = TokenMeter("contoso")
    tracer = trace.get_tracer("example")
    with ChatClient(**settings, model="demo-model", hooks=[meter]) as client, tracer.start_as_current_span("job"):
        print("reply:", client.chat("What is OpenTelemetry?", temperature=0.2, max_tokens=64).content)
        with client.stream("Stream this, please.", stream_options={"include_usage": True}) as stream:
            print("streamed:", stream.get_final_response().content)
    azml_chat.otel.uninstrument()
    print("tokens by tenant:", dict(meter.tokens))

    tracer_provider.shutdown()
    meter_provider.shutdown()  # prints the histograms: operation duration, token usage, time to first chunk


if __name__ == "__main__":
    with endpoint_settings() as endpoint:
        main(endpoint)
