"""Every route of the route table through both clients, over HTTP: URL completion from a base
URL, auth headers, api-version, the Entra ID scope and what ``model_info()`` does.

The embedded endpoint plays each kind (``LocalEndpoint(kind=...)``) with that kind's real
rules (which key header, api-version required or refused, ``model`` on multi-model routes),
so a client that got a route wrong fails here as it would against Azure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from support import API_KEY, mode_param, with_client

from azml_chat import AsyncChatClient, ChatClient, InvalidRequestError, response_format_for
from azml_chat.config import parse_endpoint
from azml_chat.testing import LocalEndpoint


@dataclass(frozen=True)
class RouteCase:
    id: str
    kind: str  #: LocalEndpoint kind and client api_type
    base: str  #: what the user passes, after the endpoint's base URL
    path: str  #: the path the client must call
    version: str | None  #: the api-version the client must send (None: none at all)
    options: tuple[tuple[str, Any], ...] = ()
    info: bool = False  #: whether /info exists on that route


ROUTES = [
    RouteCase("dedicated-score", "dedicated", "", "/score", None, info=True),
    RouteCase("dedicated-vllm", "dedicated", "/v1", "/v1/chat/completions", None, (("model", "llama-3"),), True),
    RouteCase("serverless-v1", "serverless", "", "/v1/chat/completions", None, info=True),
    RouteCase(
        "serverless-chat", "serverless", "/chat/completions", "/chat/completions", "2024-05-01-preview", info=True
    ),
    RouteCase(
        "foundry-models",
        "foundry",
        "/models",
        "/models/chat/completions",
        "2024-05-01-preview",
        (("model", "phi-4"),),
    ),
    RouteCase(
        "foundry-models-stable",
        "foundry",
        "/models",
        "/models/chat/completions",
        "2025-04-01",
        (("model", "phi-4"), ("api_version", "2025-04-01")),
    ),
    RouteCase("foundry-openai-v1", "foundry", "", "/openai/v1/chat/completions", None, (("model", "phi-4"),)),
    RouteCase(
        "foundry-project",
        "foundry",
        "/api/projects/proj",
        "/api/projects/proj/openai/v1/chat/completions",
        None,
        (("model", "phi-4"),),
    ),
    RouteCase("aoai-v1", "azure-openai", "/openai/v1", "/openai/v1/chat/completions", None, (("model", "gpt-4o"),)),
    RouteCase(
        "aoai-deployment",
        "azure-openai",
        "/openai/deployments/gpt-4o",
        "/openai/deployments/gpt-4o/chat/completions",
        "2024-10-21",
    ),
]


@pytest.mark.parametrize("case", ROUTES, ids=lambda case: case.id)
@mode_param
def test_each_route_from_its_base_url(case: RouteCase, mode: str) -> None:
    with LocalEndpoint(kind=case.kind, api_key=API_KEY, deployments=["phi-4", "gpt-4o"]) as endpoint:  # type: ignore[arg-type]
        options = dict(case.options)
        reply = with_client(
            mode,
            endpoint.base_url + case.base,
            lambda c: c.chat("hi"),
            lambda c: c.chat("hi"),
            api_type=case.kind,
            **options,
        )
        assert reply.content == "hi"
        request = endpoint.requests[-1]
        assert request.path == case.path
        assert request.query.get("api-version") == case.version
        # keys go out both ways by default, as Microsoft's SDK sends them
        assert (request.headers["api-key"], request.headers["authorization"]) == (API_KEY, f"Bearer {API_KEY}")
        if ("model" in options and case.kind != "dedicated") or case.id == "dedicated-vllm":
            assert request.json["model"] == options["model"]


@pytest.mark.parametrize("case", ROUTES, ids=lambda case: case.id)
def test_model_info_only_where_the_route_has_it(case: RouteCase) -> None:
    with LocalEndpoint(kind=case.kind, api_key=API_KEY, deployments=["phi-4", "gpt-4o"]) as endpoint:  # type: ignore[arg-type]
        url = endpoint.base_url + case.base
        with ChatClient(url, api_key=API_KEY, api_type=case.kind, **dict(case.options)) as client:
            if case.info:
                assert client.model_info().model_name == "local-model"
                assert endpoint.requests[-1].method == "GET" and endpoint.requests[-1].path.endswith("/info")
            else:
                with pytest.raises(InvalidRequestError, match="have no /info"):
                    client.model_info()
                assert endpoint.requests == []  # no made-up URL was called


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://ep.eastus.inference.ml.azure.com/score", "https://ml.azure.com/.default"),
        ("https://res.services.ai.azure.com/openai/v1", "https://ai.azure.com/.default"),
        ("https://res.services.ai.azure.com/models", "https://ai.azure.com/.default"),
        ("https://res.openai.azure.com/openai/deployments/d", "https://cognitiveservices.azure.com/.default"),
        ("https://res.openai.azure.com", "https://cognitiveservices.azure.com/.default"),
    ],
)
def test_the_default_entra_scope_follows_the_host(url: str, scope: str) -> None:
    assert parse_endpoint(url).scope == scope


class ScopedCredential:
    """A sync credential that records the scopes it is asked for and hands out 'token-N'."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(f"token-{len(self.scopes)}", 2**31)


@pytest.mark.parametrize(
    ("kind", "scope"),
    [
        ("foundry", "https://ai.azure.com/.default"),
        ("azure-openai", "https://cognitiveservices.azure.com/.default"),
        ("dedicated", "https://ml.azure.com/.default"),
    ],
)
@mode_param
def test_a_credential_asks_for_the_kinds_scope_and_sends_a_bearer_token(kind: str, scope: str, mode: str) -> None:
    credential = ScopedCredential()
    with LocalEndpoint(kind=kind, api_key=None, token_validator=lambda token: token == "token-1") as endpoint:  # type: ignore[arg-type]
        url = endpoint.base_url + ("/openai/v1" if kind != "dedicated" else "")
        reply = with_client(
            mode,
            url,
            lambda c: c.chat("hi", model="m") if kind != "dedicated" else c.chat("hi"),
            lambda c: c.chat("hi", model="m") if kind != "dedicated" else c.chat("hi"),
            api_type=kind,
            credential=credential,
        )
    assert reply.content == "hi"
    assert credential.scopes == [scope]
    headers = endpoint.requests[-1].headers
    assert headers["authorization"] == "Bearer token-1" and "api-key" not in headers


@pytest.mark.parametrize("auth_header", ["bearer", "api-key"])
def test_one_key_header_when_asked(auth_header: str) -> None:
    with LocalEndpoint(kind="azure-openai", api_key=API_KEY, deployments=["m"]) as endpoint:
        url = endpoint.base_url + "/openai/v1"
        with ChatClient(url, api_key=API_KEY, auth_header=auth_header, model="m", max_retries=0) as client:  # type: ignore[arg-type]
            client.chat("hi")  # /openai/v1 takes either header
        headers = endpoint.requests[-1].headers
        assert ("authorization" in headers, "api-key" in headers) == (auth_header == "bearer", auth_header == "api-key")


def test_an_async_client_on_a_deployment_route_with_json_schema() -> None:
    """Azure OpenAI deployment routes need an api-version with json_schema: the default has it."""

    @dataclasses.dataclass
    class City:
        name: str

    async def main(url: str) -> Any:
        async with AsyncChatClient(url, api_key=API_KEY) as client:
            return await client.chat("hi", response_format=response_format_for(City))

    with LocalEndpoint(kind="azure-openai", api_key=API_KEY, deployments=["gpt-4o"]) as endpoint:
        anyio.run(main, endpoint.deployment_url("gpt-4o").removesuffix("/chat/completions"))
        request = endpoint.requests[-1]
    assert request.query["api-version"] == "2024-10-21"
    assert request.json["response_format"]["type"] == "json_schema"
