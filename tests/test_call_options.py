"""Typed call options, extra_* pass-through, the extra-parameters policy, full replies and what a
route cannot do, over real HTTP on every client (issue: Foundry and Azure OpenAI routes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import API_KEY, FAST_RETRIES, mode_param, with_client

from azml_chat import (
    AsyncChatClient,
    ChatClient,
    InvalidRequestError,
    RateLimit,
    TokenLogprob,
)
from azml_chat.testing import Fault, LocalEndpoint

TWO_CHOICES = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "first"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {
                        "token": "first",
                        "logprob": -0.25,
                        "bytes": [102],
                        "top_logprobs": [{"token": "first", "logprob": -0.25}, {"token": "one", "logprob": -2.0}],
                    }
                ]
            },
        },
        {"index": 1, "message": {"role": "assistant", "content": "second"}, "finish_reason": "length"},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "100",
    "x-ratelimit-remaining-requests": "99",
    "x-ratelimit-limit-tokens": "5000",
    "x-ratelimit-remaining-tokens": "4990",
    "x-ratelimit-reset-tokens": "6s",
}


def call(mode: str, url: str, messages: Any = "hi", client: dict[str, Any] | None = None, **params: Any) -> Any:
    return with_client(
        mode, url, lambda c: c.chat(messages, **params), lambda c: c.chat(messages, **params), **(client or {})
    )


@mode_param
def test_every_choice_with_logprobs_and_the_rate_limit_headers(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(200, body=TWO_CHOICES, headers=LIMIT_HEADERS))
    reply = call(mode, endpoint.url, n=2, logprobs=True, top_logprobs=2)
    sent = endpoint.requests[-1].json
    assert (sent["n"], sent["logprobs"], sent["top_logprobs"]) == (2, True, 2)
    assert [choice.message.content for choice in reply.choices] == ["first", "second"]
    assert [choice.finish_reason for choice in reply.choices] == ["stop", "length"]
    assert reply.content == "first" and reply.finish_reason == "stop"
    assert reply.logprobs is reply.choices[0].logprobs
    assert reply.logprobs is not None and isinstance(reply.logprobs[0], TokenLogprob)
    token = reply.logprobs[0]
    assert (token.token, token.logprob, token.bytes) == ("first", -0.25, (102,))
    assert [(alt.token, alt.logprob) for alt in token.top_logprobs] == [("first", -0.25), ("one", -2.0)]
    assert reply.choices[1].logprobs is None
    assert reply.rate_limit == RateLimit(100, 99, 5000, 4990, None, "6s", None)
    assert reply.headers is not None and reply.headers["x-ratelimit-limit-requests"] == "100"


@mode_param
def test_streamed_choices_are_assembled_per_index(endpoint: LocalEndpoint, mode: str) -> None:
    events = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "a"}},
                {"index": 1, "delta": {"content": "x"}},
            ]
        },
        {"choices": [{"index": 1, "delta": {"content": "y"}, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "length"}]},
    ]
    body = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
    endpoint.add_fault(Fault(200, body=body, content_type="text/event-stream"))

    def sync_action(client: ChatClient) -> Any:
        with client.stream("hi", n=2) as stream:
            chunks = list(stream)
        return chunks, stream.response

    async def async_action(client: AsyncChatClient) -> Any:
        async with client.stream("hi", n=2) as stream:
            chunks = [chunk async for chunk in stream]
        return chunks, stream.response

    chunks, reply = with_client(mode, endpoint.url, sync_action, async_action)
    assert [(chunk.index, chunk.content) for chunk in chunks] == [(0, "a"), (1, "y"), (0, "b")]
    assert [(c.index, c.message.content, c.finish_reason) for c in reply.choices] == [
        (0, "ab", "length"),
        (1, "xy", "stop"),
    ]


@mode_param
def test_extra_body_headers_and_query_reach_the_wire_for_one_call(endpoint: LocalEndpoint, mode: str) -> None:
    extra_body = {"top_k": 4, "temperature": None}
    call(
        mode,
        endpoint.url,
        client={"model_kwargs": {"temperature": 0.3}},
        extra_body=extra_body,
        extra_headers={"X-Tenant": "t1"},
        extra_query={"trace": "on"},
        user="u1",
        seed=7,
    )
    request = endpoint.requests[-1]
    assert request.json["top_k"] == 4 and "temperature" not in request.json  # None removed the default
    assert (request.json["user"], request.json["seed"]) == ("u1", 7)
    assert request.headers["x-tenant"] == "t1" and request.query["trace"] == "on"
    assert request.headers["extra-parameters"] == "pass-through"  # top_k is not a standard key
    assert extra_body == {"top_k": 4, "temperature": None}  # nothing the caller passed is changed
    call(mode, endpoint.url)
    later = endpoint.requests[-1]
    assert "x-tenant" not in later.headers and "trace" not in later.query and "top_k" not in later.json


@pytest.mark.parametrize("policy", ["drop", "error", "pass-through"])
def test_the_extra_parameters_policy_is_sent_as_chosen(endpoint: LocalEndpoint, policy: str) -> None:
    with ChatClient(endpoint.url, api_key=API_KEY, extra_parameters=policy) as client:  # type: ignore[arg-type]
        if policy == "error":
            with pytest.raises(Exception, match="not allowed"):
                client.chat("hi", extra_body={"top_k": 2})
        else:
            client.chat("hi", extra_body={"top_k": 2})
    assert endpoint.requests[-1].headers["extra-parameters"] == policy


def test_the_extra_parameters_header_only_goes_where_it_means_something(dedicated: LocalEndpoint) -> None:
    url = dedicated.chat_url  # a vLLM route on a managed online endpoint: vLLM takes any key
    with ChatClient(url, api_key=API_KEY, api_type="dedicated") as client:
        client.chat("hi", extra_body={"top_k": 2})
    assert "extra-parameters" not in dedicated.requests[-1].headers


def test_a_typo_in_a_call_option_is_a_type_error_naming_the_fix(endpoint: LocalEndpoint) -> None:
    with ChatClient(endpoint.url, api_key=API_KEY) as client:
        with pytest.raises(TypeError, match=r"ChatClient\.chat\(\) got unexpected keyword argument\(s\) 'max_tokenz'"):
            client.chat("hi", max_tokenz=5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"extra_body=\{'max_tokenz'"):
            client.stream("hi", max_tokenz=5)  # type: ignore[call-arg]
    assert endpoint.requests == []
    with pytest.raises(TypeError, match=r"AsyncChatClient\(\) got unexpected keyword argument\(s\) 'api_kye'"):
        AsyncChatClient(endpoint.url, api_kye="k")  # type: ignore[call-arg]


@mode_param
def test_a_tool_choice_name_becomes_the_function_form(endpoint: LocalEndpoint, mode: str) -> None:
    def get_weather(city: str) -> str:
        """Weather of a city."""
        return "sunny"

    call(mode, endpoint.url, tools=[get_weather], tool_choice="get_weather")
    assert endpoint.requests[-1].json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    call(mode, endpoint.url, tools=[get_weather], tool_choice="required")
    assert endpoint.requests[-1].json["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"model": "phi-4"}, "model"),
    ],
)
def test_what_a_score_container_cannot_do_is_refused_before_any_traffic(
    dedicated: LocalEndpoint, params: dict[str, Any], named: str
) -> None:
    with (
        ChatClient(dedicated.url, api_key=API_KEY, retry_policy=FAST_RETRIES) as client,
        pytest.raises(InvalidRequestError, match=rf"{named} cannot be sent to a /score container"),
    ):
        client.chat("hi", **params)
    assert dedicated.requests == []
