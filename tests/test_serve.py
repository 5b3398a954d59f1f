"""``azml-chat serve`` as a development server, run as a subprocess; and the parsers behind it.

Request log lines, faults from command-line strings, scripted replies from a JSONL file,
capacity, model name, and graceful shutdown on SIGTERM/SIGINT (a reply in progress is
finished, then the process exits 0).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply, load_replies, replay_responder
from azml_chat.testing._faults import fault_reply, wire_plan
from azml_chat.testing._reply import Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "serve-secret-key"


class Server:
    """A running ``azml-chat serve`` process."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "azml_chat.cli", "serve", "--api-key", KEY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("serving a local "), first + self.stop()[1]
        self.url = first.rsplit(" ", 1)[-1].strip()
        self.base_url = self.url.split("/", 3)[0] + "//" + self.url.split("/", 3)[2]

    def stop(self, signum: int | None = signal.SIGTERM) -> tuple[str, str]:
        """Send ``signum`` (None: none), wait for the exit; the rest of stdout and all of stderr."""
        if signum is not None and self.process.poll() is None:
            self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        return out, err


@pytest.fixture
def replies_file(tmp_path: Path) -> Path:
    path = tmp_path / "replies.jsonl"
    lines: list[Any] = [
        {
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ]
        },
        {
            "content": "It is sunny.",
            "reasoning_content": "The tool said so.",
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        },
        "plain text",
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    return path


@pytest.fixture
def server(replies_file: Path) -> Iterator[Server]:
    server = Server(
        "--kind", "serverless", "--model-name", "phi-4", "--replies", str(replies_file),
        "--fault", "429,retry-after=2",
        "--fault", "424,model-status=503,reason=warming up",
        "--fault", "503,path=/score",
        "--capacity", "4",
    )  # fmt: skip
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)


def test_serve_faults_replies_and_request_log(server: Server) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    body = {"messages": [{"role": "user", "content": "weather?"}]}
    with httpx.Client(headers=auth, timeout=10) as c:
        r = c.post(server.url, json=body)
        assert (r.status_code, r.headers["retry-after"]) == (429, "2")
        r = c.post(server.url, json=body)
        assert r.status_code == 424
        assert r.headers["ms-azureml-model-error-statuscode"] == "503"
        assert r.headers["ms-azureml-model-error-reason"] == "warming up"
        replies = [c.post(server.url, json=body).json() for _ in range(4)]
        score = c.post(server.base_url + "/score", json={"input_data": {"input_string": body["messages"]}})
        assert score.status_code == 503  # the fault for /score waited for a /score request
    assert replies[0]["model"] == "phi-4"
    (call,) = replies[0]["choices"][0]["message"]["tool_calls"]
    assert (call["id"], call["function"]["arguments"]) == ("call_1", '{"city": "Paris"}')
    assert replies[0]["choices"][0]["finish_reason"] == "tool_calls"
    message = replies[1]["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("It is sunny.", "The tool said so.")
    assert replies[1]["usage"]["total_tokens"] == 12
    assert replies[2]["choices"][0]["message"]["content"] == "plain text"
    assert replies[3]["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"  # from the top again
    out, err = server.stop()
    assert server.process.returncode == 0
    lines = [line for line in err.splitlines() if " POST " in line]
    assert len(lines) == 7
    assert lines[0].endswith("POST /v1/chat/completions 429 " + lines[0].split()[-2] + " deployment=-")
    assert " POST /v1/chat/completions 424 " in lines[1] and " POST /score 503 " in lines[6]
    assert all(line.split()[-2].endswith("ms") for line in lines)
    assert "stopped (SIGTERM)" in err
    assert KEY not in out + err


def test_serve_capacity_and_the_deployment_in_the_log() -> None:
    # the first reply trickles out (~2 s), holding the only slot while the second request comes
    args = ("--kind", "azure-openai", "--capacity", "1", "--retry-after", "3", "--fault", "trickle=0.05,chunk=8")
    server = Server(*args)
    try:
        url = server.base_url + "/openai/deployments/gpt-4o/chat/completions"
        version = {"api-version": "2024-10-21"}
        body = {"messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(headers={"api-key": KEY}, timeout=10) as c:
            with c.stream("POST", url, params=version, json=body) as slow:
                assert slow.status_code == 200
                r = c.post(url, params=version, json=body)
                assert (r.status_code, r.headers["retry-after"]) == (429, "3")
            # leaving the stream unread closed its connection: the slot is free again once the
            # server's next trickled write (50 ms apart) finds the connection gone
            give_up = time.monotonic() + 10
            while time.monotonic() < give_up:
                r = c.post(url, params=version, json=body)
                if r.status_code == 200:
                    break
                time.sleep(0.02)
            assert r.status_code == 200
    finally:
        _, err = server.stop(signal.SIGINT)
    assert server.process.returncode == 0
    assert "stopped (SIGINT)" in err
    logged = [line for line in err.splitlines() if " POST " in line]
    assert logged[0].split()[4] == "429" and logged[-1].split()[4] == "200"
    assert any(line.endswith("deployment=gpt-4o (connection closed)") for line in logged)
    assert all("deployment=gpt-4o" in line for line in logged)


def test_serve_finishes_a_reply_in_progress_on_sigterm() -> None:
    # a trickled reply: the status line arrives at once, the body over ~1 s
    server = Server("--fault", "trickle=0.05,chunk=16", "--quiet", "--grace", "20")
    with (
        httpx.Client(headers={"api-key": KEY}, timeout=10) as c,
        c.stream("POST", server.url, json={"messages": [{"role": "user", "content": "finish me"}]}) as r,
    ):
        assert r.status_code == 200  # the reply is in progress ...
        server.process.send_signal(signal.SIGTERM)
        body = json.loads(r.read())  # ... and is finished before the server stops
    assert body["choices"][0]["message"]["content"] == "finish me"
    _, err = server.stop(None)
    assert server.process.returncode == 0
    assert " POST " not in err  # --quiet
    with pytest.raises(httpx.TransportError):
        httpx.post(server.url, json={}, timeout=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "429,retry_after=2"], "unknown option 'retry_after'"),
        (["--fault", "99"], "status must be an HTTP status code"),
        (["--fault", "drop=sometimes"], "drop must be one of"),
        (["--replies", "/nonexistent/replies.jsonl"], "No such file"),
        (["--capacity", "0"], "capacity must be at least 1"),
    ],
)
def test_serve_refuses_bad_settings(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "azml_chat.cli", "serve", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_shows_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "azml_chat.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert "azml-chat serve --fault 429,retry-after=2" in result.stdout
    assert "--replies FILE" in result.stdout and "--capacity N" in result.stdout


# -- the parsers, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("429,retry-after=2", Fault(429, headers={"retry-after": "2"})),
        ("429, retry-after-ms=250 ,times=3", Fault(429, headers={"retry-after-ms": "250"}, times=3)),
        ("503,path=/score", Fault(503, path="/score")),
        (
            "424,model-status=503,reason=not ready",
            Fault(
                424,
                headers={"ms-azureml-model-error-statuscode": "503", "ms-azureml-model-error-reason": "not ready"},
            ),
        ),
        ("slow=5", Fault(delay_before_headers=5.0)),
        ("trickle=0.05,chunk=8", Fault(delay_between_chunks=0.05, chunk_size=8)),
        ("drop=mid-stream", Fault(drop="mid_stream")),
        ("drop=before_headers", Fault(drop="before_headers")),
        ('500,body={"message": "run() failed"}', Fault(500, body='{"message": "run() failed"}')),
        (
            "stream-error=content filtered",
            Fault(stream_error={"error": {"code": "stream_error", "message": "content filtered"}}),
        ),
        ("header:X-Ms-Region=eastus,RETRY-AFTER=1", Fault(headers={"x-ms-region": "eastus", "retry-after": "1"})),
    ],
)
def test_fault_parse(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty item"),
        ("429,,times=2", "empty item"),
        ("retry-after", "neither a status code nor name=value"),
        ("429,503", "'503' is neither"),
        ("times=two", "'times=two'"),
        ("slow=nan", "delays must be"),
        ("times=0", "times must be >= 1"),
        ("chunk=0", "chunk_size must be >= 1"),
        ("600", "status must be"),
        ("colour=red", "unknown option 'colour'"),
    ],
)
def test_fault_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="fault") as info:
        Fault.parse(spec)
    assert message in str(info.value)


def test_scripted_replies_from_data(tmp_path: Path) -> None:
    assert ScriptedReply.from_dict("hi") == ScriptedReply(content="hi")
    full = {"content": None, "tool_calls": [{"function": {"name": "f"}}], "finish_reason": "tool_calls"}
    assert ScriptedReply.from_dict(full) == ScriptedReply(
        tool_calls=[{"function": {"name": "f"}}], finish_reason="tool_calls"
    )
    for bad, message in [
        ({"text": "x"}, "unknown key(s) ['text']"),
        ({"content": 1}, "'content' must be str"),
        ({"usage": {"total_tokens": "3"}}, "'usage' values must be integers"),
        ({"tool_calls": [{"name": "f"}]}, "'function' object"),
        (["x"], "a string or an object"),
    ]:
        with pytest.raises(ValueError, match=r".") as info:
            ScriptedReply.from_dict(bad)  # type: ignore[arg-type]
        assert message in str(info.value)
    path = tmp_path / "r.jsonl"
    path.write_text('"one"\n\n{"content": "two"}\n{"content": 3}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl, line 4: 'content' must be str"):
        load_replies(path)
    path.write_text('"one"\n{not json\n')
    with pytest.raises(ValueError, match="line 2"):
        load_replies(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no replies"):
        load_replies(path)
    path.write_text('"one"\n{"content": "two"}\n')
    respond = replay_responder(load_replies(path))
    turn: Any = None
    assert [respond(turn).content for _ in range(3)] == ["one", "two", "one"]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="at least one"):
        replay_responder([])


def test_replay_responder_over_http(azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.responder = replay_responder([ScriptedReply(content="first"), ScriptedReply(content="second")])
    with httpx.Client(headers={"api-key": "test-key"}, timeout=10) as c:
        body = {"messages": [{"role": "user", "content": "x"}]}
        answers = [c.post(azml_endpoint.url, json=body).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert answers == ["first", "second", "first"]


@pytest.mark.parametrize(
    ("fault", "events", "send_head", "pieces", "complete"),
    [
        (None, None, True, [b"0123456789"], True),
        (Fault(drop="before_headers"), None, False, [b"0123456789"], False),
        (Fault(drop="in_body"), None, True, [b"01234"], False),
        (Fault(drop="mid_stream"), None, True, [b"01234"], False),
        (Fault(drop="mid_stream"), [b"a", b"b", b"c"], True, [b"a"], False),
        (Fault(delay_between_chunks=0.1, chunk_size=4), None, True, [b"0123", b"4567", b"89"], True),
        (Fault(status=500), [b"a", b"", b"c"], True, [b"a", b"c"], True),
    ],
)
def test_wire_plan(
    fault: Fault | None, events: list[bytes] | None, send_head: bool, pieces: list[bytes], complete: bool
) -> None:
    reply = Reply(200, b"0123456789", events=events, split=1)
    plan = wire_plan(reply, fault)
    assert (plan.send_head, plan.pieces, plan.complete) == (send_head, pieces, complete)


def test_scripting_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "local_endpoint_scripting.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "after a 429 and a 424: 'first scripted reply' (3 attempts)",
        "next: 'second scripted reply', reasoning 'I thought about it'",
        "6 at once against capacity 4: 4 answered, 2 refused with 429",
        "endpoint saw: 4 admitted, 2 refused, peak 4",
    ]


# -- the library side of serve, in this process (so coverage sees it) -------------------------


def test_serve_until_signal_finishes_requests_in_progress() -> None:
    endpoint = LocalEndpoint()
    endpoint.add_fault(Fault(delay_between_chunks=0.02, chunk_size=16))  # a reply taking ~0.4 s
    bodies: list[Any] = []

    def client(url: str) -> None:
        with (
            httpx.Client(headers={"api-key": "test-key"}, timeout=10) as c,
            c.stream("POST", url, json={"messages": [{"role": "user", "content": "in progress"}]}) as r,
        ):
            os.kill(os.getpid(), signal.SIGINT)  # handled by the endpoint's signal receiver
            bodies.append(json.loads(r.read()))

    threads: list[threading.Thread] = []

    def ready(ep: LocalEndpoint) -> None:
        threads.append(threading.Thread(target=client, args=(ep.url,)))
        threads[0].start()

    signum = anyio.run(lambda: endpoint.serve_until_signal(grace=20, on_ready=ready))
    threads[0].join(10)
    assert signum == signal.SIGINT
    assert bodies[0]["choices"][0]["message"]["content"] == "in progress"
    with pytest.raises(RuntimeError, match="not running"):
        _ = endpoint.port


async def _drain_gives_up_after_grace() -> None:
    arrived = anyio.Event()

    async def stuck_model(turn: ChatTurn) -> str:
        arrived.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def caller(url: str) -> None:
        async with httpx.AsyncClient(headers={"api-key": "test-key"}) as c:
            with pytest.raises(httpx.TransportError):
                await c.post(url, json={"messages": [{"role": "user", "content": "x"}]})

    async with anyio.create_task_group() as tg:
        async with LocalEndpoint(responder=stuck_model) as endpoint:
            tg.start_soon(caller, endpoint.url)
            await arrived.wait()
            await endpoint.drain(0.01)  # the request outlives the grace period ...
            assert endpoint.capacity_stats.in_flight == 1
            with pytest.raises(httpx.ConnectError):  # ... and no new connection is taken
                async with httpx.AsyncClient() as c:
                    await c.get(endpoint.base_url + "/")
        # leaving the endpoint closed what was left
        assert endpoint.capacity_stats.in_flight == 0


def test_drain_gives_up_after_grace() -> None:
    anyio.run(_drain_gives_up_after_grace)


def test_access_log_lines(azml_endpoint_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="azml_chat.testing.access")
    message = {"messages": [{"role": "user", "content": "x"}]}
    dedicated = azml_endpoint_factory(kind="dedicated", deployments=["blue"])
    httpx.post(
        dedicated.url,
        json={"input_data": {"input_string": message["messages"]}},
        headers={"authorization": "Bearer test-key"},
    )
    serverless = azml_endpoint_factory(api_key=KEY)
    httpx.post(
        serverless.url + "?api-version=1&key=" + KEY, json={**message, "model": "phi-4"}, headers={"api-key": KEY}
    )
    httpx.post(serverless.score_url, content=b"[]", headers={"api-key": KEY})
    httpx.get(serverless.base_url + "/")
    aoai = azml_endpoint_factory(kind="azure-openai")
    httpx.post(aoai.deployment_url("gpt-4o") + "?api-version=2024-10-21", json=message, headers={"api-key": "test-key"})

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "azml_chat.testing.access"]

    # a line is written once the reply is out: the client may see the reply a moment before
    for _ in range(500):
        if len(logged()) == 5:
            break
        time.sleep(0.002)
    lines = logged()
    shapes = [(line.split()[:3], line.split()[-1]) for line in lines]
    assert shapes == [
        (["POST", "/score", "200"], "deployment=blue"),
        (["POST", "/v1/chat/completions", "200"], "deployment=phi-4"),
        (["POST", "/score", "400"], "deployment=default"),
        (["GET", "/", "200"], "deployment=-"),
        (["POST", "/openai/deployments/gpt-4o/chat/completions", "200"], "deployment=gpt-4o"),
    ]
    assert all(KEY not in line and "api-version" not in line for line in lines)


def test_fault_replies_for_unusual_statuses() -> None:
    assert fault_reply(Fault(599)).body == b'{"error":{"code":"Error","message":"Simulated 599 Error (fault)."}}'
    assert fault_reply(Fault(204)).body == b""


def test_testing_namespace() -> None:
    import azml_chat.testing as testing

    assert {"LocalEndpoint", "Fault", "CapacityStats", "load_replies", "replay_responder"} <= set(dir(testing))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope  # type: ignore[attr-defined]
