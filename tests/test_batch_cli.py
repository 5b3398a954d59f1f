"""``azml-chat batch`` run as a user would: a subprocess against the embedded endpoint."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import API_KEY

from azml_chat.batch import BatchStatus, BatchSummary
from azml_chat.batch.jobs import JobPlan
from azml_chat.batch.progress import LogProgress, RichProgress, make_progress
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint

ROOT = Path(__file__).resolve().parent.parent


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "azml_chat.cli", "batch", *args]


def environment(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


def batch_cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=120, env=environment(**extra), check=False
    )


def requests_file(path: Path, count: int) -> Path:
    with path.open("w") as file:
        for i in range(count):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"row {i}"}]}
            file.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            file.write("\n")
    return path


def output_ids(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["custom_id"] for line in path.read_text().splitlines())


async def slow_echo(turn: ChatTurn) -> str:
    await anyio.sleep(0.02)
    return str(turn.messages[-1]["content"])


def test_batch_runs_a_file_and_prints_a_summary(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 40)
    endpoint.add_fault(Fault(429, headers={"retry-after-ms": "20"}))
    result = batch_cli(
        str(source), "-o", str(tmp_path / "out.jsonl"), "--url", endpoint.url, "--api-key", API_KEY,
        "--log-interval", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output_ids(tmp_path / "out.jsonl") == Counter(f"r{i}" for i in range(40))
    assert "40 rows in the input, 40 to do" in result.stderr
    assert "40/40 rows (100.0%)" in result.stderr  # plain lines: stderr is not a terminal
    assert "429s 1" in result.stderr
    assert "succeeded                40" in result.stderr
    assert API_KEY not in result.stdout + result.stderr


def test_failed_rows_exit_1_and_bad_input_or_settings_exit_2(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 3)
    endpoint.add_fault(Fault(400))
    env = {"AZUREML_ENDPOINT_URL": endpoint.url, "AZUREML_ENDPOINT_API_KEY": API_KEY}
    failed = batch_cli(
        str(source), "-o", str(tmp_path / "out.jsonl"), "--errors", str(tmp_path / "err.jsonl"),
        "--concurrency", "1", "--progress", "off", **env,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "BadRequestError 1" in failed.stderr
    assert len(output_ids(tmp_path / "err.jsonl")) == 1
    assert len(output_ids(tmp_path / "out.jsonl")) == 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "x"}\n')
    invalid = batch_cli(str(bad), "-o", str(tmp_path / "o.jsonl"), **env)
    assert invalid.returncode == 2
    assert "line 1: 'messages' must be a non-empty list" in invalid.stderr
    assert "Traceback" not in invalid.stderr

    no_url = batch_cli(str(source), "-o", str(tmp_path / "o.jsonl"))
    assert no_url.returncode == 2
    assert "AZUREML_ENDPOINT_URL" in no_url.stderr

    usage = batch_cli(str(source), "-o", str(tmp_path / "o.jsonl"), "--concurrency", "0")
    assert usage.returncode == 2
    assert "at least 1" in usage.stderr


def test_help_shows_the_file_format_and_examples() -> None:
    result = batch_cli("--help")
    assert result.returncode == 0
    assert "custom_id" in result.stdout
    assert "azml-chat batch requests.jsonl -o results.jsonl" in result.stdout
    assert "130 interrupted" in result.stdout


def test_kill_9_then_rerun_writes_every_custom_id_exactly_once(tmp_path: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 300)
    output = tmp_path / "out.jsonl"
    with LocalEndpoint(api_key=API_KEY, responder=slow_echo) as endpoint:
        args = command(
            str(source), "-o", str(output), "--url", endpoint.url, "--api-key", API_KEY, "--concurrency", "2"
        )
        process = subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while (not output.exists() or output.read_text().count("\n") < 20) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        written = output.read_text().count("\n")
        assert 20 <= written < 300
        resumed = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already in the output" in resumed.stderr
    assert output_ids(output) == Counter(f"r{i}" for i in range(300))


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 150)
    output = tmp_path / "out.jsonl"
    with LocalEndpoint(api_key=API_KEY, responder=slow_echo) as endpoint:
        args = command(
            str(source), "-o", str(output), "--url", endpoint.url, "--api-key", API_KEY, "--concurrency", "2"
        )
        process = subprocess.Popen(args, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while (not output.exists() or output.read_text().count("\n") < 5) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert max(output_ids(output).values()) == 1


def test_a_terminal_gets_a_live_bar_and_a_summary_table(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = requests_file(tmp_path / "in.jsonl", 30)
    controller, terminal = pty.openpty()
    args = command(str(source), "-o", str(tmp_path / "out.jsonl"), "--url", endpoint.url, "--api-key", API_KEY)
    process = subprocess.Popen(
        args, env=environment(TERM="xterm", COLUMNS="160"), stdout=subprocess.DEVNULL, stderr=terminal
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert "30/30" in text
    assert "batch summary" in text
    assert "rows/s" in text


def test_progress_displays_render_what_they_are_given() -> None:
    plan = JobPlan(total=100, already_done=40, repaired=("out.jsonl",))
    status = BatchStatus(done=30, failed=2, in_flight=8, limit=8, rate_limited=3, paused_for=1.5, elapsed=3.0)
    summary = BatchSummary(
        rows=60, succeeded=58, failed=2, failed_by_error={"RateLimitError": 2}, attempts=70, rate_limited=10,
        prompt_tokens=600, completion_tokens=1200, latency_p50=0.05, latency_p90=0.08, latency_p99=0.1,
        wall_time=6.0, rows_per_second=9.7, requests_per_second=11.7, final_limit=8,
    )  # fmt: skip
    stream = io.StringIO()
    log = LogProgress(stream, interval=0)
    log.start(plan)
    log.update(status)
    log.finish(summary)
    lines = stream.getvalue()
    assert "100 rows in the input, 40 already in the output, 60 to do; cut a partial last line off out.jsonl" in lines
    assert (
        "70/100 rows (70.0%) | 10.0 rows/s | limit 8 | in flight 8 | 429s 3 | failed 2 | ETA 3s | paused 1.5s" in lines
    )
    assert "RateLimitError 2" in lines

    stream = io.StringIO()
    bar = RichProgress(stream, force_terminal=True, width=150)
    bar.start(plan)
    bar.update(status)
    bar.finish(summary)
    rendered = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # no colours
    assert "resuming: 40 of 100 rows already done" in rendered
    assert "70/100" in rendered
    assert "429s 3" in rendered
    assert "58" in rendered

    assert make_progress("off", stream) is None
    assert isinstance(make_progress("auto", io.StringIO()), LogProgress)  # not a terminal
    assert isinstance(make_progress("bar", io.StringIO()), RichProgress)


def test_without_rich_a_bar_is_refused_and_auto_falls_back_to_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from azml_chat import ConfigurationError
    from azml_chat.batch import progress

    monkeypatch.setattr(progress, "rich_available", lambda: False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress.make_progress("auto", Terminal()), LogProgress)
    with pytest.raises(ConfigurationError, match=r"azml-chat\[progress\]"):
        progress.make_progress("bar", Terminal())


def test_the_cli_functions_run_in_process(endpoint: LocalEndpoint, tmp_path: Path, capsys: Any) -> None:
    """The same command through ``main()`` (so coverage sees the code the subprocess tests run)."""
    from azml_chat.cli import main

    source = requests_file(tmp_path / "in.jsonl", 5)
    out = str(tmp_path / "out.jsonl")
    args = ["batch", str(source), "-o", out, "--url", endpoint.url, "--api-key", API_KEY, "--progress", "off"]
    assert main([*args, "--max-concurrency", "3"]) == 0
    summary = capsys.readouterr().err
    assert "succeeded                5" in summary
    assert int(re.search(r"final limit +(\d+)", summary).group(1)) <= 3  # type: ignore[union-attr]
    assert main(["batch", str(source), "-o", out, "--url", endpoint.url, "--api-key", API_KEY, "--concurrency", "3",
                 "--max-requests-per-minute", "6000", "--max-tokens-per-minute", "100000", "--model", "m",
                 "--timeout", "5", "--progress", "log", "--driver", "aiohttp"]) == 0  # fmt: skip
    assert "5 already in the output, 0 to do" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing.jsonl"), "-o", out, "--url", endpoint.url]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["batch", str(source), "-o", str(tmp_path), "--url", endpoint.url]) == 1  # a folder
    assert "IsADirectoryError" in capsys.readouterr().err


def test_the_batch_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "batch_jobs.py")],
        capture_output=True, text=True, timeout=120, env=environment(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "succeeded                60" in result.stdout
    assert "['one', 'two']" in result.stdout
    assert "60 results; first line: custom_id=q" in result.stdout
