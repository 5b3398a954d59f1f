"""The azml-chat command and the core examples, run in subprocesses like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import API_KEY

from azml_chat.cli import main
from azml_chat.testing import Fault, LocalEndpoint

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    return subprocess.run(
        [sys.executable, "-m", "azml_chat.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("kind", ["dedicated", "serverless"])
def test_cli_chat_against_both_kinds(kind: str) -> None:
    with LocalEndpoint(kind=kind, api_key=API_KEY) as endpoint:  # type: ignore[arg-type]
        env = {"AZUREML_ENDPOINT_URL": endpoint.url, "AZUREML_ENDPOINT_API_KEY": API_KEY}
        result = run_cli("chat", "--system", "Be brief", "--max-tokens", "20", "Hello there", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Hello there"
        assert endpoint.requests[-1].json is not None
        result = run_cli("chat", "--json", "--stream", "streamed words", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["content"] == "streamed words"
        assert API_KEY not in result.stdout + result.stderr


def test_cli_without_settings_uses_the_embedded_endpoint() -> None:
    result = run_cli("chat", "--stream", "zero setup")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "zero setup"
    assert "embedded local endpoint" in result.stderr


def test_cli_errors_print_one_line_and_exit_non_zero() -> None:
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        endpoint.add_fault(Fault(400, body={"error": {"code": "Bad", "message": "temperature out of range"}}))
        result = run_cli("chat", "x", "--url", endpoint.url, "--api-key", "super-secret-key")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "BadRequestError" in result.stderr and "temperature out of range" in result.stderr
    assert "super-secret-key" not in result.stdout + result.stderr
    bad = run_cli("chat", "x", "--url", "ftp://nowhere")
    assert bad.returncode == 2 and "configuration error" in bad.stderr


def test_cli_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalEndpoint(kind="dedicated", api_key=API_KEY) as endpoint:
        code = main(
            [
                "chat",
                "--url",
                endpoint.url,
                "--api-key",
                API_KEY,
                "--formatter",
                "phi",
                "--temperature",
                "0.2",
                "--deployment",
                "blue",
                "--timeout",
                "5",
                "in process",
            ]
        )
    assert code == 0 and capsys.readouterr().out.strip() == "in process"
    request = endpoint.requests[-1]
    assert request.json["input_data"]["parameters"] == {"temperature": 0.2}
    assert request.headers["azureml-model-deployment"] == "blue"


def test_cli_serve() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "azml_chat.cli", "serve", "--kind", "dedicated", "--family", "mistral"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.endswith("/score"), line
        result = run_cli("chat", "served", "--url", url, "--api-key", "local-key", "--formatter", "mistral")
        assert result.returncode == 0 and result.stdout.strip() == "served"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("example", ["quickstart.py", "dedicated_llama.py", "serverless.py", "model_kwargs.py"])
def test_core_examples_run(example: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Collatz" in result.stdout or "Azure Machine Learning" in result.stdout
