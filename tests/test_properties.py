"""Property tests (hypothesis).

- Any split of a valid SSE byte stream decodes to the same events (and the same reply).
- Any Unicode text reaches the server byte-exact and comes back unchanged, through both
  routes and streaming; a lone surrogate is refused before sending, saying where it is.
- Settings parsing (URL, api type, environment, every constructor knob) raises nothing but
  our typed errors, whatever it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import API_KEY, TLS_CONTEXT

from azml_chat import AsyncChatClient, AzureMLChatError, ChatClient, InvalidRequestError, RetryPolicy
from azml_chat._core import parse_retry_after
from azml_chat._sse import ServerSentEvent, SSEDecoder
from azml_chat._stream import StreamState
from azml_chat.config import Route, parse_endpoint, settings_from_env
from azml_chat.testing import LocalEndpoint

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- SSE: any split gives the same events -------------------------------------------------

line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])
data_values = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
event_names = st.text("abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12)


def end_line(wire: bytes, ending: bytes) -> bytes:
    """Append a line end; after a bare CR, an LF would only complete that one (CRLF), so use CR."""
    return wire + (b"\r" if wire.endswith(b"\r") and ending == b"\n" else ending)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    """A valid stream (random line ends, comments, ignored fields) and the events it holds."""
    wire = b""
    expected: list[ServerSentEvent] = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.none() | event_names)
        lines = draw(st.lists(data_values, min_size=1, max_size=4))
        fields: list[bytes] = [b"data: " + value for value in lines]
        if name is not None:
            fields.insert(draw(st.integers(0, len(fields))), b"event: " + name.encode())
        for extra in draw(st.lists(st.sampled_from([b": ping", b":", b"id: 7", b"retry: 3000"]), max_size=2)):
            fields.insert(draw(st.integers(0, len(fields))), extra)
        for field in fields:
            wire = end_line(wire + field, draw(line_ends))
        wire = end_line(wire, draw(line_ends))  # the blank line that dispatches the event
        expected.append(ServerSentEvent(name or "message", b"\n".join(lines)))
    return wire, expected


def feed_in_pieces(wire: bytes, cuts: list[int]) -> tuple[list[ServerSentEvent], bool]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(wire)]:
        events += decoder.feed(wire[start:cut])
        start = cut
    return events, decoder.pending


@PROPERTY
@given(sse_streams(), st.data())
@example((b"data: a\r\n\r\n", [ServerSentEvent("message", b"a")]), None)  # the classic: a split inside \r\n
def test_any_split_of_an_sse_stream_gives_the_same_events(
    stream: tuple[bytes, list[ServerSentEvent]], data: Any
) -> None:
    wire, expected = stream
    whole, pending = feed_in_pieces(wire, [])
    assert (whole, pending) == (expected, False)
    cuts = [] if data is None else data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")
    if data is None:
        cuts = list(range(len(wire) + 1))  # one byte at a time
    assert feed_in_pieces(wire, cuts) == (expected, False)


@PROPERTY
@given(st.lists(st.text(max_size=12), max_size=8), st.lists(st.integers(0, 10_000), max_size=10))
def test_any_split_of_a_chat_stream_assembles_the_same_reply(pieces: list[str], cuts: list[int]) -> None:
    wire = b": ping\n\n"
    for piece in pieces:
        chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        wire += b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\r\n\r\n"
    wire += b"data: [DONE]\n\n"
    state = StreamState(None)
    streamed = []
    events, pending = feed_in_pieces(wire, [cut % (len(wire) + 1) for cut in cuts])
    for event in events:
        chunk = state.handle(event)
        if chunk is not None:
            streamed.append(chunk.content)
    assert state.done and not pending
    assert "".join(streamed) == state.response(0.0).content == "".join(pieces)


# --- Unicode round trip ---------------------------------------------------------------------

TRICKY = [
    "",
    'say "hi"',
    "back\\slash \\n not a newline",
    "line1\nline2\r\nline3\rline4",
    "nul\x00byte",
    "tab\tand\x0bvt\x0cff",
    "emoji \U0001f600\U0001f468\u200d\U0001f469\u200d\U0001f467 flags \U0001f1f3\U0001f1f4",
    "\u2028\u2029 js line separators",
    "rtl \u05e9\u05dc\u05d5\u05dd \u202eevil",
    "bom \ufeff and nonchar \uffff",
    '{"json": "inside", "n": [1, 2]}',
    "</script><!-- -->",
    "   leading and trailing spaces   ",
    "\U0010ffff the last code point",
]
unicode_text = st.text(max_size=200) | st.sampled_from(TRICKY)


@pytest.fixture(scope="module")
def echo_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def sync_client(echo_endpoint: LocalEndpoint) -> Iterator[ChatClient]:
    with (
        httpx.Client(verify=TLS_CONTEXT) as http,
        ChatClient(echo_endpoint.url, api_key=API_KEY, http_client=http) as client,
    ):
        yield client


def sent_content(endpoint: LocalEndpoint) -> tuple[Any, bytes]:
    """The last request's parsed JSON and its raw body."""
    request = endpoint.requests[-1]
    return request.json, request.body


@PROPERTY
@given(text=unicode_text, route=st.sampled_from(["chat", "score", "stream"]))
def test_any_unicode_text_round_trips_unchanged(
    echo_endpoint: LocalEndpoint, sync_client: ChatClient, text: str, route: str
) -> None:
    if route == "score":
        with ChatClient(echo_endpoint.score_url, api_key=API_KEY, http_client=sync_client._transport.client) as client:
            reply = client.chat(text).content
        body, raw = sent_content(echo_endpoint)
        on_the_wire = body["input_data"]["input_string"][-1]["content"]
    elif route == "stream":
        with sync_client.stream(text) as stream:
            pieces = [chunk.content for chunk in stream]
        reply = "".join(pieces)
        assert stream.response is not None
        assert stream.response.content == reply
        body, raw = sent_content(echo_endpoint)
        on_the_wire = body["messages"][-1]["content"]
    else:
        reply = sync_client.chat(text).content
        body, raw = sent_content(echo_endpoint)
        on_the_wire = body["messages"][-1]["content"]
    assert on_the_wire == text  # the server decoded exactly the text, escaped once
    assert on_the_wire.encode("utf-8") == text.encode("utf-8")
    assert json.dumps(text, ensure_ascii=False).encode("utf-8") in raw  # compact UTF-8, not \\u-escaped twice
    assert reply == text  # and it came back unchanged


def test_unicode_round_trip_through_the_async_client(echo_endpoint: LocalEndpoint) -> None:
    import anyio

    async def main() -> list[str]:
        async with AsyncChatClient(echo_endpoint.url, api_key=API_KEY) as client:
            return [(await client.chat(text)).content for text in TRICKY]

    assert anyio.run(main) == TRICKY


@PROPERTY
@given(before=st.text(max_size=20), after=st.text(max_size=20), surrogate=st.integers(0xD800, 0xDFFF))
def test_lone_surrogates_are_refused_before_sending(
    echo_endpoint: LocalEndpoint, sync_client: ChatClient, before: str, after: str, surrogate: int
) -> None:
    sent = len(echo_endpoint.requests)
    text = before + chr(surrogate) + after
    with pytest.raises(InvalidRequestError, match=r"lone surrogate .* at position \d+"):
        sync_client.chat(text)
    with pytest.raises(InvalidRequestError, match="lone surrogate"), sync_client.stream(["hi", text]) as stream:
        list(stream)
    assert len(echo_endpoint.requests) == sent  # nothing went out


# --- settings parsing raises only our typed errors ------------------------------------------

hosts = st.sampled_from(
    ["ep.eastus.inference.ml.azure.com", "m.westus.models.ai.azure.com", "127.0.0.1", "[::1]", "h", "", "a b"]
)
paths = st.sampled_from(
    ["", "/", "/score", "/score/", "/v1", "/v1/chat/completions", "/models", "/chat/completions", "/x/score", "/%zz"]
)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}{host}{port}{path}{query}",
    st.sampled_from(["https://", "http://", "ftp://", "", "https:/", "HTTPS://"]),
    hosts | st.text(max_size=10),
    st.sampled_from(["", ":443", ":0", ":99999", ":x", ":"]),
    paths | st.text(max_size=10),
    st.sampled_from(["", "?api-version=2025-04-01", "?a=1&b", "#frag", "?\x00"]),
) | st.text(max_size=40)
anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.binary(max_size=5)


@PROPERTY
@given(url=urls | anything, api_type=anything | st.sampled_from(["dedicated", "Serverless", " realtime "]))
def test_parse_endpoint_raises_only_typed_errors(url: Any, api_type: Any) -> None:
    try:
        endpoint = parse_endpoint(url, api_type)
    except AzureMLChatError:
        return
    assert endpoint.url.startswith(("http://", "https://"))
    assert endpoint.route in get_args(Route)
    assert endpoint.api_type in ("dedicated", "serverless")


env_names = st.sampled_from(
    [
        "AZUREML_ENDPOINT_URL",
        "AZUREML_ENDPOINT_API_KEY",
        "AZUREML_DEPLOYMENT_NAME",
        "AZUREML_ENDPOINT_API_TYPE",
        "AZUREML_TIMEOUT",
    ]
)


@PROPERTY
@given(environ=st.dictionaries(env_names, st.text(max_size=30) | urls | st.sampled_from(["nan", "inf", "-1", "0"])))
def test_environment_parsing_raises_only_typed_errors(environ: dict[str, str]) -> None:
    try:
        found = settings_from_env(environ)
        ChatClient(**found) if "endpoint_url" in found else None
    except AzureMLChatError:
        return


@PROPERTY
@given(
    url=urls,
    knobs=st.fixed_dictionaries(
        {},
        optional={
            "api_key": anything,
            "api_type": anything,
            "deployment_name": anything | st.text(max_size=10),
            "formatter": anything | st.sampled_from(["llama", "mistral", "phi", "openai", "text-generation", "x"]),
            "model": anything,
            "model_kwargs": anything | st.dictionaries(st.text(max_size=5), anything, max_size=3),
            "timeout": anything,
            "max_retries": anything,
            "auth_header": anything | st.sampled_from(["bearer", "api-key"]),
            "api_version": anything,
            "headers": anything | st.dictionaries(st.text(max_size=8) | st.integers(), anything, max_size=3),
            "max_response_bytes": anything,
            "retry_policy": anything | st.just(RetryPolicy()),
        },
    ),
)
def test_client_settings_raise_only_typed_errors(url: str, knobs: dict[str, Any]) -> None:
    for cls in (ChatClient, AsyncChatClient):
        try:
            client = cls(url, **knobs)
        except AzureMLChatError:
            continue
        assert repr(client)  # a client that was made is usable enough to describe itself
        assert isinstance(client.settings.retry_policy, RetryPolicy)
        if isinstance(client, ChatClient):
            client.close()


@PROPERTY
@given(
    initial=anything,
    maximum=anything,
    cap=anything,
)
def test_retry_policy_raises_only_typed_errors(initial: Any, maximum: Any, cap: Any) -> None:
    try:
        RetryPolicy(initial, maximum, cap)
    except AzureMLChatError:
        return


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-ms-retry-after-ms"]),
        st.text(max_size=40) | st.floats().map(str) | st.integers().map(str),
    )
)
def test_retry_after_parsing_never_raises(headers: dict[str, str]) -> None:
    seconds = parse_retry_after(headers)
    assert seconds is None or (seconds >= 0 and not math.isnan(seconds))
