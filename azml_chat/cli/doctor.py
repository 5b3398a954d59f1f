"""``azml-chat doctor URL``: find out what an endpoint is and what it accepts.

A bounded number of tiny requests (at most :data:`MAX_REQUESTS`, each asking for a few
tokens, never retried) answers: which header carries the key, whether ``/info`` and
``/v1/models`` exist and which model they name, which route and body format answer
(OpenAI chat body, ``input_data.input_string`` chat messages, a text-generation prompt),
whether streaming, tools, ``response_format`` json_schema and ``stream_options`` are
accepted, and how long a tiny request takes. Each probe's failure is explained in a line;
the report ends with a ``ChatClient(...)`` snippet to paste. The key is never shown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..client import ChatClient
from ..config import AuthHeader, ClientOptions, Endpoint, parse_endpoint
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
)
from ..formatters import family_for_model, get_formatter
from ..messages import ChatResponse, ModelInfo
from .settings import UsageError

__all__ = ["MAX_REQUESTS", "Diagnosis", "Probe", "Setup", "add_arguments", "diagnose", "explain", "run"]

#: The most requests one run sends: 2 auth + 2 discovery + 4 body formats + 4 features + 3 latency.
MAX_REQUESTS = 15
LATENCY_REQUESTS = 3
PROMPT = "Reply with the single word OK."
_T = TypeVar("_T")

EPILOG = """\
examples:
  azml-chat doctor https://my-ep.eastus.inference.ml.azure.com/score --api-key "$KEY"
  azml-chat doctor https://my-llm.eastus2.models.ai.azure.com --json
  azml-chat doctor                                  # $AZUREML_ENDPOINT_URL with its key

It sends at most 15 tiny requests (a few tokens each, never retried), prints what answered
and why anything failed, then a ChatClient(...) snippet to paste. The key is never printed.
exit status: 0 a working setup was found, 1 none answered, 2 usage or settings error
"""

_BODY_LABELS = {
    "openai": "OpenAI chat body",
    "text-generation": "input_data.input_string prompt (text generation)",
}
_DIALECTS = {"score": "the container's own /score body", "chat-completions": "OpenAI chat body"}
_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
_ANSWER_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    },
}


@attrs.frozen
class Probe:
    """One finding: ``ok`` True (works), False (failed: ``detail`` says why), None (not tried)."""

    name: str
    ok: bool | None
    detail: str
    status: int | None = None
    seconds: float | None = None


@attrs.frozen
class Setup:
    """A way to call the endpoint: URL, body formatter, key header and model."""

    url: str
    formatter: str
    auth_header: AuthHeader = "both"
    model: str | None = None


@attrs.frozen
class Diagnosis:
    """What :func:`diagnose` found: the probes in order, the setup that works (if any), the
    request count and the snippet to paste."""

    endpoint: Endpoint
    probes: tuple[Probe, ...]
    setup: Setup | None
    requests: int
    deployment: str | None = None

    def snippet(self) -> str | None:
        """Python that makes a client for the working setup (the key read from the environment)."""
        setup = self.setup
        if setup is None:
            return None
        lines = [
            "import os",
            "from azml_chat import ChatClient",
            "",
            "client = ChatClient(",
            f"    {json.dumps(setup.url)},",
            '    api_key=os.environ["AZUREML_ENDPOINT_API_KEY"],',
        ]
        if setup.formatter != "openai" or urlsplit(setup.url).path.endswith("/score"):
            lines.append(f"    formatter={json.dumps(setup.formatter)},")
        if setup.auth_header != "both":
            lines.append(f"    auth_header={json.dumps(setup.auth_header)},")
        if setup.model:
            lines.append(f"    model={json.dumps(setup.model)},")
        if self.deployment:
            lines.append(f"    deployment_name={json.dumps(self.deployment)},")
        lines += [")", 'print(client.chat("Hello").content)']
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` report."""
        return {
            "url": self.endpoint.url,
            "api_type": self.endpoint.api_type,
            "route": self.endpoint.route,
            "requests": self.requests,
            "working": self.setup is not None,
            "probes": [attrs.asdict(probe) for probe in self.probes],
            "client_options": None if self.setup is None else attrs.asdict(self.setup),
            "snippet": self.snippet(),
        }

    def text(self) -> str:
        """The readable report."""
        marks = {True: "ok", False: "no", None: "--"}
        lines = [f"azml-chat doctor: {self.endpoint.url}"]
        lines += [f"  {marks[probe.ok]:<3} {probe.name}: {probe.detail}" for probe in self.probes]
        lines.append(f"\n{self.requests} request{'s' if self.requests != 1 else ''} sent.")
        snippet = self.snippet()
        if snippet is None:
            lines.append("No route and body format answered: fix what the lines above say, then run doctor again.")
        else:
            lines.append("Use it like this:\n")
            lines += [f"    {line}" if line else "" for line in snippet.splitlines()]
        return "\n".join(lines)


def explain(error: BaseException, timeout: float | None = None) -> str:
    """Why a probe failed, in words, followed by the error (status, server message, request id)."""
    hint: str
    if isinstance(error, AuthenticationError):
        hint = "the key was refused (a wrong key, or the endpoint does not read it from this header)"
    elif isinstance(error, PermissionDeniedError):
        hint = "this key or identity may not call the endpoint"
    elif isinstance(error, NotFoundError):
        hint = "nothing answers this route here (or the deployment name is wrong)"
    elif isinstance(error, BadRequestError):
        hint = "the endpoint rejected this body or parameter"
    elif isinstance(error, RateLimitError):
        wait = f" (it asked to wait {error.retry_after:g} s)" if error.retry_after is not None else ""
        hint = f"throttled{wait}: run doctor again later"
    elif isinstance(error, ModelError):
        model = f" with status {error.model_status}" if error.model_status is not None else ""
        hint = f"the model container failed{model}" if error.status_code != 200 else "an error body sent with 200"
    elif isinstance(error, ServerError):
        hint = "the service failed or is not ready"
    elif isinstance(error, APITimeoutError):
        hint = f"no reply within {timeout:g} s (raise --timeout for slow models)" if timeout else "timed out"
    elif isinstance(error, APIConnectionError):
        hint = "could not reach the endpoint (check the host, port and network)"
    elif isinstance(error, InvalidRequestError):
        hint = "not sent: the client cannot put this in that body"
    elif isinstance(error, StreamError):
        hint = "the stream failed"
    elif isinstance(error, ResponseFormatError):
        hint = "it answered, but not with a reply this body format understands"
    elif isinstance(error, AzureMLChatError):
        hint = type(error).__name__
    else:
        hint = f"unexpected {type(error).__name__}"
    return f"{hint}: {error}" if str(error) else hint


def _route_base(url: str) -> str:
    """The URL without its query and chat route suffix: where sibling routes live."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for suffix in ("/score", "/v1/chat/completions", "/models/chat/completions", "/chat/completions"):
        if path.endswith(suffix):
            path = path.removesuffix(suffix)
            break
    return urlunsplit(parts._replace(path=path, query="", fragment=""))


def _chat_route(setup: Setup) -> bool:
    """Whether ``setup`` calls a chat-completions route (not ``/score``)."""
    return not urlsplit(setup.url).path.endswith("/score")


def _key_headers(key: str | None, header: AuthHeader) -> dict[str, str]:
    headers = {}
    if key and header in ("both", "bearer"):
        headers["authorization"] = f"Bearer {key}"
    if key and header in ("both", "api-key"):
        headers["api-key"] = key
    return headers


class _Doctor:
    """Runs the probes in order, each deciding what the next one tries."""

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None,
        *,
        deployment: str | None,
        model: str | None,
        formatter: str | None,
        timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.api_key = api_key
        self.deployment = deployment
        self.model = model
        self.formatter = formatter
        self.timeout = timeout
        self.probes: list[Probe] = []
        self.requests = 0
        self.auth_header: AuthHeader = "both"
        self.clients: dict[Setup, ChatClient] = {}

    # -- helpers -------------------------------------------------------------------------

    def add(
        self, name: str, ok: bool | None, detail: str, status: int | None = None, seconds: float | None = None
    ) -> None:
        self.probes.append(Probe(name, ok, detail, status, seconds))

    def client(self, setup: Setup) -> ChatClient:
        """The client for ``setup``, made once: the latency probe then measures warm connections."""
        if setup in self.clients:
            return self.clients[setup]
        options: ClientOptions = {
            "api_type": self.endpoint.api_type,
            "formatter": setup.formatter,
            "auth_header": setup.auth_header,
            "deployment_name": self.deployment or "",
            "timeout": self.timeout,
            "max_retries": 0,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        if setup.model:
            options["model"] = setup.model
        client = self.clients[setup] = ChatClient(setup.url, **options)
        return client

    def attempt(self, call: Callable[[], _T]) -> tuple[_T | None, BaseException | None, float]:
        """Run one request; its result or error, and how long it took."""
        self.requests += 1
        start = time.perf_counter()
        try:
            return call(), None, time.perf_counter() - start
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # every failure becomes a line of the report, never a traceback
            return None, exc, time.perf_counter() - start

    def chat(self, setup: Setup, **params: Any) -> tuple[ChatResponse | None, BaseException | None, float]:
        def send() -> ChatResponse:
            return self.client(setup).chat(PROMPT, max_tokens=5, **params)

        return self.attempt(send)

    def failed(self, name: str, error: BaseException, seconds: float | None = None) -> None:
        status = error.status_code if isinstance(error, APIStatusError) else None
        self.add(name, False, explain(error, self.timeout), status, seconds)

    # -- probes --------------------------------------------------------------------------

    def default_setup(self) -> Setup:
        score = self.endpoint.route == "score"
        formatter = self.formatter or ("llama" if score else "openai")
        return Setup(self.endpoint.url, formatter, self.auth_header, None if score else self.model)

    def check_auth(self) -> bool:
        """Which header carries the key; False: nothing can work (unreachable, or the key refused)."""
        if not self.api_key:
            self.add("auth", None, "no key given (--api-key or AZUREML_ENDPOINT_API_KEY): requests carry none")
            return True
        accepted: list[AuthHeader] = []
        headers: tuple[tuple[AuthHeader, str], ...] = (("bearer", "Authorization: Bearer"), ("api-key", "api-key"))
        for header, label in headers:
            setup = attrs.evolve(self.default_setup(), auth_header=header)
            reply, error, seconds = self.chat(setup)
            if isinstance(error, APIConnectionError):
                self.failed(f"connect ({label})", error, seconds)
                return False
            if isinstance(error, AuthenticationError | PermissionDeniedError):
                self.failed(f"auth {label}", error, seconds)
                continue
            accepted.append(header)
            status = 200 if reply is not None else getattr(error, "status_code", None)
            how = "answered" if reply is not None else f"past auth (the body failed: HTTP {status})"
            self.add(f"auth {label}", True, f"key accepted, {how}", status, seconds)
        if not accepted:
            return False
        self.auth_header = "both" if len(accepted) == 2 else accepted[0]
        return True

    def check_info(self) -> str | None:
        """``/info`` where the route has one; returns the model name it gives."""
        if self.endpoint.info_url is None:
            self.add("/info", None, f"{self.endpoint.api_type} endpoints have no /info on this route")
            return None
        setup = self.default_setup()

        def info() -> ModelInfo:
            return self.client(setup).model_info()

        result, error, seconds = self.attempt(info)
        if result is None:
            self.failed("/info", error or ValueError("no reply"), seconds)
            return None
        name = result.model_name
        what = ", ".join(str(v) for v in (result.model_type, result.model_provider_name) if v)
        self.add("/info", True, f"model {name}" + (f" ({what})" if what else ""), 200, seconds)
        return str(name) if name else None

    def check_models(self) -> str | None:
        """vLLM's ``GET /v1/models``; returns the first model id it lists."""
        if self.endpoint.api_type not in ("dedicated", "serverless"):
            self.add("/v1/models", None, f"not an Azure ML route on {self.endpoint.api_type} endpoints")
            return None
        url = _route_base(self.endpoint.url) + "/v1/models"
        headers = {"accept": "application/json", **_key_headers(self.api_key, self.auth_header)}
        if self.deployment:
            headers["azureml-model-deployment"] = self.deployment

        def get() -> Any:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())

        listing, error, seconds = self.attempt(get)
        if isinstance(error, urllib.error.HTTPError):
            hint = "nothing answers it here (vLLM-based deployments serve it)" if error.code == 404 else "refused"
            self.add("/v1/models", False, f"{hint}: HTTP {error.code} {error.reason}", error.code, seconds)
            return None
        if error is not None:
            reason = getattr(error, "reason", error)
            self.add("/v1/models", False, f"no answer: {type(error).__name__}: {reason}", None, seconds)
            return None
        data = listing.get("data") if isinstance(listing, dict) else None
        ids = [str(item["id"]) for item in data or [] if isinstance(item, dict) and item.get("id")]
        if not ids:
            self.add("/v1/models", False, "answered, but lists no model", 200, seconds)
            return None
        self.add("/v1/models", True, f"model{'s' if len(ids) > 1 else ''} {', '.join(ids)}", 200, seconds)
        return ids[0]

    def candidates(self, family: str, served_model: str | None) -> Iterator[Setup]:
        """The route and body formats to try, the given URL's route first."""
        given, base = self.endpoint.url, _route_base(self.endpoint.url)
        model = self.model or served_model
        score = [
            Setup(given if self.endpoint.route == "score" else base + "/score", name, self.auth_header)
            for name in (family, "text-generation", "openai")
        ]
        chat_url = given if self.endpoint.route != "score" else base + "/v1/chat/completions"
        chat = Setup(chat_url, "openai", self.auth_header, model)
        if self.endpoint.api_type != "dedicated":  # only managed online endpoints have /score
            yield chat
        elif self.endpoint.route == "score":
            yield from score
            yield chat
        else:
            yield chat
            yield from score

    def check_bodies(self, family: str, served_model: str | None) -> list[Setup]:
        """Try each route and body format; those that answer, the given route's first."""
        working: list[Setup] = []
        for setup in self.candidates(family, served_model):
            path = urlsplit(setup.url).path
            label = _BODY_LABELS.get(setup.formatter, f"input_data.input_string chat messages ({setup.formatter})")
            name = f"{path} {label}"
            reply, error, seconds = self.chat(setup)
            if error is None:
                assert reply is not None
                self.add(name, True, f"answered {reply.content[:40]!r}", 200, seconds)
                working.append(setup)
                continue
            self.failed(name, error, seconds)
            if isinstance(error, BadRequestError) and _chat_route(setup) and not setup.model:
                detail = self.probes[-1].detail + " (multi-model and vLLM routes need a model: pass --model NAME)"
                self.probes[-1] = attrs.evolve(self.probes[-1], detail=detail)
        return working

    def check_features(self, setup: Setup) -> None:
        """Streaming, stream_options, tools and json_schema on ``setup``."""
        where = "" if setup.url == self.endpoint.url else f" on {urlsplit(setup.url).path}"
        if get_formatter(setup.formatter).supports_streaming and _chat_route(setup):
            self.check_stream(setup, f"streaming{where}", {})
            self.check_stream(setup, f"stream_options{where}", {"stream_options": {"include_usage": True}})
        else:
            why = "this body does not stream: the client hands over the whole reply as one chunk"
            self.add("streaming", None, why)
            self.add("stream_options", None, why)
        reply, error, seconds = self.chat(setup, tools=[_WEATHER_TOOL])
        if error is not None:
            self.failed(f"tools{where}", error, seconds)
        else:
            assert reply is not None
            called = ", ".join(call.name for call in reply.tool_calls)
            detail = f"accepted; the model called {called}" if called else "accepted"
            self.add(f"tools{where}", True, detail, 200, seconds)
        reply, error, seconds = self.chat(setup, response_format=_ANSWER_FORMAT)
        if error is not None:
            self.failed(f"response_format json_schema{where}", error, seconds)
        else:
            assert reply is not None
            try:
                json.loads(reply.content)
                shape = "the reply is JSON"
            except ValueError:
                shape = "but the reply is not JSON (the model may ignore it)"
            self.add(f"response_format json_schema{where}", True, f"accepted; {shape}", 200, seconds)

    def check_stream(self, setup: Setup, name: str, params: dict[str, Any]) -> None:
        def stream() -> tuple[int, ChatResponse]:
            with self.client(setup).stream(PROMPT, max_tokens=5, **params) as chunks:
                count = sum(1 for _ in chunks)
                return count, chunks.get_final_response()

        result, error, seconds = self.attempt(stream)
        if error is not None:
            self.failed(name, error, seconds)
            return
        assert result is not None
        count, response = result
        detail = f"{count} chunk{'s' if count != 1 else ''}"
        if params:
            detail += "; usage arrived" if response.usage is not None else "; accepted, but no usage in the stream"
        self.add(name, True, detail, 200, seconds)

    def check_latency(self, setup: Setup) -> None:
        times = []
        for _ in range(LATENCY_REQUESTS):
            _, error, seconds = self.chat(setup)
            if error is not None:
                self.failed("latency", error, seconds)
                return
            times.append(seconds)
        self.add(
            "latency",
            True,
            f"{len(times)} tiny requests: {min(times) * 1000:.0f} ms min, "
            f"{statistics.median(times) * 1000:.0f} ms median, {max(times) * 1000:.0f} ms max",
            200,
            statistics.median(times),
        )

    def run(self) -> Setup | None:
        try:
            return self.probe_all()
        finally:
            for client in self.clients.values():
                client.close()

    def probe_all(self) -> Setup | None:
        endpoint = self.endpoint
        self.add(
            "endpoint",
            True,
            f"{endpoint.api_type}, route {endpoint.route} ({_DIALECTS[endpoint.dialect]}), "
            f"{endpoint.host}:{endpoint.port}",
        )
        if not self.check_auth():
            return None
        info_model = self.check_info()
        served_model = self.check_models()
        family = self.formatter or (family_for_model(info_model) if info_model else "llama")
        if get_formatter(family).dialect != "score":
            family = "llama"
        working = self.check_bodies(family, served_model)
        if not working:
            return None
        # features live on the chat-completions body where one answers (vLLM next to /score)
        self.check_features(next((setup for setup in working if _chat_route(setup)), working[0]))
        self.check_latency(working[0])
        return working[0]


def diagnose(
    url: str,
    api_key: str | None = None,
    *,
    api_type: str | None = None,
    deployment: str | None = None,
    model: str | None = None,
    formatter: str | None = None,
    timeout: float = 30.0,
) -> Diagnosis:
    """Probe the endpoint at ``url`` (see the module docstring); raises
    :class:`~azml_chat.ConfigurationError` for a URL that cannot be an endpoint's."""
    endpoint = parse_endpoint(url, api_type)
    if formatter is not None:
        get_formatter(formatter)  # an unknown name fails here, before any request
    doctor = _Doctor(endpoint, api_key, deployment=deployment, model=model, formatter=formatter, timeout=timeout)
    setup = doctor.run()
    return Diagnosis(endpoint, tuple(doctor.probes), setup, doctor.requests, deployment)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``doctor`` command's arguments to ``parser``."""
    parser.description = "Probe an endpoint: what it is, which body and key header it takes, what it supports."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("url", nargs="?", help="endpoint URL (default: $AZUREML_ENDPOINT_URL)")
    parser.add_argument("--api-key", help="endpoint key (default: $AZUREML_ENDPOINT_API_KEY)")
    parser.add_argument(
        "--api-type",
        choices=["dedicated", "serverless", "realtime", "foundry", "azure-openai"],
        help="endpoint kind (default: from the URL)",
    )
    parser.add_argument("--deployment", help="pin one deployment (header azureml-model-deployment)")
    parser.add_argument("--model", help="model name for multi-model and vLLM routes")
    parser.add_argument("--formatter", help="model family to try on /score (default: from /info, else llama)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``azml-chat doctor``; 0 when a working setup was found, else 1."""
    url = args.url or os.environ.get("AZUREML_ENDPOINT_URL")
    if not url:
        raise UsageError("which endpoint? give its URL, or set AZUREML_ENDPOINT_URL")
    key = args.api_key or os.environ.get("AZUREML_ENDPOINT_API_KEY") or None
    key = key.strip() if key else None
    diagnosis = diagnose(
        url,
        key,
        api_type=args.api_type,
        deployment=args.deployment,
        model=args.model,
        formatter=args.formatter,
        timeout=args.timeout,
    )
    report = json.dumps(diagnosis.as_dict(), indent=2, ensure_ascii=False) if args.json else diagnosis.text()
    if key and len(key) >= 6:
        report = report.replace(key, "***")  # errors never hold the key; this is a second lock
    print(report)
    return 0 if diagnosis.setup is not None else 1
