"""``azml-chat doctor``: what it finds on each kind of embedded endpoint, how it explains every
failure (never a traceback, never the key), and that its snippet works when pasted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cli_support import ROOT, cli_env, run_cli

from azml_chat import (
    APIConnectionError,
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
from azml_chat.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from azml_chat.cli.doctor import MAX_REQUESTS, Diagnosis, Probe, diagnose, explain
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

KEY = "doctor-secret-key-0042"


@pytest.fixture
def serverless() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(kind="serverless", api_key=KEY) as endpoint:
        yield endpoint


def probe(diagnosis: Diagnosis, name: str) -> Probe:
    return next(p for p in diagnosis.probes if p.name == name)


def check_bounded_and_explained(diagnosis: Diagnosis, endpoint: LocalEndpoint) -> None:
    """Every request was counted, there were few, and every failure says why."""
    assert diagnosis.requests == len(endpoint.requests) <= MAX_REQUESTS
    for found in diagnosis.probes:
        assert found.detail, found
        assert KEY not in found.detail


@pytest.mark.parametrize(
    ("family", "formatter", "rejected"),
    [
        ("llama", "llama", ["text generation", "/score OpenAI chat body"]),
        ("text-generation", "text-generation", ["(llama)", "/score OpenAI chat body"]),
        ("openai", "openai", ["(llama)", "text generation"]),
    ],
)
def test_dedicated_endpoints_of_each_family(family: str, formatter: str, rejected: list[str]) -> None:
    with LocalEndpoint(kind="dedicated", family=family, api_key=KEY) as endpoint:
        url = endpoint.url
        diagnosis = diagnose(url, KEY)
        check_bounded_and_explained(diagnosis, endpoint)
    assert diagnosis.setup is not None
    assert diagnosis.setup.url == url and diagnosis.setup.formatter == formatter
    assert diagnosis.setup.auth_header == "bearer"  # managed online endpoints read Bearer only
    assert "the key was refused" in probe(diagnosis, "auth api-key").detail
    assert probe(diagnosis, "/info").detail == "model local-model (chat-completion, Local)"
    assert probe(diagnosis, "/v1/models").detail == "model local-model"
    for name in rejected:
        failed = next(p for p in diagnosis.probes if name in p.name)
        assert failed.ok is False and failed.status == 400 and "the endpoint rejected this body" in failed.detail
    # vLLM's chat route answers too (with the model /v1/models named), and has the features
    assert probe(diagnosis, "/v1/chat/completions OpenAI chat body").ok
    assert probe(diagnosis, "streaming on /v1/chat/completions").ok
    assert probe(diagnosis, "tools on /v1/chat/completions").ok
    assert endpoint.requests[-4].json["model"] == "local-model"
    assert probe(diagnosis, "latency").detail.startswith("3 tiny requests: ")
    snippet = diagnosis.snippet()
    assert snippet is not None
    assert f'formatter="{formatter}"' in snippet and 'auth_header="bearer"' in snippet
    assert KEY not in snippet and 'os.environ["AZUREML_ENDPOINT_API_KEY"]' in snippet


def test_a_serverless_endpoint_streams_and_takes_either_header(serverless: LocalEndpoint) -> None:
    diagnosis = diagnose(serverless.url, KEY)
    check_bounded_and_explained(diagnosis, serverless)
    assert diagnosis.setup is not None and diagnosis.setup.auth_header == "both"
    assert [p.name for p in diagnosis.probes if p.ok is False] == ["/v1/models"]
    assert probe(diagnosis, "streaming").detail.endswith("chunks")
    assert probe(diagnosis, "stream_options").detail.endswith("usage arrived")
    assert probe(diagnosis, "tools").detail == "accepted"
    assert "not JSON" in probe(diagnosis, "response_format json_schema").detail
    assert not any("/score" in p.name for p in diagnosis.probes)  # serverless endpoints have none
    snippet = diagnosis.snippet()
    assert snippet is not None and "formatter" not in snippet and "auth_header" not in snippet


def test_a_model_that_calls_tools_and_answers_json() -> None:
    def model(turn: ChatTurn) -> str | ScriptedReply:
        if turn.params.get("tools"):
            call = {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
            return ScriptedReply(tool_calls=[call])
        return '{"answer": "OK"}' if turn.params.get("response_format") else "OK"

    with LocalEndpoint(kind="serverless", api_key=KEY, responder=model) as endpoint:
        diagnosis = diagnose(endpoint.url, KEY)
    assert probe(diagnosis, "tools").detail == "accepted; the model called get_weather"
    assert probe(diagnosis, "response_format json_schema").detail == "accepted; the reply is JSON"


@pytest.mark.parametrize("kind", ["foundry", "azure-openai"])
def test_foundry_and_azure_openai_need_a_model_and_read_api_key(kind: str) -> None:
    with LocalEndpoint(kind=kind, api_key=KEY) as endpoint:  # type: ignore[arg-type]
        url = endpoint.url if kind == "foundry" else endpoint.deployment_url("gpt-4o")
        without = diagnose(url, KEY, api_type=kind)
        check_bounded_and_explained(without, endpoint)
        endpoint.clear()
        with_model = diagnose(url, KEY, api_type=kind, model="gpt-4o")
        check_bounded_and_explained(with_model, endpoint)
    if kind == "foundry":
        assert without.setup is None
        assert "pass --model NAME" in probe(without, "/models/chat/completions OpenAI chat body").detail
    assert probe(without, "/info").ok is None and probe(without, "/v1/models").ok is None
    assert with_model.setup is not None and with_model.setup.auth_header == "api-key"
    assert "the key was refused" in probe(with_model, "auth Authorization: Bearer").detail
    snippet = with_model.snippet()
    assert snippet is not None and 'model="gpt-4o"' in snippet and 'auth_header="api-key"' in snippet


def test_a_refused_key_stops_early_and_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalEndpoint(kind="serverless", api_key="the-right-key") as endpoint:
        code = main(["doctor", endpoint.url, "--api-key", KEY])
        assert len(endpoint.requests) == 2
    out = capsys.readouterr().out
    assert code == EXIT_FAILED
    assert out.count("the key was refused") == 2 and "HTTP 401" in out
    assert "No route and body format answered" in out
    assert KEY not in out


def test_an_unreachable_endpoint_is_one_request_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalEndpoint(api_key=KEY) as endpoint:
        url = endpoint.url
    assert main(["doctor", url, "--api-key", KEY]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "could not reach the endpoint (check the host, port and network)" in out
    assert "1 request sent." in out and "Traceback" not in out


def test_failures_of_single_probes_are_explained(serverless: LocalEndpoint) -> None:
    serverless.add_fault(Fault(424, headers={"ms-azureml-model-error-statuscode": "503"}, path="/info"))
    serverless.add_fault(Fault(drop="before_headers", path="/v1/models"))
    diagnosis = diagnose(serverless.url, KEY)
    assert "the model container failed with status 503" in probe(diagnosis, "/info").detail
    assert probe(diagnosis, "/v1/models").detail.startswith("no answer: RemoteDisconnected")
    assert diagnosis.setup is not None
    serverless.add_fault(Fault(delay_before_headers=2, path="/info"))
    serverless.add_fault(Fault(body={"data": []}, path="/v1/models"))
    diagnosis = diagnose(serverless.url, KEY, timeout=0.5)
    assert probe(diagnosis, "/info").detail.startswith("no reply within 0.5 s (raise --timeout for slow models)")
    assert probe(diagnosis, "/v1/models").detail == "answered, but lists no model"


def test_a_pinned_deployment_goes_into_the_snippet() -> None:
    with LocalEndpoint(kind="dedicated", api_key=KEY, deployments=["blue", "green"]) as endpoint:
        good = diagnose(endpoint.url, KEY, deployment="green")
        wrong = diagnose(endpoint.url, KEY, deployment="purple")
        assert {r.headers.get("azureml-model-deployment") for r in endpoint.requests} == {"green", "purple"}
    snippet = good.snippet()
    assert snippet is not None and 'deployment_name="green"' in snippet
    assert wrong.setup is None
    assert (
        "or the deployment name is wrong" in probe(wrong, "/score input_data.input_string chat messages (llama)").detail
    )


def test_json_report_and_the_snippet_runs_when_pasted(serverless: LocalEndpoint) -> None:
    result = run_cli("doctor", serverless.url, "--json", AZUREML_ENDPOINT_API_KEY=KEY)
    assert result.returncode == EXIT_OK, result.stderr
    assert KEY not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["working"] is True and report["api_type"] == "serverless" and report["route"] == "v1-chat"
    assert report["requests"] <= MAX_REQUESTS
    assert report["client_options"]["url"] == serverless.url
    assert {p["name"] for p in report["probes"]} >= {"endpoint", "/info", "streaming", "tools", "latency"}
    pasted = subprocess.run(
        [sys.executable, "-c", report["snippet"]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(AZUREML_ENDPOINT_API_KEY=KEY),
        timeout=60,
        check=False,
    )
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout == "Hello\n"


def test_readable_report_from_the_environment(serverless: LocalEndpoint) -> None:
    result = run_cli("doctor", AZUREML_ENDPOINT_URL=serverless.url, AZUREML_ENDPOINT_API_KEY=KEY)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"azml-chat doctor: {serverless.url}\n  ok  endpoint: serverless")
    assert "Use it like this:" in result.stdout and "    client = ChatClient(" in result.stdout
    assert KEY not in result.stdout


def test_usage_and_settings_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == EXIT_USAGE
    assert "give its URL, or set AZUREML_ENDPOINT_URL" in capsys.readouterr().err
    assert main(["doctor", "ftp://nowhere"]) == EXIT_USAGE
    assert main(["doctor", "http://127.0.0.1:9/score", "--formatter", "nope"]) == EXIT_USAGE
    assert "unknown formatter 'nope'" in capsys.readouterr().err


def test_without_a_key_requests_carry_none() -> None:
    with LocalEndpoint(kind="serverless", api_key=None) as endpoint:
        diagnosis = diagnose(endpoint.url)
        assert not any("authorization" in r.headers or "api-key" in r.headers for r in endpoint.requests)
    assert probe(diagnosis, "auth").ok is None and diagnosis.setup is not None


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (AuthenticationError("no", status_code=401), "the key was refused"),
        (PermissionDeniedError("no", status_code=403), "may not call"),
        (NotFoundError("no", status_code=404), "nothing answers this route"),
        (BadRequestError("no", status_code=400), "rejected this body"),
        (RateLimitError("no", status_code=429, retry_after=2), "throttled (it asked to wait 2 s)"),
        (RateLimitError("no", status_code=429), "throttled: run doctor again later"),
        (ModelError("no", status_code=424), "the model container failed: "),
        (ModelError("empty", status_code=200), "an error body sent with 200"),
        (ServerError("no", status_code=503), "failed or is not ready"),
        (APITimeoutError("slow"), "timed out"),
        (APIConnectionError("refused"), "could not reach"),
        (InvalidRequestError("no tools"), "not sent"),
        (StreamError("cut"), "the stream failed"),
        (ResponseFormatError("html"), "not with a reply this body format understands"),
        (AzureMLChatError("odd"), "AzureMLChatError: odd"),
        (ValueError("odd"), "unexpected ValueError: odd"),
        (ValueError(), "unexpected ValueError"),
    ],
)
def test_explain_every_kind_of_failure(error: BaseException, hint: str) -> None:
    assert hint in explain(error)


def test_failed_features_and_a_family_named_by_info(capsys: pytest.CaptureFixture[str]) -> None:
    def picky(turn: ChatTurn) -> str:
        for feature in ("tools", "response_format", "stream"):
            if turn.params.get(feature):
                raise RuntimeError(f"this model has no {feature}")
        return "OK"

    with LocalEndpoint(
        kind="dedicated", family="mistral", model_name="Mistral-7B-Instruct-v0.3", api_key=KEY, responder=picky
    ) as endpoint:
        diagnosis = diagnose(endpoint.url, KEY)
        endpoint.add_fault(Fault(404, path="/v1/chat/completions"))
        score_only = diagnose(endpoint.url, KEY)
    assert diagnosis.setup is not None and diagnosis.setup.formatter == "mistral"  # the family /info names
    for name in ("streaming", "tools", "response_format json_schema"):
        failed = probe(diagnosis, f"{name} on /v1/chat/completions")
        assert failed.ok is False and "this model has no" in failed.detail, failed
    assert probe(score_only, "streaming").ok is None
    assert "not sent: the client cannot put this in that body" in probe(score_only, "tools").detail


def test_a_chat_completions_family_name_still_tries_score_bodies() -> None:
    with LocalEndpoint(kind="dedicated", family="llama", model_name="gpt-4o", api_key=KEY) as endpoint:
        diagnosis = diagnose(endpoint.url, KEY)
    assert diagnosis.setup is not None and diagnosis.setup.formatter == "llama"


def test_reports_in_process(serverless: LocalEndpoint, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", serverless.url, "--api-key", KEY, "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["working"] and report["client_options"]["auth_header"] == "both"
    with LocalEndpoint(kind="serverless", api_key="short") as endpoint:
        assert main(["doctor", endpoint.url, "--api-key", "short"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Use it like this:" in out and "client = ChatClient(" in out


def test_the_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "doctor.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "use formatter='mistral', auth_header='bearer'" in result.stdout
    assert "ok  /score input_data.input_string chat messages (mistral)" in result.stdout
