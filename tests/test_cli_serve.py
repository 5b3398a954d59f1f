"""The commands together as a developer uses them: ``azml-chat serve`` with scripted faults in one
terminal, ``azml-chat chat`` and ``azml-chat doctor`` against it in another. (``serve``'s own
options are tested in test_serve.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, cli_env, run_cli

from azml_chat.cli import EXIT_OK

KEY = "served-key-31337"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    replies = tmp_path / "replies.jsonl"
    replies.write_text(json.dumps({"content": "scripted answer", "reasoning_content": "thinking it over"}) + "\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azml_chat.cli",
            "serve",
            "--kind",
            "dedicated",
            "--api-key",
            KEY,
            "--replies",
            str(replies),
            "--fault",
            "429,retry-after-ms=30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("serving a local dedicated endpoint"), first
    try:
        yield first.rsplit(" ", 1)[-1].strip(), process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_chat_and_doctor_against_a_served_endpoint(serve: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = serve
    vllm_route = url.replace("/score", "/v1/chat/completions")
    chat = run_cli("chat", "-v", "--url", vllm_route, "--api-key", KEY, "a question")
    assert chat.returncode == EXIT_OK, chat.stderr
    assert chat.stdout == "scripted answer\n"
    assert "attempt 1 failed (HTTP 429 RateLimitError" in chat.stderr and "retrying in 30 ms" in chat.stderr
    assert "thinking it over" in chat.stderr  # -v shows the reasoning
    doctor = run_cli("doctor", url, "--api-key", KEY)
    assert doctor.returncode == EXIT_OK, doctor.stdout
    assert 'formatter="llama"' in doctor.stdout and 'auth_header="bearer"' in doctor.stdout
    process.send_signal(signal.SIGINT)
    _, log = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "POST /v1/chat/completions 429" in log and "POST /score 200" in log and "GET /v1/models 200" in log
    assert "stopped (SIGINT)" in log
    assert KEY not in log


def test_serve_in_process_until_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    """The serve command in this process (so coverage sees it): a chat through it, then SIGINT."""
    import os
    import socket
    import threading
    import time

    from azml_chat import ChatClient
    from azml_chat.cli import EXIT_USAGE, main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    replies: list[str] = []

    def use_then_stop() -> None:
        try:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.01)
            with ChatClient(url, api_key=KEY, max_retries=0) as client:
                replies.append(client.chat("through serve").content)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=use_then_stop)
    thread.start()
    try:
        code = main(["serve", "--port", str(port), "--api-key", KEY, "--model-name", "m", "--fault", "slow=0.01"])
    finally:
        thread.join()
    assert code == EXIT_OK and replies == ["through serve"]
    captured = capsys.readouterr()
    assert f"at http://127.0.0.1:{port}/v1/chat/completions" in captured.out and "1 fault(s) queued" in captured.out
    assert "stopped (SIGINT)" in captured.err
    assert main(["serve", "--fault", "99"]) == EXIT_USAGE
