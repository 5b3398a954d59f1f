"""The package logger: silent by default, DEBUG lines that say what answered and what it
cost, and ``AZML_CHAT_LOG`` to print them without any logging setup."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from support import mode_param, settings, with_client

from azml_chat import ChatClient
from azml_chat._log import configure_logging
from azml_chat.testing import LocalEndpoint


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("azml_chat").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def end_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "azml_chat" and " ended: " in r.getMessage()]


@mode_param
def test_debug_lines_carry_model_usage_and_request_id(
    endpoint: LocalEndpoint, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="azml_chat")

    def sync_calls(client: object) -> list[str | None]:
        reply = client.chat("one two", model="m1")  # type: ignore[attr-defined]
        with client.stream("a b c", stream_options={"include_usage": True}) as stream:  # type: ignore[attr-defined]
            streamed = stream.get_final_response()
        return [reply.request_id, streamed.request_id]

    async def async_calls(client: object) -> list[str | None]:
        reply = await client.chat("one two", model="m1")  # type: ignore[attr-defined]
        async with client.stream("a b c", stream_options={"include_usage": True}) as stream:  # type: ignore[attr-defined]
            streamed = await stream.get_final_response()
        return [reply.request_id, streamed.request_id]

    ids = with_client(mode, endpoint.url, sync_calls, async_calls, deployment_name="blue")
    reply_line, stream_line = end_lines(caplog)
    assert reply_line.startswith(
        f"reply ended: model=m1 deployment=blue input_tokens=2 output_tokens=2 request_id={ids[0]} ("
    )
    assert stream_line.startswith(
        f"stream ended: model=local-model deployment=blue input_tokens=3 output_tokens=3 request_id={ids[1]} ("
    )


def test_a_dedicated_reply_without_usage_says_so(dedicated: LocalEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="azml_chat")
    with ChatClient(dedicated.url, **settings()) as client:
        client.chat("hi")
        with client.stream("hi") as stream:  # /score cannot stream: one chunk, logged as a reply
            stream.get_final_response()
    lines = end_lines(caplog)
    assert len(lines) == 2
    assert all("model=None deployment=None input_tokens=None output_tokens=None request_id=" in line for line in lines)


def test_configure_logging_prints_at_the_level_asked(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("azml_chat")
    level = logger.level
    handler = configure_logging("INFO ")
    try:
        assert handler is not None and handler.level == logging.INFO
        logger.debug("not shown")
        logger.info("shown")
    finally:
        logger.removeHandler(handler)  # type: ignore[arg-type]
        logger.setLevel(level)
    assert capsys.readouterr().err.endswith("INFO azml_chat] shown\n")
    assert configure_logging("") is None
    with pytest.warns(UserWarning, match="AZML_CHAT_LOG='loud' is not one of debug, info, warning, error"):
        assert configure_logging("loud") is None
    assert sum(isinstance(h, logging.NullHandler) for h in logger.handlers) == 1  # never added twice


def test_azml_chat_log_debug_prints_a_call_to_stderr() -> None:
    """As a user would: no logging setup at all, only the environment variable."""
    code = (
        "from azml_chat import ChatClient\n"
        "from azml_chat.testing import LocalEndpoint\n"
        "with LocalEndpoint(api_key='k') as ep, ChatClient(ep.url, api_key='k', deployment_name='blue') as c:\n"
        "    print(c.chat('hello there').request_id)\n"
    )
    env = {**os.environ, "AZML_CHAT_LOG": "debug"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    request_id = done.stdout.strip()
    expected = "reply ended: model=local-model deployment=blue input_tokens=2 output_tokens=2"
    assert f"DEBUG azml_chat] {expected} request_id={request_id} (" in done.stderr
    assert "'k'" not in done.stderr and "Bearer k" not in done.stderr
    quiet = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "AZML_CHAT_LOG": ""}, check=True
    )
    assert quiet.stderr == ""
