"""The routes of each endpoint kind and their rules, over HTTP (protocol.md sections 1 and 8).

Foundry and Azure OpenAI routes: which key header each accepts, the api-version rules
(required, rejected on ``/openai/v1``, json_schema from 2024-08-01-preview), ``model``
required on multi-model routes, ``/info`` only on Azure ML kinds, error bodies in the
Azure / OpenAI shapes, and the request recorded for assertions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from azml_chat.testing import ChatTurn, LocalEndpoint

KEY = "test-key"
API_KEY = {"api-key": KEY}
BEARER = {"authorization": f"Bearer {KEY}"}
Factory = Callable[..., LocalEndpoint]


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


@pytest.mark.parametrize(
    ("kind", "served", "not_found"),
    [
        (
            "serverless",
            ["/", "/score", "/v1/chat/completions", "/chat/completions", "/models/chat/completions", "/info"],
            ["/openai/v1/chat/completions", "/openai/deployments/d/chat/completions", "/v1/models"],
        ),
        (
            "dedicated",
            ["/", "/score", "/v1/chat/completions", "/info", "/models/info", "/v1/models"],
            ["/openai/v1/chat/completions", "/api/projects/p/openai/v1/chat/completions"],
        ),
        (
            "foundry",
            ["/models/chat/completions", "/openai/v1/chat/completions", "/api/projects/p/openai/v1/chat/completions"],
            ["/", "/info", "/models/info", "/score", "/v1/chat/completions", "/openai/deployments/d/chat/completions"],
        ),
        (
            "azure-openai",
            ["/openai/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions"],
            ["/", "/info", "/models/chat/completions", "/score", "/api/projects/p/openai/v1/chat/completions"],
        ),
    ],
)
def test_routes_of_each_kind(
    azml_endpoint_factory: Factory, kind: str, served: list[str], not_found: list[str]
) -> None:
    ep = azml_endpoint_factory(kind=kind)
    with httpx.Client(base_url=ep.base_url, headers={**API_KEY, **BEARER}, timeout=10) as c:
        for path in served:
            method = "GET" if path in ("/", "/info", "/models/info", "/v1/models") else "POST"
            r = c.request(method, path, json={})
            assert r.status_code != 404, (kind, path, r.text)
        for path in not_found:
            for method in ("GET", "POST"):
                r = c.request(method, path, json={})
                assert r.status_code == 404, (kind, method, path)
                assert error(r)["code"] == "NotFound"
        chat_route = next(p for p in served if p.endswith("/chat/completions"))
        assert c.get(chat_route).status_code == 405


def test_urls_of_each_kind(azml_endpoint_factory: Factory) -> None:
    urls = {kind: azml_endpoint_factory(kind=kind) for kind in ("serverless", "dedicated", "foundry", "azure-openai")}
    assert urls["serverless"].url.endswith("/v1/chat/completions")
    assert urls["dedicated"].url.endswith("/score")
    assert urls["foundry"].url == urls["foundry"].models_url == urls["foundry"].base_url + "/models/chat/completions"
    assert urls["azure-openai"].url == urls["azure-openai"].openai_v1_url
    ep = urls["foundry"]
    assert ep.project_url("p1") == ep.base_url + "/api/projects/p1/openai/v1/chat/completions"
    assert ep.deployment_url("gpt-4o") == ep.base_url + "/openai/deployments/gpt-4o/chat/completions"
    with pytest.raises(ValueError, match="'foundry', 'azure-openai'"):
        LocalEndpoint(kind="aoai")  # type: ignore[arg-type]


# -- Azure ML kinds ---------------------------------------------------------------------------


def test_dedicated_takes_the_key_as_bearer_only(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="dedicated", model_name="meta-llama-3-8b")
    body = {"input_data": {"input_string": [{"role": "user", "content": "hi"}]}}
    assert httpx.post(ep.url, json=body, headers=BEARER).json() == {"output": "hi"}
    r = httpx.post(ep.url, json=body, headers=API_KEY)
    assert (r.status_code, error(r)["code"]) == (401, "Unauthorized")
    # vLLM containers: OpenAI routes and the model list
    models = httpx.get(ep.base_url + "/v1/models", headers=BEARER).json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["meta-llama-3-8b"]
    assert httpx.get(ep.base_url + "/v1/models").status_code == 401


def test_serverless_takes_either_key_header_and_no_api_version_on_v1(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="serverless")
    for headers in (API_KEY, BEARER):
        assert httpx.post(ep.url, json=chat(), headers=headers).status_code == 200
    r = httpx.post(ep.base_url + "/chat/completions", params={"api-version": "anything"}, json=chat(), headers=BEARER)
    assert r.status_code == 200 and "apim-request-id" not in r.headers


# -- Foundry ------------------------------------------------------------------------------------


def test_foundry_models_route(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="foundry", token_validator=lambda t: t == "entra-token")
    version = {"api-version": "2024-05-01-preview"}
    with httpx.Client(timeout=10) as c:
        r = c.post(ep.url, params=version, json=chat("hi", model="mistral-large"), headers=API_KEY)
        assert r.status_code == 200
        assert r.json()["model"] == "mistral-large" and r.json()["choices"][0]["message"]["content"] == "hi"
        assert r.headers["apim-request-id"] == r.headers["x-request-id"]
        assert "azureml-model-deployment" not in r.headers
        # a key as Bearer is refused on /models; an Entra token as Bearer is not
        r = c.post(ep.url, params=version, json=chat(model="m"), headers=BEARER)
        assert (r.status_code, error(r)["code"]) == (401, "401")
        assert "invalid subscription key" in error(r)["message"]
        entra = {"authorization": "Bearer entra-token"}
        assert c.post(ep.url, params=version, json=chat(model="m"), headers=entra).status_code == 200
        # api-version: required, and a real one
        r = c.post(ep.url, json=chat(model="m"), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "MissingApiVersionParameter")
        r = c.post(ep.url, params={"api-version": "latest"}, json=chat(model="m"), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "UnsupportedApiVersion")
        assert c.post(ep.url, params={"api-version": "2025-04-01"}, json=chat(model="m"), headers=API_KEY).is_success
        # model: required (body or x-ms-model-mesh-model-name)
        r = c.post(ep.url, params=version, json=chat(), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "no_model_name")
        header = {**API_KEY, "x-ms-model-mesh-model-name": "phi-4"}
        assert c.post(ep.url, params=version, json=chat(), headers=header).json()["model"] == "phi-4"
        # the extra-parameters rule of the Azure AI model inference API
        r = c.post(ep.url, params=version, json=chat(model="m", logprobs=True), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "Invalid input")
        passing = {**API_KEY, "extra-parameters": "pass-through"}
        assert c.post(ep.url, params=version, json=chat(model="m", logprobs=True), headers=passing).is_success
        # body validation as the inference API does it
        r = c.post(ep.url, params=version, json={"model": "m", "messages": []}, headers=API_KEY)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "messages"]
    recorded = ep.requests[0]
    assert (recorded.path, recorded.query, recorded.headers["api-key"]) == ("/models/chat/completions", version, KEY)


def test_foundry_models_route_knows_its_deployments(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="foundry", deployments=["mistral-large", "phi-4"])
    version = {"api-version": "2025-04-01"}
    assert httpx.post(ep.url, params=version, json=chat(model="phi-4"), headers=API_KEY).status_code == 200
    r = httpx.post(ep.url, params=version, json=chat(model="gpt-5"), headers=API_KEY)
    assert (r.status_code, error(r)["code"], error(r)["message"]) == (400, "unknown_model", "Unknown model: gpt-5")


@pytest.mark.parametrize("project", [None, "my-project"])
def test_foundry_openai_v1_routes(azml_endpoint_factory: Factory, project: str | None) -> None:
    turns: list[ChatTurn] = []

    def responder(turn: ChatTurn) -> str:
        turns.append(turn)
        return "v1 ok"

    ep = azml_endpoint_factory(kind="foundry", responder=responder)
    url = ep.openai_v1_url if project is None else ep.project_url(project)
    with httpx.Client(timeout=10) as c:
        for headers in (API_KEY, BEARER):  # /openai/v1 reads either header
            r = c.post(url, json=chat(model="gpt-4o-mini"), headers=headers)
            assert (r.status_code, r.json()["choices"][0]["message"]["content"]) == (200, "v1 ok")
        r = c.post(url, params={"api-version": "2024-10-21"}, json=chat(model="m"), headers=API_KEY)
        assert r.status_code == 400
        assert error(r) == {
            "code": "BadRequest",
            "message": "api-version query parameter is not allowed when using /v1 path",
            "param": "api-version",
            "type": "invalid_request_error",
        }
        r = c.post(url, json=chat(), headers=API_KEY)
        assert (r.status_code, error(r)["code"], error(r)["message"]) == (
            400,
            "missing_model",
            "you must provide a model parameter",
        )
        # OpenAI's parameter rule: known keys pass, unknown ones are refused, whatever the header
        known = chat(model="m", n=1, logprobs=True, stream_options=None, parallel_tool_calls=False, user="u")
        assert c.post(url, json=known, headers=API_KEY).status_code == 200
        headers = {**API_KEY, "extra-parameters": "pass-through"}
        r = c.post(url, json=chat(model="m", max_tokenz=5), headers=headers)
        assert (r.status_code, error(r)["message"], error(r)["param"]) == (
            400,
            "Unrecognized request argument supplied: max_tokenz",
            "max_tokenz",
        )
        r = c.post(url, json={"model": "m", "messages": [{"role": "robot"}]}, headers=API_KEY)
        assert (r.status_code, error(r)["code"], error(r)["param"]) == (400, "invalid_value", "messages.0.role")
        r = c.post(url, content=b"[1]", headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "invalid_json")
    assert turns[0].request.path == (url.removeprefix(ep.base_url))
    assert turns[0].params["model"] == "gpt-4o-mini"


# -- Azure OpenAI -------------------------------------------------------------------------------


def test_azure_openai_deployment_route(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="azure-openai", deployments=["gpt-4o"])
    url = ep.deployment_url("gpt-4o")
    version = {"api-version": "2024-10-21"}
    with httpx.Client(timeout=10) as c:
        r = c.post(url, params=version, json=chat("deployed"), headers=API_KEY)
        assert r.status_code == 200
        assert (r.json()["model"], r.json()["choices"][0]["message"]["content"]) == ("gpt-4o", "deployed")
        r = c.post(url, params=version, json=chat(), headers=BEARER)  # a key as Bearer: refused here
        assert (r.status_code, error(r)["code"]) == (401, "401")
        r = c.post(url, json=chat(), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (400, "MissingApiVersionParameter")
        r = c.post(ep.deployment_url("gpt-35"), params=version, json=chat(), headers=API_KEY)
        assert (r.status_code, error(r)["code"]) == (404, "DeploymentNotFound")
        assert r.headers["x-ms-error-code"] == "DeploymentNotFound"
        # json_schema needs 2024-08-01-preview or later
        schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        for old in ("2024-06-01", "2024-05-01-preview"):
            r = c.post(url, params={"api-version": old}, json=chat(response_format=schema), headers=API_KEY)
            assert (
                r.status_code == 400
                and "json_schema is enabled only for api versions 2024-08-01-preview" in (error(r)["message"])
            )
        for new in ("2024-08-01-preview", "2024-10-21", "2025-04-01-preview"):
            r = c.post(url, params={"api-version": new}, json=chat(response_format=schema), headers=API_KEY)
            assert r.status_code == 200
        # the v1 route of the same resource: model required, deployments known
        r = c.post(ep.openai_v1_url, json=chat(model="gpt-35"), headers=BEARER)
        assert (r.status_code, error(r)["code"]) == (404, "DeploymentNotFound")
        assert c.post(ep.openai_v1_url, json=chat(model="gpt-4o"), headers=BEARER).status_code == 200
    recorded = ep.requests[0]
    assert recorded.path == "/openai/deployments/gpt-4o/chat/completions"
    assert recorded.query == version and recorded.headers["api-key"] == KEY


def test_new_routes_stream_and_use_capacity(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(kind="azure-openai", requests_per_minute=1)
    r = httpx.post(
        ep.url, json=chat("a b", model="m", stream=True, stream_options={"include_usage": True}), headers=API_KEY
    )
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text.endswith("data: [DONE]\n\n") and '"usage":{' in r.text
    r = httpx.post(ep.url, json=chat(model="m"), headers=API_KEY)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
