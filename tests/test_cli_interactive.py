"""``azml-chat chat -i`` and Ctrl-C, on a pseudo-terminal as a person types them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Terminal
from support import API_KEY

from azml_chat.cli import EXIT_INTERRUPTED, EXIT_OK, main
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, echo_responder


@pytest.fixture
def served() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Terminals a test opens; each is closed (its command killed if still running) afterwards."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def settings_of(endpoint: LocalEndpoint) -> dict[str, str]:
    return {"AZUREML_ENDPOINT_URL": endpoint.url, "AZUREML_ENDPOINT_API_KEY": API_KEY}


def test_a_conversation_keeps_history_and_obeys_its_commands(
    served: LocalEndpoint, terminals: list[Terminal], tmp_path: Path
) -> None:
    transcript, snapshot = tmp_path / "chat.jsonl", tmp_path / "snapshot.jsonl"
    term = Terminal("chat", "-i", "--system", "Be brief", "--save", str(transcript), **settings_of(served))
    terminals.append(term)
    term.expect("/exit or Ctrl-D leaves")
    term.expect("> ")
    term.type("first question\n")
    assert term.expect("> ") == "first question\nfirst question\n"  # what was typed, then the reply
    term.type("second question\n")
    term.expect("> ")
    assert served.requests[-1].json["stream"] is True  # -i streams by default
    assert served.requests[-1].json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first question"},
        {"role": "user", "content": "second question"},
    ]
    for command, said in (
        (f"/save {snapshot}", "5 messages written to"),
        ("/reset", "conversation forgotten"),
        ("/system Answer in French", "system message set"),
    ):
        term.type(command + "\n")
        assert said in term.expect("> ")
    term.type("third\n")
    assert term.expect("> ") == "third\nthird\n"
    assert served.requests[-1].json["messages"] == [
        {"role": "system", "content": "Answer in French"},
        {"role": "user", "content": "third"},
    ]
    term.type("/exit\n")
    assert term.wait() == EXIT_OK
    assert "Traceback" not in term.screen
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [m["content"] for m in lines] == [
        "Be brief",
        "first question",
        "first question",
        "second question",
        "second question",
        "Answer in French",
        "third",
        "third",
    ]
    assert len(snapshot.read_text().splitlines()) == 5


def test_a_failed_turn_is_reported_and_the_conversation_goes_on(
    served: LocalEndpoint, terminals: list[Terminal]
) -> None:
    term = Terminal("chat", "-i", "first", **settings_of(served))
    terminals.append(term)
    assert term.expect("> ").endswith("first\n")
    served.add_fault(Fault(400, body={"error": {"code": "Bad", "message": "no thanks"}}))
    term.type("refused\n")
    said = term.expect("> ")
    assert "no thanks" in said and "the turn was not kept" in said
    term.type("accepted\n")
    assert term.expect("> ") == "accepted\naccepted\n"
    assert [m["content"] for m in served.requests[-1].json["messages"]] == ["first", "first", "accepted"]
    term.type("\x04")  # Ctrl-D
    assert term.wait() == EXIT_OK


def test_ctrl_c_at_the_prompt_exits_130_without_a_traceback(terminals: list[Terminal]) -> None:
    term = Terminal("chat", "-i")
    terminals.append(term)
    term.expect("> ")
    term.type("half a lin")
    term.expect("half a lin")
    term.expect_reading()
    term.type("\x03")
    assert term.wait() == EXIT_INTERRUPTED
    assert "azml-chat: interrupted" in term.screen
    assert "Traceback" not in term.screen and "KeyboardInterrupt" not in term.screen


@pytest.mark.parametrize("interactive", [False, True])
def test_ctrl_c_mid_stream_exits_130_without_a_traceback(
    served: LocalEndpoint, terminals: list[Terminal], interactive: bool
) -> None:
    served.add_fault(Fault(delay_between_chunks=0.1, chunk_size=256))
    words = " ".join(f"word{i}" for i in range(60))
    args = ["-i", words] if interactive else ["--stream", words]
    term = Terminal("chat", *args, **settings_of(served))
    terminals.append(term)
    term.expect("word0 ")
    term.type("\x03")
    assert term.wait() == EXIT_INTERRUPTED
    assert "word59" not in term.screen  # the reply was cut short
    assert "azml-chat: interrupted" in term.screen
    assert "Traceback" not in term.screen and "KeyboardInterrupt" not in term.screen


def test_ctrl_c_while_a_slow_endpoint_is_silent(served: LocalEndpoint, terminals: list[Terminal]) -> None:
    served.add_fault(Fault(delay_before_headers=30))
    term = Terminal("chat", "-v", "waiting", **settings_of(served))
    terminals.append(term)
    term.expect("client request id")
    term.expect_reading()  # blocked waiting for the reply's headers
    term.type("\x03")
    assert term.wait() == EXIT_INTERRUPTED
    assert "Traceback" not in term.screen


def test_conversation_in_process(
    served: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = ["hello", "", "/system", "/system Be kind", "/nonsense", "/reset", f"/save {tmp_path / 's.jsonl'}"]
    lines += ["/save /no/such/dir/x", "refused", "again", "/quit", "never sent"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    args = ["chat", "-i", "--no-stream", "--max-retries", "0", "--url", served.url, "--api-key", API_KEY]
    transcript = tmp_path / "t.jsonl"

    def refuse_once(turn: ChatTurn) -> str:
        if turn.messages[-1]["content"] == "refused":
            raise RuntimeError("refused on purpose")
        return echo_responder(turn)

    served.responder = refuse_once
    assert main([*args, "--save", str(transcript)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "cannot write /no/such/dir/x: No such file or directory" in captured.err
    assert captured.out.count("> ") == 11 and "hello\n" in captured.out and "again\n" in captured.out
    assert "refused on purpose" in captured.err and "the turn was not kept" in captured.err
    saved = [json.loads(line)["content"] for line in transcript.read_text().splitlines()]
    assert saved == ["hello", "hello", "Be kind", "again", "again"]
    assert "system message: (none)" in captured.err
    assert "unknown command '/nonsense'" in captured.err
    assert "1 messages written" in captured.err
    assert served.requests[-1].json.get("stream") is not True
    assert [m["content"] for m in served.requests[-1].json["messages"]] == ["Be kind", "again"]
    assert len(served.requests) == 3
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(args) == EXIT_OK  # end of input leaves
    assert main([*args, "--save", "/no/such/dir/t.jsonl"]) == 2
    assert "cannot write the transcript to /no/such/dir/t.jsonl" in capsys.readouterr().err
