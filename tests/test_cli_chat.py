"""``azml-chat chat`` as people use it: the prompt from arguments or stdin, typed ``-o``
options and ``--model``, retries and time-outs said on stderr, ``-v``, and no silent
fallback to the embedded endpoint when the settings are partial."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import run_cli
from support import API_KEY

from azml_chat.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from azml_chat.cli.settings import chat_params, misspelled_variables, parse_option
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply


@pytest.fixture
def served() -> Iterator[LocalEndpoint]:
    """A serverless endpoint (every Azure ML route is served, vLLM-style bodies too)."""
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as endpoint:
        yield endpoint


def settings_of(endpoint: LocalEndpoint) -> dict[str, str]:
    return {"AZUREML_ENDPOINT_URL": endpoint.url, "AZUREML_ENDPOINT_API_KEY": API_KEY}


def user_text(endpoint: LocalEndpoint) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = endpoint.requests[-1].json["messages"]
    return messages


# -- README command 1 and where calls go -----------------------------------------------------


def test_readme_first_command_on_a_fresh_machine(tmp_path: Path) -> None:
    result = run_cli("chat", "Hello from azml-chat", HOME=str(tmp_path))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "Hello from azml-chat\n"
    assert "no AZUREML_ENDPOINT_URL set; using the embedded local endpoint" in result.stderr


def test_a_misspelled_variable_is_an_error_not_a_quiet_local_answer() -> None:
    result = run_cli("chat", "Summarize Q3", AZUREML_ENDPONT_URL="https://x.eastus.inference.ml.azure.com/score")
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert "AZUREML_ENDPONT_URL (did you mean AZUREML_ENDPOINT_URL?)" in result.stderr
    assert "embedded" not in result.stderr.replace("--local to use the embedded endpoint", "")


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"AZUREML_ENDPOINT_API_KEY": "k-123456"}, [], "AZUREML_ENDPOINT_API_KEY is set but no endpoint URL"),
        ({"AZUREML_DEPLOYMENT_NAME": "blue"}, [], "AZUREML_DEPLOYMENT_NAME is set but no endpoint URL"),
        ({"AZUREML_TIMEOUT": "5"}, [], "AZUREML_TIMEOUT is set but no endpoint URL"),
        ({}, ["--api-key", "k-123456"], "--api-key is set but no endpoint URL"),
        ({"AZUREML_API_KEY": "k"}, [], "AZUREML_API_KEY (did you mean AZUREML_ENDPOINT_API_KEY?)"),
        ({"azureml_endpoint_url": "https://x"}, [], "azureml_endpoint_url (did you mean AZUREML_ENDPOINT_URL?)"),
        ({"AZUREML_ENDPOINT_KEY": "k"}, [], "AZUREML_ENDPOINT_KEY (did you mean AZUREML_ENDPOINT_API_KEY?)"),
    ],
)
def test_partial_settings_exit_2_naming_what_is_missing(
    env: dict[str, str],
    args: list[str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["chat", *args, "Summarize Q3"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert named in captured.err
    assert captured.out == ""
    assert "k-123456" not in captured.err


def test_azure_ml_job_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    job = ["AZUREML_RUN_ID", "AZUREML_SERVICE_ENDPOINT", "AZUREML_MODEL_DIR", "AZUREML_ARM_WORKSPACE_NAME"]
    assert misspelled_variables(dict.fromkeys(job, "x")) == []
    assert misspelled_variables({"AZUREML_ENDPOINT_URL": "x", "AZUREML_URL": ""}) == []
    result = run_cli("chat", "inside a job", **dict.fromkeys(job, "x"))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "inside a job\n"


def test_local_flag_uses_the_embedded_endpoint_whatever_the_environment(served: LocalEndpoint) -> None:
    result = run_cli("chat", "--local", "local please", AZUREML_DEPLOYMENT_NAME="blue", **settings_of(served))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "local please\n"
    assert "--local given; using the embedded local endpoint" in result.stderr
    assert served.requests == []
    clash = run_cli("chat", "--local", "--url", served.url, "x")
    assert clash.returncode == EXIT_USAGE and "--local and --url" in clash.stderr


# -- the prompt: arguments, stdin, '-' ----------------------------------------------------------


def test_piped_stdin_is_the_prompt_and_system_still_applies(served: LocalEndpoint) -> None:
    result = run_cli("chat", "--system", "Be brief", stdin="what is in the pipe\n", **settings_of(served))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "what is in the pipe\n"
    assert user_text(served) == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "what is in the pipe"},
    ]


def test_dash_adds_stdin_after_the_words(served: LocalEndpoint) -> None:
    result = run_cli("chat", "Summarize", "this:", "-", stdin="line one\nline two\n", **settings_of(served))
    assert result.returncode == EXIT_OK, result.stderr
    assert user_text(served)[-1]["content"] == "Summarize this:\n\nline one\nline two"


def test_no_prompt_at_all_is_a_usage_error() -> None:
    empty = run_cli("chat")  # stdin is an empty pipe
    assert empty.returncode == EXIT_USAGE and "stdin was empty" in empty.stderr


def test_no_prompt_on_a_terminal_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Keyboard(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Keyboard(""))
    assert main(["chat"]) == EXIT_USAGE
    assert "no prompt: give one as an argument, pipe it on stdin, or use -i" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("piped"))
    assert main(["chat", "-i", "-"]) == EXIT_USAGE
    assert main(["chat", "--save", "x.jsonl", "hi"]) == EXIT_USAGE
    assert main(["chat", "-i", "--json"]) == EXIT_USAGE


# -- parameters -----------------------------------------------------------------------------------


def test_options_are_typed_and_model_specific_keys_go_in_the_body() -> None:
    with LocalEndpoint(kind="dedicated", api_key=API_KEY) as endpoint:
        vllm_route = endpoint.base_url + "/v1/chat/completions"
        result = run_cli(
            "chat",
            "--url",
            vllm_route,
            "--api-key",
            API_KEY,
            "--model",
            "my-model",
            "-o",
            "temperature=0.2",
            "-o",
            "max-tokens=7",
            "-o",
            "top_k=40",
            "-o",
            "do_sample=True",
            "-o",
            'stop=["END", "STOP"]',
            "-o",
            "seed=null",
            "-o",
            "note=plain text",
            "typed",
        )
        body = endpoint.requests[-1].json
    assert result.returncode == EXIT_OK, result.stderr
    assert body["model"] == "my-model"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 7 and body["top_k"] == 40
    assert body["do_sample"] is True and body["stop"] == ["END", "STOP"] and body["note"] == "plain text"
    assert "seed" not in body  # None removes a parameter


def test_option_parsing() -> None:
    assert parse_option("temperature=0.5") == ("temperature", 0.5)
    assert parse_option("n=2") == ("n", 2)
    assert parse_option("flag=FALSE") == ("flag", False)
    assert parse_option("x=None") == ("x", None)
    assert parse_option("text=a=b") == ("text", "a=b")
    assert parse_option('obj={"a": 1}') == ("obj", {"a": 1})
    for bad in ("novalue", "=1"):
        with pytest.raises(Exception, match="expected key=value"):
            parse_option(bad)
    params = chat_params([("top_k", 3), ("max-tokens", 5)], temperature=None, max_tokens=9)
    assert params == {"max_tokens": 9, "extra_body": {"top_k": 3}}


# -- retries, time-outs, verbose ----------------------------------------------------------------------


def test_a_retry_wait_is_said_on_stderr(served: LocalEndpoint) -> None:
    served.add_fault(Fault(503, headers={"retry-after-ms": "20"}))
    result = run_cli("chat", "after a retry", **settings_of(served))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == "after a retry\n"
    assert "attempt 1 failed (HTTP 503 ServerError, request id " in result.stderr
    assert "retrying in 20 ms" in result.stderr


def test_max_retries_and_timeout_flags(served: LocalEndpoint) -> None:
    served.add_fault(Fault(delay_before_headers=3))
    result = run_cli("chat", "--timeout", "0.3", "--max-retries", "0", "slow", **settings_of(served))
    assert result.returncode == EXIT_FAILED
    assert "APITimeoutError" in result.stderr and "retrying" not in result.stderr
    assert len(served.requests) == 1


def test_verbose_shows_request_ids_timings_retries_and_usage(served: LocalEndpoint) -> None:
    served.add_fault(Fault(429, headers={"retry-after-ms": "1"}))
    usage = 'stream_options={"include_usage": true}'
    result = run_cli("chat", "-v", "--stream", "-o", usage, "hi", **settings_of(served))
    assert result.returncode == EXIT_OK, result.stderr
    err = result.stderr
    assert f"stream {served.url} (route v1-chat; client request id " in err
    assert "attempt 1 failed (HTTP 429 RateLimitError" in err
    assert "attempt 2: HTTP 200 in " in err and "request id " in err
    assert "done: " in err and "2 attempts" in err and "first chunk after" in err
    assert "tokens: " in err and "model local-model" in err
    assert API_KEY not in err


def test_json_output_and_streaming_against_both_kinds() -> None:
    for kind in ("dedicated", "serverless"):
        with LocalEndpoint(kind=kind, api_key=API_KEY) as endpoint:  # type: ignore[arg-type]
            result = run_cli("chat", "--json", "--stream", "streamed words", **settings_of(endpoint))
        assert result.returncode == EXIT_OK, result.stderr
        reply = json.loads(result.stdout)
        assert reply["content"] == "streamed words" and reply["request_id"]


def test_tool_calls_and_reasoning_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    def weather(turn: ChatTurn) -> ScriptedReply:
        call = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        return ScriptedReply(content=None, tool_calls=[call], reasoning_content="they want weather")

    with LocalEndpoint(api_key=API_KEY, responder=weather) as endpoint:
        assert main(["chat", "--url", endpoint.url, "--api-key", API_KEY, "-v", "weather?"]) == EXIT_OK
        captured = capsys.readouterr()
        assert '[tool call call_1] get_weather({"city": "Oslo"})' in captured.out
        assert "they want weather" in captured.err
        assert main(["chat", "--url", endpoint.url, "--api-key", API_KEY, "-v", "--stream", "again"]) == EXIT_OK
        captured = capsys.readouterr()
        assert "get_weather" in captured.out and "they want weather" in captured.err


# -- the same paths in process (so that coverage sees them) -------------------------------------------


def test_in_process_embedded_endpoint_stdin_and_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from the pipe\n"))
    assert main(["chat", "--stream", "--system", "Be brief"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == "from the pipe\n" and "using the embedded local endpoint" in captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO("the text"))
    assert main(["chat", "--json", "Summarize:", "-"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["content"] == "Summarize:\n\nthe text"
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    assert main(["chat"]) == EXIT_USAGE
    assert main(["chat", "--local", "--url", "http://127.0.0.1:9/score", "x"]) == EXIT_USAGE
    assert "--local and --url exclude each other" in capsys.readouterr().err


def test_in_process_every_endpoint_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalEndpoint(kind="dedicated", api_key=API_KEY, deployments=["blue"]) as endpoint:
        vllm_route = endpoint.base_url + "/v1/chat/completions"
        flags = ["--url", vllm_route, "--api-key", API_KEY, "--api-type", "dedicated", "--deployment", "blue"]
        flags += ["--formatter", "openai", "--model", "m1", "--timeout", "5", "--max-retries", "0"]
        assert main(["chat", *flags, "-o", "top_k=2", "flags"]) == EXIT_OK
        request = endpoint.requests[-1]
        endpoint.add_fault(Fault(503))
        assert main(["chat", *flags, "refused"]) == EXIT_FAILED  # no retries
    assert request.headers["azureml-model-deployment"] == "blue"
    assert request.json["model"] == "m1" and request.json["top_k"] == 2
    err = capsys.readouterr().err
    assert "ServerError: HTTP 503" in err and "retrying" not in err


def test_ctrl_c_in_process_is_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("azml_chat.cli.chat.ask", interrupted)
    assert main(["chat", "--local", "x"]) == 130
    assert capsys.readouterr().err.endswith("azml-chat: interrupted\n")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("azml_chat.cli.chat.ask", disk_full)
    assert main(["chat", "--local", "x"]) == EXIT_FAILED
    assert capsys.readouterr().err.endswith("azml-chat: error: [Errno 28] No space left on device\n")


def test_a_closed_stdout_ends_quietly(served: LocalEndpoint) -> None:
    import subprocess
    import sys

    from cli_support import ROOT, cli_env

    process = subprocess.Popen(
        [sys.executable, "-m", "azml_chat.cli", "chat", "--url", served.url, "--api-key", API_KEY, "x" * 100_000],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=cli_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head` that has read enough
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == EXIT_FAILED
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_stderr_report_words() -> None:
    from azml_chat import APIConnectionError, RateLimitError
    from azml_chat.cli.progress import StderrReport, describe_error
    from azml_chat.hooks import AttemptInfo, CallInfo, CallResult

    assert describe_error(None) == "no reply"
    assert describe_error(APIConnectionError("refused")) == "APIConnectionError"
    assert describe_error(RateLimitError("slow down", status_code=429)) == "HTTP 429 RateLimitError"
    out = io.StringIO()
    report = StderrReport(verbose=True, stream=out)
    call = CallInfo("chat", "serverless", "v1-chat", "http://h/v1", "h", 80, "m", "blue", {}, (), "cid")
    report.on_call_start(call)
    report.on_attempt(AttemptInfo(call, 0, None, None, 0.5, APIConnectionError("refused"), 2.5))
    report.on_attempt(AttemptInfo(call, 1, None, None, 0.25, APIConnectionError("refused"), None))
    report.on_call_end(CallResult(call, None, APIConnectionError("refused"), 2, 3.0))
    assert out.getvalue().splitlines() == [
        "azml-chat: chat http://h/v1 (route v1-chat, model m, deployment blue; client request id cid)",
        "azml-chat: attempt 1 failed (APIConnectionError); retrying in 2.5 s",
        "azml-chat: attempt 2: no reply in 0.250 s",
        "azml-chat: failed: 3.000 s, 2 attempts",
    ]
    quiet = StderrReport(stream=out)
    quiet.on_call_start(call)
    quiet.on_call_end(CallResult(call, None, None, 1, 1.0))
    assert len(out.getvalue().splitlines()) == 4


def test_verbose_reasoning_goes_to_stderr_on_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    def thoughtful(turn: ChatTurn) -> ScriptedReply:
        return ScriptedReply(content="the answer", reasoning_content="let me think")

    with LocalEndpoint(api_key=API_KEY, responder=thoughtful) as endpoint:
        assert main(["chat", "-v", "--stream", "--url", endpoint.url, "--api-key", API_KEY, "q"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == "the answer\n"
    assert "let me think\n" in captured.err
