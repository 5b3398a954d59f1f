"""Entra ID credentials (sync and async), token caching and refresh under concurrency, scopes per
endpoint kind, the api-key header style, ``model=`` and ``model_info()``, for both clients."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError
from support import API_KEY, MODES, mode_param, settings, with_client

import azml_chat._auth
from azml_chat import AsyncChatClient, AuthenticationError, ChatClient, ConfigurationError, ModelInfo
from azml_chat.testing import LocalEndpoint

ML_SCOPE = "https://ml.azure.com/.default"
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


class Clock:
    """A settable stand-in for ``time`` in azml_chat._auth."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


class Credential:
    """A sync credential like azure-identity's: counts calls, issues numbered tokens."""

    def __init__(
        self, clock: Clock | None = None, lifetime: float = 3600, delay: float = 0.02, prefix: str = "token"
    ) -> None:
        self.clock = clock
        self.prefix = prefix
        self.lifetime = lifetime
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.issued: set[str] = set()
        self.fail: Exception | None = None
        self.refresh_on: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock.now if self.clock else time.time()

    def _issue(self, scopes: tuple[str, ...]) -> AccessToken | AccessTokenInfo:
        with self._lock:
            self.calls.append(scopes)
            token = f"{self.prefix}-{len(self.calls)}"
        if self.fail is not None:
            raise self.fail
        self.issued.add(token)
        expires_on = int(self.now() + self.lifetime)
        if self.refresh_on is not None:
            refresh_on, self.refresh_on = self.refresh_on, None  # only this token asks for an early refresh
            return AccessTokenInfo(token, expires_on, refresh_on=int(refresh_on))
        return AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken | AccessTokenInfo:
        time.sleep(self.delay)  # slow enough that concurrent callers would stampede without a lock
        return self._issue(scopes)


class AsyncCredential(Credential):
    """An async credential like azure.identity.aio's."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken | AccessTokenInfo:  # type: ignore[override]
        await anyio.sleep(self.delay)
        return self._issue(scopes)


def bearer(endpoint: LocalEndpoint) -> list[str]:
    return [request.headers.get("authorization", "") for request in endpoint.requests]


@pytest.fixture
def entra() -> Iterator[tuple[LocalEndpoint, list[Credential]]]:
    """A serverless endpoint that accepts only tokens issued by the credentials in the list."""
    credentials: list[Credential] = []

    def valid(token: str) -> bool:
        return any(token in credential.issued for credential in credentials)

    with LocalEndpoint(api_key=None, token_validator=valid) as endpoint:
        yield endpoint, credentials


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(azml_chat._auth, "time", fake)
    return fake


# --- one refresh for many concurrent callers -------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("credential_type", [Credential, AsyncCredential])
def test_fifty_concurrent_async_calls_share_one_token(
    entra: tuple[LocalEndpoint, list[Credential]], backend: str, credential_type: type[Credential]
) -> None:
    endpoint, credentials = entra
    credential = credential_type()
    credentials.append(credential)

    async def main() -> list[str]:
        replies: list[str] = []
        async with AsyncChatClient(endpoint.url, **settings(credential=credential)) as client:

            async def one(i: int) -> None:
                replies.append((await client.chat(f"call {i}")).content)

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
            replies.append((await client.chat("one more")).content)
        return replies

    replies = anyio.run(main, backend=backend)
    assert sorted(replies) == sorted([f"call {i}" for i in range(50)] + ["one more"])
    assert credential.calls == [(COGNITIVE_SCOPE,)]
    assert set(bearer(endpoint)) == {"Bearer token-1"}


def test_sixteen_threads_share_one_token(entra: tuple[LocalEndpoint, list[Credential]]) -> None:
    endpoint, credentials = entra
    credential = Credential(delay=0.05)
    credentials.append(credential)
    barrier = threading.Barrier(16)
    with ChatClient(endpoint.url, **settings(credential=credential)) as client:

        def one(i: int) -> str:
            barrier.wait()
            return client.chat(f"thread {i}").content

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(one, range(16)))
    assert replies == [f"thread {i}" for i in range(16)]
    assert credential.calls == [(COGNITIVE_SCOPE,)]
    assert set(bearer(endpoint)) == {"Bearer token-1"}


@pytest.mark.parametrize("mode", ["threads", "asyncio", "trio"])
def test_a_token_due_for_refresh_is_refreshed_once_under_load(
    entra: tuple[LocalEndpoint, list[Credential]], clock: Clock, mode: str
) -> None:
    endpoint, credentials = entra
    credential = Credential(clock) if mode == "threads" else AsyncCredential(clock)
    credentials.append(credential)
    credential.refresh_on = clock.now + 600  # AccessTokenInfo: valid for an hour, refresh after 10 minutes
    if mode == "threads":
        barrier = threading.Barrier(16)

        def one(client: ChatClient, i: int) -> str:
            barrier.wait()
            return client.chat(f"t{i}").content

        with ChatClient(endpoint.url, **settings(credential=credential)) as client:
            client.chat("first")
            clock.now += 700
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: one(client, i), range(16)))
    else:

        async def main() -> None:
            async with AsyncChatClient(endpoint.url, **settings(credential=credential)) as client:
                await client.chat("first")
                clock.now += 700
                async with anyio.create_task_group() as tg:
                    for i in range(50):
                        tg.start_soon(client.chat, f"a{i}")

        anyio.run(main, backend=mode)
    assert len(credential.calls) == 2  # the first token, then exactly one refresh for all the waiters
    assert bearer(endpoint)[0] == "Bearer token-1"
    assert set(bearer(endpoint)[1:]) == {"Bearer token-2"}


# --- refresh before expiry ---------------------------------------------------------------------------


@mode_param
def test_token_is_cached_then_refreshed_before_expiry(
    entra: tuple[LocalEndpoint, list[Credential]], clock: Clock, mode: str
) -> None:
    endpoint, credentials = entra
    credential = Credential(clock, delay=0) if mode == "sync" else AsyncCredential(clock, delay=0)
    credentials.append(credential)
    expires = clock.now + 3600

    def steps_sync(client: ChatClient) -> None:
        for now in (clock.now, expires - 301, expires - 299, expires - 10):
            clock.now = now
            client.chat("x")

    async def steps_async(client: AsyncChatClient) -> None:
        for now in (clock.now, expires - 301, expires - 299, expires - 10):
            clock.now = now
            await client.chat("x")

    with_client(mode, endpoint.url, steps_sync, steps_async, credential=credential)
    # fresh, still fresh 301 s before expiry, refreshed 299 s before (5 min margin), then cached again
    assert bearer(endpoint) == ["Bearer token-1", "Bearer token-1", "Bearer token-2", "Bearer token-2"]
    assert len(credential.calls) == 2


def test_short_lived_tokens_are_still_cached(clock: Clock) -> None:
    credential = Credential(clock, lifetime=60, delay=0)  # shorter than the 5 minute margin
    provider = azml_chat._auth.TokenProvider(credential, ML_SCOPE)
    assert provider.get() == "token-1"
    clock.now += 29
    assert provider.get() == "token-1"  # refreshed half way through its life, not on every call
    clock.now += 2
    assert provider.get() == "token-2"


@mode_param
def test_failed_refresh_keeps_the_valid_token_then_raises_after_expiry(
    entra: tuple[LocalEndpoint, list[Credential]], clock: Clock, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint, credentials = entra
    credential = Credential(clock, delay=0) if mode == "sync" else AsyncCredential(clock, delay=0)
    credentials.append(credential)
    expires = clock.now + 3600

    def steps_sync(client: ChatClient) -> None:
        client.chat("x")
        credential.fail = ClientAuthenticationError("AADSTS700024: expired assertion")
        clock.now = expires - 60
        client.chat("x")  # refresh fails, the cached token is still valid
        clock.now = expires + 1
        client.chat("x")

    async def steps_async(client: AsyncChatClient) -> None:
        await client.chat("x")
        credential.fail = ClientAuthenticationError("AADSTS700024: expired assertion")
        clock.now = expires - 60
        await client.chat("x")
        clock.now = expires + 1
        await client.chat("x")

    expired = pytest.raises(ClientAuthenticationError, match="AADSTS700024")
    with caplog.at_level(logging.WARNING, logger="azml_chat"), expired:
        with_client(mode, endpoint.url, steps_sync, steps_async, credential=credential)
    assert bearer(endpoint) == ["Bearer token-1", "Bearer token-1"]
    assert "token refresh failed" in caplog.text
    assert "token-1" not in caplog.text


# --- scopes, validation, header style ---------------------------------------------------------------


@mode_param
@pytest.mark.parametrize(
    ("kind", "scope_setting", "scope"),
    [
        ("dedicated", None, ML_SCOPE),
        ("serverless", None, COGNITIVE_SCOPE),
        ("serverless", ML_SCOPE, ML_SCOPE),
    ],
)
def test_scope_follows_the_endpoint_kind(
    entra: tuple[LocalEndpoint, list[Credential]], mode: str, kind: str, scope_setting: str | None, scope: str
) -> None:
    endpoint, credentials = entra
    credential = Credential(delay=0) if mode == "sync" else AsyncCredential(delay=0)
    credentials.append(credential)
    url = endpoint.score_url if kind == "dedicated" else endpoint.chat_url
    kwargs: dict[str, Any] = {"credential": credential, "credential_scope": scope_setting}
    reply = with_client(mode, url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), **kwargs)
    assert reply.content == "hi"
    assert credential.calls == [(scope,)]


@mode_param
def test_the_endpoint_rejects_tokens_it_did_not_issue(entra: tuple[LocalEndpoint, list[Credential]], mode: str) -> None:
    endpoint, _ = entra
    credential = Credential(delay=0) if mode == "sync" else AsyncCredential(delay=0)  # not registered: invalid
    with pytest.raises(AuthenticationError, match="invalid key or token") as caught:
        with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), credential=credential)
    assert caught.value.status_code == 401
    assert "token-1" not in str(caught.value)
    assert "token-1" not in repr(caught.value.__dict__)
    # a rejected token is replaced once per call, then the 401 stands
    assert bearer(endpoint) == ["Bearer token-1", "Bearer token-2"]
    assert len(credential.calls) == 2


@mode_param
def test_a_revoked_token_is_replaced_once(entra: tuple[LocalEndpoint, list[Credential]], mode: str) -> None:
    endpoint, credentials = entra
    credential = Credential(delay=0) if mode == "sync" else AsyncCredential(delay=0)
    credentials.append(credential)
    revoked = {"token-1"}
    validator = endpoint.token_validator
    assert validator is not None
    endpoint.token_validator = lambda token: token not in revoked and validator(token)
    reply = with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), credential=credential)
    assert reply.content == "hi"
    assert bearer(endpoint) == ["Bearer token-1", "Bearer token-2"]
    assert len(credential.calls) == 2  # the cached, still unexpired token-1 was dropped after the 401


@mode_param
def test_api_key_header_style(endpoint: LocalEndpoint, mode: str) -> None:
    reply = with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), auth_header="api-key")
    assert reply.content == "hi"
    headers = endpoint.requests[-1].headers
    assert headers["api-key"] == API_KEY
    assert "authorization" not in headers


def test_credential_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"accept keys only, not Entra ID tokens"):
        ChatClient("https://x.eastus.models.ai.azure.com/v1/chat/completions", credential=Credential())
    url = "https://x.services.ai.azure.com/models/chat/completions"
    with pytest.raises(ConfigurationError, match="needs AsyncChatClient"):
        ChatClient(url, credential=AsyncCredential())
    with pytest.raises(ConfigurationError, match="either api_key or credential"):
        ChatClient(url, api_key="k", credential=Credential())
    with pytest.raises(ConfigurationError, match="get_token"):
        ChatClient(url, credential=object())

    class Empty:
        def get_token(self, *scopes: str) -> Any:
            return AccessToken("", 0)

    client = ChatClient(url, credential=Empty())
    with pytest.raises(ConfigurationError, match="returned no token"):
        client.chat("x")
    client.close()
    assert "credential" in repr(ChatClient(url, credential=Credential()))


def test_azure_identity_credentials_are_accepted_as_they_are() -> None:
    from azure.identity import DefaultAzureCredential
    from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

    url = "https://x.eastus.inference.ml.azure.com/score"
    with ChatClient(url, credential=DefaultAzureCredential()) as client:
        assert client._tokens is not None
        assert not client._tokens.is_async

    async def main() -> None:
        credential = AsyncDefaultAzureCredential()
        async with credential, AsyncChatClient(url, credential=credential) as client:
            assert client._tokens is not None
            assert client._tokens.is_async
            with pytest.raises(ConfigurationError, match="needs AsyncChatClient"):
                ChatClient(url, credential=credential)

    anyio.run(main)


# --- model= and /info -------------------------------------------------------------------------------


@mode_param
def test_model_for_multi_model_endpoints(endpoint: LocalEndpoint, mode: str) -> None:
    reply = with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), model="Phi-4-mini-instruct")
    assert endpoint.requests[-1].json["model"] == "Phi-4-mini-instruct"
    assert reply.model == "Phi-4-mini-instruct"
    with_client(
        mode,
        endpoint.url,
        lambda c: c.chat("hi", model="Llama-3.3-70B"),
        lambda c: c.chat("hi", model="Llama-3.3-70B"),
        model="Phi-4-mini-instruct",
    )
    assert endpoint.requests[-1].json["model"] == "Llama-3.3-70B"
    with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"))
    assert "model" not in endpoint.requests[-1].json


@mode_param
def test_model_info(entra: tuple[LocalEndpoint, list[Credential]], mode: str) -> None:
    endpoint, credentials = entra
    credential = Credential(delay=0) if mode == "sync" else AsyncCredential(delay=0)
    credentials.append(credential)
    info = with_client(mode, endpoint.url, lambda c: c.model_info(), lambda c: c.model_info(), credential=credential)
    assert info == ModelInfo("local-model", "chat-completion", "Local", info.raw)
    assert info.raw == {"model_name": "local-model", "model_type": "chat-completion", "model_provider_name": "Local"}
    request = endpoint.requests[-1]
    assert (request.method, request.path, request.headers["authorization"]) == ("GET", "/info", "Bearer token-1")
    rogue = Credential(delay=0, prefix="rogue") if mode == "sync" else AsyncCredential(delay=0, prefix="rogue")
    with pytest.raises(AuthenticationError):
        with_client(mode, endpoint.url, lambda c: c.model_info(), lambda c: c.model_info(), credential=rogue)


@pytest.mark.parametrize("mode", MODES)
def test_model_info_with_an_api_key(shared_endpoint: LocalEndpoint, mode: str) -> None:
    info = with_client(mode, shared_endpoint.url, lambda c: c.model_info(), lambda c: c.model_info())
    assert info.model_name == "local-model"
