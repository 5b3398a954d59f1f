"""Tests of the embedded local endpoint (azml_chat.testing) over real HTTP with plain httpx."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import h11
import httpx
import pytest

from azml_chat.testing import (
    ChatTurn,
    Fault,
    LocalEndpoint,
    RecordedRequest,
    ScriptedReply,
    echo_responder,
)

AUTH = {"api-key": "test-key"}
BEARER = {"authorization": "Bearer test-key"}  # managed online (dedicated) endpoints read only this one
PASS = {**AUTH, "extra-parameters": "pass-through"}
Factory = Callable[..., LocalEndpoint]


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def score(*items: Any, **params: Any) -> dict[str, Any]:
    return {"input_data": {"input_string": list(items), "parameters": params}}


def sse_blocks(text: str) -> list[str]:
    assert text.endswith("\n\n")
    return text[:-2].split("\n\n")


def sse_chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(b[6:]) for b in sse_blocks(text) if b.startswith("data: ") and b != "data: [DONE]"]


def content_of(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key, "") for c in chunks if c["choices"])


@pytest.fixture
def client(azml_endpoint: LocalEndpoint) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=azml_endpoint.base_url, headers=AUTH, timeout=5) as c:
        yield c


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# -- routes, auth, headers ---------------------------------------------------------------


def test_health_needs_no_auth_and_is_not_faultable(azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(status=503))
    r = httpx.get(azml_endpoint.base_url + "/")
    assert (r.status_code, r.text) == (200, "Healthy")
    assert len(azml_endpoint.pending_faults) == 1


@pytest.mark.parametrize("path", ["/info", "/models/info"])
def test_info(client: httpx.Client, path: str) -> None:
    r = client.get(path, params={"api-version": "2024-05-01-preview"})
    assert r.json() == {
        "model_name": "local-model",
        "model_type": "chat-completion",
        "model_provider_name": "Local",
    }
    assert httpx.get(str(client.base_url) + path).status_code == 401


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/chat/completions", {}),
        ("/chat/completions", {"api-version": "2024-05-01-preview"}),
        ("/models/chat/completions", {"api-version": "2025-04-01"}),
    ],
)
def test_serverless_routes(client: httpx.Client, path: str, query: dict[str, str]) -> None:
    r = client.post(path, params=query, json=chat("hi there"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "local-model"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert "azureml-model-deployment" not in r.headers


def test_api_version_required_on_models_route_only(client: httpx.Client) -> None:
    r = client.post("/models/chat/completions", json=chat())
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MissingApiVersionParameter"
    # serverless /chat/completions takes api-version but does not need it (protocol section 8)
    assert client.post("/chat/completions", json=chat()).status_code == 200


def test_request_ids(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat(), headers={"x-ms-client-request-id": "c-1"})
    assert r.headers["x-request-id"] == r.headers["x-ms-request-id"]
    assert uuid.UUID(r.headers["x-request-id"]).version == 4
    assert r.headers["x-ms-client-request-id"] == "c-1"
    r2 = client.post("/v1/chat/completions", json=chat())
    assert r2.headers["x-request-id"] != r.headers["x-request-id"]
    assert "x-ms-client-request-id" not in r2.headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"authorization": "Bearer test-key"}, 200),
        ({"api-key": "test-key"}, 200),
        ({"authorization": "bearer test-key"}, 200),
        ({}, 401),
        ({"api-key": "wrong"}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "Basic test-key"}, 401),
    ],
)
def test_auth(azml_endpoint: LocalEndpoint, headers: dict[str, str], status: int) -> None:
    for url in (azml_endpoint.chat_url, azml_endpoint.score_url):
        r = httpx.post(url, json={"bad": "body"}, headers=headers)  # auth before validation
        if status == 200:
            assert r.status_code in (400, 422)
        else:
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "Unauthorized"
            assert r.headers["x-ms-error-code"] == "Unauthorized"
            assert "test-key" not in r.text


def test_token_validator_and_no_auth(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(token_validator=lambda t: t.startswith("eyJ"))
    assert httpx.post(ep.url, json=chat(), headers={"authorization": "Bearer eyJabc"}).is_success
    assert httpx.post(ep.url, json=chat(), headers={"authorization": "Bearer xyz"}).status_code == 401
    assert httpx.post(ep.url, json=chat(), headers={"api-key": "eyJabc"}).status_code == 401
    assert httpx.post(ep.url, json=chat(), headers=AUTH).is_success
    ep = azml_endpoint_factory(api_key=None, token_validator=lambda t: t == "tok")
    assert httpx.post(ep.url, json=chat(), headers={"authorization": "Bearer tok"}).is_success
    assert httpx.post(ep.url, json=chat()).status_code == 401
    open_ep = azml_endpoint_factory(api_key=None)
    assert httpx.post(open_ep.url, json=chat()).is_success


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    r = client.post("/nope", json=chat())
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NotFound"
    r = client.get("/score")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    assert client.post("/info").status_code == 405
    assert client.delete("/v1/chat/completions").status_code == 405


def test_deployments(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="dedicated", deployments=["blue", "green"])
    assert ep.url == ep.base_url + "/score"
    with httpx.Client(headers=BEARER) as c:
        r = c.post(ep.url, json=score({"role": "user", "content": "x"}))
        assert r.headers["azureml-model-deployment"] == "blue"
        r = c.post(ep.url, json=score(), headers={"azureml-model-deployment": "green"})
        assert r.status_code == 400  # deployment accepted, then body validated
        assert r.headers["azureml-model-deployment"] == "green"
        r = c.post(ep.url, json=score(), headers={"azureml-model-deployment": "red"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "DeploymentNotFound"
        r = c.post(ep.chat_url, json=chat(), headers={"azureml-model-deployment": "red"})
        assert r.status_code == 404
        r = c.post(ep.chat_url, json=chat(), headers={"azureml-model-deployment": "green"})
        assert r.headers["azureml-model-deployment"] == "green"  # kind=dedicated


# -- serverless body validation and replies -----------------------------------------------


@pytest.mark.parametrize(
    ("content", "status", "loc"),
    [
        (b"{not json", 400, None),
        (b'["messages"]', 400, None),
        (b"", 400, None),
        (b"{}", 422, ["body", "messages"]),
        (b'{"messages": []}', 422, ["body", "messages"]),
        (b'{"messages": "hi"}', 422, ["body", "messages"]),
        (b'{"messages": ["hi"]}', 422, ["body", "messages", 0]),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', 422, ["body", "messages", 0, "role"]),
        (b'{"messages": [{"content": "x"}]}', 422, ["body", "messages", 0, "role"]),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 422, None),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 422, None),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}', 422, None),
    ],
)
def test_serverless_validation(client: httpx.Client, content: bytes, status: int, loc: list[Any] | None) -> None:
    r = client.post("/v1/chat/completions", content=content)
    assert r.status_code == status
    if status == 400:
        assert "error" in r.json()
    else:
        (detail,) = r.json()["detail"]
        assert set(detail) == {"loc", "msg", "type"}
        if loc is not None:
            assert detail["loc"] == loc


def test_all_roles_and_standard_keys_accepted(client: httpx.Client) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "developer", "content": "d"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "t", "tool_call_id": "1"},
        ],
        "temperature": 0.5,
        "top_p": 1,
        "max_tokens": 10,
        "stop": ["x"],
        "seed": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0.1,
        "response_format": {"type": "json_object"},
        "tools": [],
        "tool_choice": "auto",
        "model": "my-deployment",
        "stream": False,
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.json()["model"] == "my-deployment"
    assert r.json()["choices"][0]["message"]["content"] == "u"


def test_extra_parameters(azml_endpoint_factory: Factory) -> None:
    seen: list[dict[str, Any]] = []

    def responder(turn: ChatTurn) -> str:
        seen.append(turn.params)
        return "ok"

    ep = azml_endpoint_factory(responder=responder)
    body = chat(foo=1, logprobs=True, temperature=0.2)
    for mode in (None, "error", "bogus"):
        headers = AUTH if mode is None else {**AUTH, "extra-parameters": mode}
        r = httpx.post(ep.url, json=body, headers=headers)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "Invalid input"
        assert "Extra parameters ['foo', 'logprobs'] are not allowed" in err["message"]
    assert seen == []
    for mode in ("pass-through", "allow"):
        r = httpx.post(ep.url, json=body, headers={**AUTH, "extra-parameters": mode})
        assert r.status_code == 200
        assert seen.pop() == {"foo": 1, "logprobs": True, "temperature": 0.2}
    r = httpx.post(ep.url, json=body, headers={**AUTH, "extra-parameters": "drop"})
    assert r.status_code == 200
    assert seen.pop() == {"temperature": 0.2}


def test_echo_round_trips_unicode_exactly(client: httpx.Client) -> None:
    text = "quotes \" ' back\\slash\nnew\tline  spaces  émoji 🎉 中文 \u2028 end "
    r = client.post("/v1/chat/completions", json=chat(text))
    assert r.json()["choices"][0]["message"]["content"] == text
    parts = [{"type": "text", "text": "a "}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}]
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}]})
    assert r.json()["choices"][0]["message"]["content"] == "a b"


def test_echo_responder_unit() -> None:
    req = RecordedRequest("POST", "/x", {}, {}, b"", None)
    turn = ChatTurn([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], {}, "serverless", req)
    assert echo_responder(turn) == "a"
    assert echo_responder(ChatTurn([{"role": "system", "content": "s"}], {}, "serverless", req)) == ""


TOOL_CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"function": {"name": "noop", "arguments": {"a": 1}}},
]


def test_scripted_reply_shapes(azml_endpoint_factory: Factory) -> None:
    replies = iter(
        [
            ScriptedReply(tool_calls=TOOL_CALLS),
            ScriptedReply(content="answer", reasoning_content="thinking hard", finish_reason="length"),
            ScriptedReply(content="x", usage={"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}),
            ScriptedReply(),
        ]
    )
    ep = azml_endpoint_factory(responder=lambda turn: next(replies))
    with httpx.Client(headers=AUTH) as c:
        body = c.post(ep.url, json=chat()).json()
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        calls = choice["message"]["tool_calls"]
        assert calls[0] == TOOL_CALLS[0]
        assert calls[1]["id"].startswith("call_")
        assert calls[1]["type"] == "function"
        assert calls[1]["function"] == {"name": "noop", "arguments": '{"a": 1}'}
        body = c.post(ep.url, json=chat("a b c")).json()
        assert body["choices"][0]["message"] == {
            "role": "assistant",
            "content": "answer",
            "reasoning_content": "thinking hard",
        }
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
        assert c.post(ep.url, json=chat()).json()["usage"]["prompt_tokens"] == 7
        assert c.post(ep.url, json=chat()).json()["choices"][0]["message"]["content"] == ""


def test_responder_errors_and_async_responder(azml_endpoint_factory: Factory) -> None:
    def boom(turn: ChatTurn) -> str:
        raise RuntimeError("kaput")

    ep = azml_endpoint_factory(responder=boom)
    r = httpx.post(ep.url, json=chat(), headers=AUTH)
    assert r.status_code == 500
    assert "kaput" in r.json()["message"]
    assert httpx.post(ep.url, json=chat(), headers=AUTH).status_code == 500  # still serving

    async def slow_upper(turn: ChatTurn) -> str:
        await anyio.sleep(0.01)
        return echo_responder(turn).upper()

    ep = azml_endpoint_factory(responder=slow_upper)
    assert httpx.post(ep.url, json=chat("abc"), headers=AUTH).json()["choices"][0]["message"]["content"] == "ABC"


# -- streaming ---------------------------------------------------------------------------


def test_stream_without_usage(client: httpx.Client) -> None:
    text = "  Hello, wörld!\n how  are you 🎉 "
    with client.stream("POST", "/v1/chat/completions", json=chat(text, stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        raw = r.read().decode()
    blocks = sse_blocks(raw)
    assert all(b.startswith("data: ") for b in blocks)  # no comment lines, as on Azure
    assert blocks[-1] == "data: [DONE]"
    chunks = sse_chunks(raw)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert content_of(chunks) == text
    assert len(chunks) > 5  # streamed word by word
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all(c["choices"] for c in chunks)


def test_stream_comment_lines_on_request(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(sse_comments=True)
    raw = httpx.post(ep.url, json=chat("a b", stream=True), headers=AUTH).text
    blocks = sse_blocks(raw)
    assert (blocks[0], blocks[-2], blocks[-1]) == (": ping", ": ping", "data: [DONE]")
    assert content_of(sse_chunks(raw)) == "a b"
    ep.sse_comments = False
    assert ": ping" not in httpx.post(ep.url, json=chat("a b", stream=True), headers=AUTH).text


def test_stream_with_usage(client: httpx.Client) -> None:
    body = chat("one two three", stream=True, stream_options={"include_usage": True})
    r = client.post("/v1/chat/completions", json=body, headers=PASS)
    chunks = sse_chunks(r.text)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert content_of(chunks) == "one two three"
    # with extra-parameters: drop, stream_options is dropped like on Azure
    r = client.post("/v1/chat/completions", json=body, headers={**AUTH, "extra-parameters": "drop"})
    assert all(c["choices"] for c in sse_chunks(r.text))
    assert client.post("/v1/chat/completions", json=body).status_code == 400


def test_stream_tool_calls_and_reasoning(azml_endpoint_factory: Factory) -> None:
    reply = ScriptedReply(content="ok then", reasoning_content="let me think", tool_calls=TOOL_CALLS)
    ep = azml_endpoint_factory(responder=lambda turn: reply)
    r = httpx.post(ep.url, json=chat(stream=True), headers=AUTH)
    chunks = sse_chunks(r.text)
    assert content_of(chunks, "reasoning_content") == "let me think"
    assert content_of(chunks) == "ok then"
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    for index, call in enumerate(TOOL_CALLS):
        mine = [f for f in fragments if f["index"] == index]
        assert mine[0]["function"]["arguments"] == ""
        assert mine[0]["type"] == "function"
        assert mine[0]["function"]["name"] == call["function"]["name"]
        assert mine[0]["id"].startswith("call_")
        assert all("id" not in f and "name" not in f["function"] for f in mine[1:])
        assert len(mine) >= 3  # head + 2+ argument fragments
        args = "".join(f["function"]["arguments"] for f in mine)
        expected = call["function"]["arguments"]
        assert args == (expected if isinstance(expected, str) else json.dumps(expected))
    assert fragments[0]["id"] == "call_1"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# -- dedicated /score ----------------------------------------------------------------------

USER = {"role": "user", "content": "hi  there ✓"}


@pytest.mark.parametrize(
    ("kwargs", "body", "expected"),
    [
        ({}, score(USER), {"output": "hi  there ✓"}),
        ({"family": "hf"}, score(USER), {"output": "hi  there ✓"}),
        ({"family": "phi"}, score(USER), {"output": "hi  there ✓"}),
        ({"family": "mistral"}, score(USER), {"output": "hi  there ✓"}),
        ({"family": "text-generation"}, score("a prompt"), [{"0": "a prompt"}]),
        ({"reply_shape": "list0"}, score(USER), [{"0": "hi  there ✓"}]),
        ({"reply_shape": "generated_text"}, score(USER), [{"generated_text": "hi  there ✓"}]),
        ({"reply_shape": "output_list"}, score(USER), {"output": ["hi  there ✓"]}),
        ({"reply_shape": "list"}, score(USER), ["hi  there ✓"]),
        ({}, {"inputs": {"input_string": [USER]}, "parameters": {"x": 1}}, {"output": "hi  there ✓"}),
    ],
)
def test_dedicated_shapes(azml_endpoint_factory: Factory, kwargs: dict[str, Any], body: Any, expected: Any) -> None:
    ep = azml_endpoint_factory(kind="dedicated", **kwargs)
    r = httpx.post(ep.url, json=body, headers={"authorization": "Bearer test-key"})
    assert r.status_code == 200
    assert r.json() == expected
    assert r.headers["azureml-model-deployment"] == "default"


def test_dedicated_double_encoded_and_openai(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="dedicated", reply_shape="double_encoded")
    r = httpx.post(ep.url, json=score(USER), headers=BEARER)
    assert isinstance(r.json(), str)
    assert json.loads(r.json()) == {"output": USER["content"]}
    ep = azml_endpoint_factory(kind="dedicated", reply_shape="openai")
    body = httpx.post(ep.url, json=score(USER), headers=BEARER).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == USER["content"]
    ep = azml_endpoint_factory(kind="dedicated", family="openai", model_name="m")
    r = httpx.post(ep.url, json=chat("x", logprobs=True, stream=True), headers=BEARER)  # no extras check
    assert r.headers["content-type"] == "application/json"  # no streaming on /score
    assert r.json()["choices"][0]["message"]["content"] == "x"
    assert r.json()["model"] == "m"


def test_dedicated_params_seen_by_responder(azml_endpoint_factory: Factory) -> None:
    turns: list[ChatTurn] = []

    def responder(turn: ChatTurn) -> str:
        turns.append(turn)
        return "ok"

    ep = azml_endpoint_factory(kind="dedicated", responder=responder)
    httpx.post(ep.url, json=score(USER, max_new_tokens=5, do_sample=True), headers=BEARER)
    httpx.post(ep.url, json={"inputs": {"input_string": [USER]}, "parameters": {"top_p": 0.9}}, headers=BEARER)
    assert [t.params for t in turns] == [{"max_new_tokens": 5, "do_sample": True}, {"top_p": 0.9}]
    assert turns[0].messages == [USER]
    assert turns[0].route == "dedicated"
    assert turns[0].request.path == "/score"
    ep2 = azml_endpoint_factory(kind="dedicated", family="text-generation", responder=responder)
    httpx.post(ep2.url, json=score("p1"), headers=BEARER)
    assert turns[-1].messages == [{"role": "user", "content": "p1"}]


@pytest.mark.parametrize(
    ("family", "body"),
    [
        ("llama", {"input_string": [USER]}),
        ("llama", {"input_data": {"input_string": "hi"}}),
        ("llama", {"input_data": {"input_string": []}}),
        ("llama", {"input_data": {"input_string": ["a prompt"]}}),
        ("llama", {"input_data": {"input_string": [{"role": "user"}]}}),
        ("llama", {"input_data": {"input_string": [USER], "parameters": [1]}}),
        ("llama", [USER]),
        ("text-generation", {"input_data": {"input_string": [USER]}}),
        ("openai", {"input_data": {"input_string": [USER]}}),
        ("openai", {"messages": [{"role": "x", "content": "y"}]}),
    ],
)
def test_dedicated_validation(azml_endpoint_factory: Factory, family: str, body: Any) -> None:
    ep = azml_endpoint_factory(kind="dedicated", family=family)
    r = httpx.post(ep.url, json=body, headers=BEARER)
    assert r.status_code == 400
    assert set(r.json()) == {"message"}
    assert httpx.post(ep.url, content=b"{oops", headers=BEARER).status_code == 400


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="family"):
        LocalEndpoint(family="gpt")
    with pytest.raises(ValueError, match="reply_shape"):
        LocalEndpoint(reply_shape="xml")
    with pytest.raises(ValueError, match="kind"):
        LocalEndpoint(kind="realtime")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not running"):
        _ = LocalEndpoint().url
    with pytest.raises(ValueError, match="drop"):
        Fault(drop="sometimes")  # type: ignore[arg-type]


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(status=429, headers={"retry-after-ms": "10", "x-ms-retry-after-ms": "10"}), "TooManyRequests"),
        (Fault(status=408), "RequestTimeout"),
        (Fault(status=503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}), "ServiceUnavailable"),
        (Fault(status=500), "InternalServerError"),
        (
            Fault(
                status=424,
                headers={"ms-azureml-model-error-statuscode": "503", "ms-azureml-model-error-reason": "not ready"},
            ),
            "FailedDependency",
        ),
        (Fault(status=400, headers={"x-ms-error-code": "ContentFilter"}), "BadRequest"),
    ],
)
def test_error_faults(client: httpx.Client, azml_endpoint: LocalEndpoint, fault: Fault, code: str) -> None:
    azml_endpoint.add_fault(fault)
    r = client.post("/v1/chat/completions", json=chat())
    assert r.status_code == fault.status
    assert r.json()["error"]["code"] == code
    for name, value in fault.headers.items():
        assert r.headers[name] == value
    assert r.headers["x-ms-error-code"] == fault.headers.get("x-ms-error-code", code)
    assert "x-request-id" in r.headers
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200  # consumed


def test_fault_bodies(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    azml_endpoint.add_fault(Fault(status=502, body=html, content_type="text/html"))
    azml_endpoint.add_fault(Fault(status=500, body={"message": "run() failed"}))
    azml_endpoint.add_fault(Fault(status=200, body=b"{}"))
    azml_endpoint.add_fault(Fault(status=200, body={"output": None, "error": {"code": "x"}}))
    azml_endpoint.add_fault(Fault(status=200, body="not json at all", content_type="text/plain"))
    r = client.post("/v1/chat/completions", json=chat())
    assert (r.status_code, r.headers["content-type"], r.text) == (502, "text/html", html)
    r = client.post("/score", json=score(USER))
    assert (r.status_code, r.json()) == (500, {"message": "run() failed"})
    assert client.post("/score", json=score(USER)).content == b"{}"
    assert client.post("/score", json=score(USER)).json() == {"output": None, "error": {"code": "x"}}
    r = client.post("/score", json={"invalid": True})  # fault replaces validation too
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "not json at all", "text/plain")


def test_fault_times_path_and_order(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(status=503, path="/score", times=2))
    azml_endpoint.add_fault(Fault(status=429))
    azml_endpoint.add_fault(Fault(status=500))
    statuses = [
        client.post("/v1/chat/completions", json=chat()).status_code,  # skips the /score fault
        client.post("/score", json=score(USER)).status_code,
        client.get("/").status_code,  # health never consumes faults
        client.get("/info").status_code,
        client.post("/score", json=score(USER)).status_code,
        client.post("/score", json=score(USER)).status_code,
    ]
    assert statuses == [429, 503, 200, 500, 503, 200]
    assert azml_endpoint.pending_faults == []
    azml_endpoint.add_fault(Fault(status=500))
    azml_endpoint.clear()
    assert azml_endpoint.pending_faults == []
    assert azml_endpoint.requests == []


def test_fault_headers_only_and_stream_request_error(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(headers={"x-ratelimit-remaining-requests": "0"}))
    r = client.post("/v1/chat/completions", json=chat("fine"))
    assert r.json()["choices"][0]["message"]["content"] == "fine"
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    azml_endpoint.add_fault(Fault(status=429))
    r = client.post("/v1/chat/completions", json=chat(stream=True))
    assert (r.status_code, r.headers["content-type"]) == (429, "application/json")


def test_delay_before_headers(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(delay_before_headers=0.3))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=chat(), timeout=0.05)
    azml_endpoint.add_fault(Fault(delay_before_headers=0.15))
    start = time.monotonic()
    r = client.post("/v1/chat/completions", json=chat("slow"))
    assert time.monotonic() - start >= 0.15
    assert r.json()["choices"][0]["message"]["content"] == "slow"


def test_trickled_body_and_stream(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(delay_between_chunks=0.01, chunk_size=32))
    start = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=chat("trickle me")) as r:
        pieces = list(r.iter_raw())
    assert time.monotonic() - start >= 0.01 * (len(b"".join(pieces)) // 32 - 1)
    assert len(pieces) > 3
    assert json.loads(b"".join(pieces))["choices"][0]["message"]["content"] == "trickle me"
    azml_endpoint.add_fault(Fault(delay_between_chunks=0.001, chunk_size=7))
    text = "split across many reads"
    with client.stream("POST", "/v1/chat/completions", json=chat(text, stream=True)) as r:
        raw = [p for p in r.iter_raw()]
    assert len(raw) > 20
    assert content_of(sse_chunks(b"".join(raw).decode())) == text


@pytest.mark.parametrize("stream", [False, True])
def test_drop_before_headers(client: httpx.Client, azml_endpoint: LocalEndpoint, stream: bool) -> None:
    azml_endpoint.add_fault(Fault(drop="before_headers"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json=chat(stream=stream))
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200


@pytest.mark.parametrize("drop", ["in_body", "mid_stream"])
def test_drop_in_non_stream_body(client: httpx.Client, azml_endpoint: LocalEndpoint, drop: Any) -> None:
    azml_endpoint.add_fault(Fault(drop=drop))
    with client.stream("POST", "/v1/chat/completions", json=chat()) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200


@pytest.mark.parametrize("drop", ["in_body", "mid_stream"])
def test_drop_in_stream(client: httpx.Client, azml_endpoint: LocalEndpoint, drop: Any) -> None:
    azml_endpoint.add_fault(Fault(drop=drop))
    received: list[bytes] = []
    with client.stream("POST", "/v1/chat/completions", json=chat("a b c d e f", stream=True)) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            received.extend(r.iter_raw())
    received = [b"".join(received)]
    assert received[0]
    assert b"[DONE]" not in received[0]
    if drop == "mid_stream":
        chunks = sse_chunks(received[0].decode())
        assert content_of(chunks) == "a "  # role chunk + first content chunk, complete events
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200


@pytest.mark.parametrize("error", [{"error": {"code": "content_filter", "message": "no"}}, '{"raw": 1}'])
def test_stream_error(client: httpx.Client, azml_endpoint: LocalEndpoint, error: Any) -> None:
    azml_endpoint.add_fault(Fault(stream_error=error))
    r = client.post("/v1/chat/completions", json=chat("a b c", stream=True))
    assert r.status_code == 200
    blocks = sse_blocks(r.text)
    assert blocks[-1] == "event: error\ndata: " + (
        error if isinstance(error, str) else json.dumps(error, separators=(",", ":"))
    )
    assert content_of(sse_chunks("\n\n".join(blocks[:-1]) + "\n\n")) == "a "
    assert "[DONE]" not in r.text
    azml_endpoint.add_fault(Fault(stream_error="x"))  # ignored by a non-stream request
    assert client.post("/v1/chat/completions", json=chat("ok")).json()["choices"][0]["message"]["content"] == "ok"


# -- recording, limits, HTTP details ------------------------------------------------------


def test_request_recording(client: httpx.Client, azml_endpoint: LocalEndpoint) -> None:
    azml_endpoint.add_fault(Fault(status=500))
    client.post("/v1/chat/completions", json=chat("one"), headers={"X-Custom": "A"})
    client.get("/info", params={"api-version": "v", "empty": ""})
    client.post("/score?x=1", content=b"\xff not json")
    reqs = azml_endpoint.requests
    assert [(q.method, q.path) for q in reqs] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/info"),
        ("POST", "/score"),
    ]
    assert reqs[0].json == chat("one")
    assert json.loads(reqs[0].body) == chat("one")
    assert reqs[0].headers["x-custom"] == "A"
    assert reqs[0].headers["api-key"] == "test-key"
    assert reqs[1].query == {"api-version": "v", "empty": ""}
    assert reqs[1].body == b""
    assert reqs[1].json is None
    assert (reqs[2].query, reqs[2].body, reqs[2].json) == ({"x": "1"}, b"\xff not json", None)
    reqs.clear()  # a snapshot
    assert len(azml_endpoint.requests) == 3


def test_body_too_large(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(max_body_bytes=200)
    with httpx.Client(headers=AUTH) as c:
        r = c.post(ep.url, json=chat("x" * 300))
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "PayloadTooLarge"
        assert c.post(ep.url, json=chat("small")).status_code == 200
    assert ep.total_connections == 1
    assert ep.requests[0].body == b""


def test_chunked_request_body(client: httpx.Client) -> None:
    payload = json.dumps(chat("chunked ok")).encode()

    def gen() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    r = client.post("/v1/chat/completions", content=gen())
    assert r.json()["choices"][0]["message"]["content"] == "chunked ok"


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_malformed_http_and_expect_continue(azml_endpoint: LocalEndpoint) -> None:
    reply = raw_exchange(azml_endpoint.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    body = json.dumps(chat("ok")).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: test-key\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(azml_endpoint.port, head.encode() + body)
    assert reply.startswith(b"HTTP/1.1 100 ")
    assert b"HTTP/1.1 200 OK" in reply
    assert reply.endswith(
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
    )


def test_keep_alive_reuse(azml_endpoint: LocalEndpoint) -> None:
    with httpx.Client(base_url=azml_endpoint.base_url, headers=AUTH) as c:
        for i in range(20):
            assert c.post("/v1/chat/completions", json=chat(str(i))).status_code == 200
            c.get("/info")
            c.post("/score", json=score(USER))
        with c.stream("POST", "/v1/chat/completions", json=chat("s", stream=True)) as r:
            r.read()
        c.post("/nope")
        assert c.post("/v1/chat/completions", content=b"{").status_code == 400
        assert azml_endpoint.open_connections == 1
    assert azml_endpoint.total_connections == 1
    wait_for(lambda: azml_endpoint.open_connections == 0)
    assert len(azml_endpoint.requests) == 63


# -- lifecycle -----------------------------------------------------------------------------


def test_plugin_fixtures(azml_endpoint: LocalEndpoint, azml_endpoint_factory: Factory) -> None:
    assert (azml_endpoint.kind, azml_endpoint.api_key) == ("serverless", "test-key")
    assert azml_endpoint.url == azml_endpoint.chat_url == azml_endpoint.base_url + "/v1/chat/completions"
    assert azml_endpoint.score_url == f"http://127.0.0.1:{azml_endpoint.port}/score"
    a = azml_endpoint_factory(kind="dedicated", api_key="k1")
    b = azml_endpoint_factory(model_name="other")
    assert len({azml_endpoint.port, a.port, b.port}) == 3
    reply = httpx.post(a.url, json=score(USER), headers={"authorization": "Bearer k1"})
    assert reply.json() == {"output": USER["content"]}
    assert httpx.get(b.base_url + "/info", headers=AUTH).json()["model_name"] == "other"


def test_thread_mode_lifecycle() -> None:
    ep = LocalEndpoint()
    with ep:
        assert "127.0.0.1" in repr(ep)
        c = httpx.Client(headers=AUTH)
        assert c.post(ep.url, json=chat()).status_code == 200
        assert ep.open_connections == 1
        with pytest.raises(RuntimeError, match="already running"):
            ep.start()
        port = ep.port
    # stopping closes the client's idle keep-alive connection
    assert ep.open_connections == 0
    with pytest.raises(httpx.TransportError):
        c.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat())
    c.close()
    ep.stop()  # idempotent
    with ep:  # restartable
        assert httpx.post(ep.url, json=chat(), headers=AUTH).status_code == 200


def test_thread_mode_trio_backend() -> None:
    ep = LocalEndpoint(kind="dedicated").start(backend="trio")
    try:
        assert httpx.post(ep.url, json=score(USER), headers=BEARER).json() == {"output": USER["content"]}
    finally:
        ep.stop()


def test_startup_error_propagates(azml_endpoint: LocalEndpoint) -> None:
    before = [t.name for t in threading.enumerate()].count("azml-local-endpoint")
    with pytest.raises(OSError):  # noqa: PT011
        LocalEndpoint(port=azml_endpoint.port).start()
    assert [t.name for t in threading.enumerate()].count("azml-local-endpoint") == before


def test_stop_interrupts_in_flight_requests(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory()
    ep.add_fault(Fault(delay_before_headers=30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(ep.url, json=chat(), headers=AUTH, timeout=10)
        except httpx.TransportError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    wait_for(lambda: len(ep.requests) == 1)
    start = time.monotonic()
    ep.stop()
    t.join(5)
    assert time.monotonic() - start < 2
    assert len(errors) == 1
    assert ep.open_connections == 0


async def h11_post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    """One request on its own raw connection (httpx's pool is too slow for 1000 connections)."""
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", "x"), ("api-key", "test-key"), ("content-length", str(len(body)))]
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(
            b"".join(
                conn.send(e) or b""
                for e in (
                    h11.Request(method="POST", target=path, headers=headers),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                )
            )
        )
        status, data = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await sock.receive())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, data


async def _exercise_async(backend: str, n: int) -> None:
    """Serve in the current loop; ``n`` concurrent clients must be held open simultaneously."""
    arrived = 0
    all_in = anyio.Event()
    peak = 0

    async def responder(turn: ChatTurn) -> str:
        nonlocal arrived, peak
        arrived += 1
        if arrived == n:
            peak = ep.open_connections
            all_in.set()
        await all_in.wait()
        return echo_responder(turn)

    async with LocalEndpoint(responder=responder) as ep:
        results: dict[int, tuple[int, str]] = {}

        async def one(i: int) -> None:
            status, data = await h11_post(ep.port, "/v1/chat/completions", json.dumps(chat(f"{i} {backend}")).encode())
            results[i] = (status, json.loads(data)["choices"][0]["message"]["content"])

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        assert results == {i: (200, f"{i} {backend}") for i in range(n)}
        assert ep.total_connections == peak == n
        arrived, all_in = -(10**9), anyio.Event()  # no more waiting
        all_in.set()
        async with httpx.AsyncClient(headers=AUTH, timeout=10) as c:
            r = await c.post(ep.url, json=chat("s t", stream=True))
            assert content_of(sse_chunks(r.text)) == "s t"
            ep.add_fault(Fault(drop="mid_stream"))
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post(ep.url, json=chat("s t", stream=True))
        for _ in range(600):
            if not ep.open_connections:
                break
            await anyio.sleep(0.005)
        assert ep.open_connections == 0

    # a request in flight while the server shuts down
    async def hanging(url: str) -> None:
        async with httpx.AsyncClient(headers=AUTH) as c2:
            with pytest.raises(httpx.TransportError):
                await c2.post(url, json=chat())

    started = anyio.Event()

    async def stuck(turn: ChatTurn) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async with anyio.create_task_group() as tg:
        async with LocalEndpoint(responder=stuck) as ep:
            tg.start_soon(hanging, ep.url)
            await started.wait()
        assert ep.open_connections == 0
    with pytest.raises(RuntimeError):
        _ = ep.port


@pytest.mark.parametrize(("backend", "n"), [("asyncio", 1000), ("trio", 1000)])
def test_async_mode_concurrency(backend: str, n: int) -> None:
    anyio.run(_exercise_async, backend, n, backend=backend)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_async_mode_under_anyio_plugin(anyio_backend: str) -> None:
    async with LocalEndpoint(kind="dedicated", family="text-generation") as ep:
        assert ep.url.endswith("/score")
        async with httpx.AsyncClient(headers=BEARER) as c:
            r = await c.post(ep.url, json=score("prompt"))
            assert r.json() == [{"0": "prompt"}]
        with pytest.raises(RuntimeError, match="already running"):
            await ep.__aenter__()


def test_pytest_plugin_is_registered_as_entry_point() -> None:
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "azml_chat"]
    assert plugin.value == "azml_chat.testing.pytest_plugin"
