"""The azml-chat command as a whole: help with examples, exit codes, errors on one line, the
batch command found only when installed, and the core examples run like a user would."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from cli_support import ROOT, cli_env, run_cli
from support import API_KEY

from azml_chat.cli import EXIT_FAILED, EXIT_USAGE, build_parser, main
from azml_chat.testing import Fault, LocalEndpoint

BATCH_INSTALLED = importlib.util.find_spec("azml_chat.batch") is not None


def test_help_lists_the_commands_with_examples_and_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("chat", "doctor", "serve"):
        assert command in result.stdout
    assert "examples:" in result.stdout
    assert "130 interrupted" in result.stdout
    assert ("batch" in result.stdout) is BATCH_INSTALLED


@pytest.mark.parametrize("command", ["chat", "doctor", "serve"])
def test_each_command_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"azml-chat {command}" in out


def test_version_and_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("azml-chat ")
    with pytest.raises(SystemExit) as exit_:
        main(["nonsense"])
    assert exit_.value.code == EXIT_USAGE


def test_python_dash_m_and_the_entry_point_are_the_same_main() -> None:
    from azml_chat import cli

    assert cli.main is main
    entry = (ROOT / "pyproject.toml").read_text()
    assert 'azml-chat = "azml_chat.cli:main"' in entry


def test_other_commands_never_import_the_batch_machinery() -> None:
    code = (
        "import sys; from azml_chat.cli import build_parser; "
        "build_parser(['chat', 'hi']).parse_args(['chat', 'hi']); "
        "print(sorted(m for m in sys.modules if m.startswith('azml_chat.batch')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not BATCH_INSTALLED, reason="the batch command is not in this checkout")
def test_batch_help_works_when_installed() -> None:
    result = run_cli("batch", "--help")
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout
    assert "batch" in build_parser(["batch"]).format_help()


def test_request_errors_print_one_line_exit_1_and_never_the_key() -> None:
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        endpoint.add_fault(Fault(400, body={"error": {"code": "Bad", "message": "temperature out of range"}}))
        result = run_cli("chat", "x", "--url", endpoint.url, "--api-key", "super-secret-key")
    assert result.returncode == EXIT_FAILED
    assert result.stderr.strip().count("\n") == 0
    assert "BadRequestError" in result.stderr and "temperature out of range" in result.stderr
    assert "request id" in result.stderr
    assert "super-secret-key" not in result.stdout + result.stderr
    bad = run_cli("chat", "x", "--url", "ftp://nowhere")
    assert bad.returncode == EXIT_USAGE and "configuration error" in bad.stderr


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
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


@pytest.mark.parametrize("example", ["quickstart.py", "dedicated_llama.py", "serverless.py", "model_kwargs.py"])
def test_core_examples_run(example: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cli_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Collatz" in result.stdout or "Azure Machine Learning" in result.stdout


def test_python_dash_m_runs_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    monkeypatch.setattr("sys.argv", ["azml-chat", "chat", "--local", "as python -m runs it"])
    monkeypatch.delitem(sys.modules, "azml_chat.cli.__main__", raising=False)
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module("azml_chat.cli.__main__")  # what `python -m azml_chat.cli` executes
    sys.modules.pop("azml_chat.cli.__main__", None)
    assert exit_.value.code == 0 and capsys.readouterr().out == "as python -m runs it\n"
