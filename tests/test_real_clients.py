"""The embedded endpoint as real third-party clients see it.

openai-python, Microsoft's azure-ai-inference and LangChain community's
``AzureMLChatOnlineEndpoint`` (test-only dependencies) talk to ``LocalEndpoint`` over HTTP
exactly as they talk to Azure. A client that works against Azure but fails here (or the
reverse) shows a defect of the embedded endpoint; the tests pin what real endpoints do
(protocol.md): no SSE comment lines by default, Azure error bodies, both auth headers
accepted on serverless routes, the extra-parameters rule, the api-version rules.
"""

from __future__ import annotations

import json
import urllib.error
import uuid
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anyio
import pytest

from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

KEY = "test-key"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def weather_agent(turn: ChatTurn) -> ScriptedReply:
    """Calls the weather tool, then answers with what the tool said."""
    tool_results = [m for m in turn.messages if m.get("role") == "tool"]
    if not tool_results:
        return ScriptedReply(tool_calls=[CALL], reasoning_content="I should look it up")
    return ScriptedReply(content=f"It is {tool_results[-1]['content']} in Paris.")


@pytest.fixture(scope="module")
def openai() -> ModuleType:
    return pytest.importorskip("openai")


@pytest.fixture(scope="module")
def inference() -> ModuleType:
    return pytest.importorskip("azure.ai.inference")


@pytest.fixture(scope="module")
def community() -> ModuleType:
    with warnings.catch_warnings():  # "langchain-community is being sunset"
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("langchain_community.chat_models.azureml_endpoint")


@pytest.fixture
def serverless() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(kind="serverless", api_key=KEY, model_name="mistral-large") as endpoint:
        yield endpoint


# -- openai-python on the serverless /v1 route ----------------------------------------------


@pytest.fixture
def oai(openai: ModuleType, serverless: LocalEndpoint) -> Iterator[Any]:
    with openai.OpenAI(base_url=serverless.base_url + "/v1", api_key=KEY, max_retries=0, timeout=10) as client:
        yield client


def test_openai_chat(oai: Any, serverless: LocalEndpoint) -> None:
    completion = oai.chat.completions.create(
        model="mistral-large",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello from openai"}],
        temperature=0.2,
        max_tokens=20,
    )
    assert completion.choices[0].message.content == "Hello from openai"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens == 8
    assert uuid.UUID(completion._request_id)
    request = serverless.requests[-1]
    assert (request.method, request.path, request.query) == ("POST", "/v1/chat/completions", {})
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["temperature"] == 0.2 and request.json["max_tokens"] == 20


def test_openai_async_chat(openai: ModuleType, serverless: LocalEndpoint) -> None:
    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=serverless.base_url + "/v1", api_key=KEY, max_retries=0) as client:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "async hello"}]
            )
            content: str = completion.choices[0].message.content
            return content

    assert anyio.run(main) == "async hello"


def test_openai_streaming_with_usage(oai: Any, openai: ModuleType) -> None:
    messages = [{"role": "user", "content": "streamed  words, unicode ✓"}]
    with pytest.raises(openai.BadRequestError) as info:  # stream_options is an extra parameter on Azure
        oai.chat.completions.create(model="m", messages=messages, stream=True, stream_options={"include_usage": True})
    assert info.value.status_code == 400 and "stream_options" in info.value.message
    chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"extra-parameters": "pass-through"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed  words, unicode ✓"
    assert len(chunks) > 4
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_tool_round_trip_chat_and_stream(oai: Any, serverless: LocalEndpoint) -> None:
    serverless.responder = weather_agent
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = oai.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name) == ("call_w1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert serverless.requests[-1].json["tools"] == [WEATHER_TOOL]
    # openai's own stream accumulator assembles the streamed tool-call fragments
    with oai.chat.completions.stream(model="m", messages=messages, tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_completion()
    (streamed,) = final.choices[0].message.tool_calls
    assert (streamed.id, streamed.function.arguments) == ("call_w1", '{"city": "Paris"}')
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = oai.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert serverless.requests[-1].json["messages"][1]["tool_calls"][0]["id"] == "call_w1"


def test_openai_errors(oai: Any, openai: ModuleType, serverless: LocalEndpoint) -> None:
    messages = [{"role": "user", "content": "hi"}]
    serverless.add_fault(Fault(400, body={"error": {"code": "content_filter", "message": "The prompt was filtered."}}))
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="m", messages=messages)
    assert (bad.value.status_code, bad.value.code) == (400, "content_filter")
    assert "The prompt was filtered." in bad.value.message and bad.value.request_id
    with pytest.raises(openai.AuthenticationError) as denied:
        oai.with_options(api_key="wrong").chat.completions.create(model="m", messages=messages)
    assert denied.value.code == "Unauthorized" and "wrong" not in str(denied.value)
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        oai.chat.completions.create(model="m", messages=[])
    assert invalid.value.body["detail"][0]["loc"] == ["body", "messages"]
    serverless.add_fault(Fault(stream_error={"error": {"code": "content_filter", "message": "filtered mid-way"}}))
    with pytest.raises(openai.APIError, match="filtered mid-way"):
        list(oai.chat.completions.create(model="m", messages=messages, stream=True))
    # openai's retry honours retry-after-ms
    serverless.add_fault(Fault(429, headers={"retry-after-ms": "10", "retry-after": "1"}))
    before = len(serverless.requests)
    reply = oai.with_options(max_retries=1).chat.completions.create(model="m", messages=messages)
    assert reply.choices[0].message.content == "hi"
    assert len(serverless.requests) - before == 2


# -- azure-ai-inference (ChatCompletionsClient) on the serverless routes -------------------


@pytest.fixture
def aai(inference: ModuleType, serverless: LocalEndpoint) -> Iterator[Any]:
    from azure.core.credentials import AzureKeyCredential

    with inference.ChatCompletionsClient(
        endpoint=serverless.base_url, credential=AzureKeyCredential(KEY), retry_total=0
    ) as client:
        yield client


def test_azure_ai_inference_chat_and_model_info(aai: Any, serverless: LocalEndpoint) -> None:
    from azure.ai.inference.models import SystemMessage, UserMessage

    reply = aai.complete(messages=[SystemMessage("Be brief."), UserMessage("Hello from azure-ai-inference")])
    assert reply.choices[0].message.content == "Hello from azure-ai-inference"
    assert reply.usage.total_tokens == 8 and reply.model == "mistral-large"
    request = serverless.requests[-1]
    assert (request.path, request.query) == ("/chat/completions", {"api-version": "2024-05-01-preview"})
    # Microsoft's SDK sends both key headers; serverless reads the Bearer one
    assert request.headers["authorization"] == f"Bearer {KEY}" and request.headers["api-key"] == KEY
    assert "extra-parameters" not in request.headers
    assert aai.get_model_info().model_name == "mistral-large"
    # model_extras travel with extra-parameters: pass-through
    seen: list[dict[str, Any]] = []
    serverless.responder = lambda turn: seen.append(turn.params) or "extras ok"
    reply = aai.complete(messages=[UserMessage("x")], temperature=0.1, model_extras={"safe_mode": True})
    assert reply.choices[0].message.content == "extras ok"
    assert seen == [{"temperature": 0.1, "safe_mode": True}]
    assert serverless.requests[-1].headers["extra-parameters"] == "pass-through"


def test_azure_ai_inference_streaming(aai: Any, serverless: LocalEndpoint) -> None:
    from azure.ai.inference.models import UserMessage

    serverless.responder = lambda turn: ScriptedReply(content="one two three", reasoning_content="hmm")
    updates = list(aai.complete(messages=[UserMessage("go")], stream=True))
    assert "".join(u.choices[0].delta.content or "" for u in updates) == "one two three"
    assert updates[-1].choices[0].finish_reason == "stop"


def test_azure_ai_inference_fails_on_comment_lines(aai: Any, serverless: LocalEndpoint) -> None:
    """Why the endpoint sends no ``: ping`` lines unless asked: this client cannot read them."""
    from azure.ai.inference.models import UserMessage

    serverless.sse_comments = True
    with pytest.raises(ValueError, match="SSE event not supported"):
        list(aai.complete(messages=[UserMessage("go")], stream=True))


def test_azure_ai_inference_errors(aai: Any, inference: ModuleType, serverless: LocalEndpoint) -> None:
    from azure.ai.inference.models import UserMessage
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    serverless.add_fault(Fault(400, headers={"x-ms-error-code": "ContentFilter"}))
    with pytest.raises(HttpResponseError) as bad:
        aai.complete(messages=[UserMessage("hi")])
    assert bad.value.status_code == 400 and bad.value.error.code == "BadRequest"
    with pytest.raises(HttpResponseError) as invalid:
        aai.complete(messages=[UserMessage("hi")], temperature="hot")
    assert invalid.value.status_code == 422
    # azure-core's retry policy honours retry-after
    serverless.add_fault(Fault(503, headers={"retry-after": "0"}))
    before = len(serverless.requests)
    assert aai.complete(messages=[UserMessage("again")], retry_total=1).choices[0].message.content == "again"
    assert len(serverless.requests) - before == 2
    with (
        inference.ChatCompletionsClient(
            endpoint=serverless.base_url, credential=AzureKeyCredential("wrong"), retry_total=0
        ) as wrong,
        pytest.raises(ClientAuthenticationError) as denied,
    ):
        wrong.complete(messages=[UserMessage("hi")])
    assert denied.value.status_code == 401 and denied.value.error.code == "Unauthorized"


# -- LangChain community's AzureMLChatOnlineEndpoint -----------------------------------------


def test_langchain_community_dedicated_score(community: ModuleType) -> None:
    with LocalEndpoint(kind="dedicated", family="llama", api_key=KEY, deployments=["blue", "green"]) as endpoint:
        model = community.AzureMLChatOnlineEndpoint(
            endpoint_url=endpoint.score_url,
            endpoint_api_type="dedicated",
            endpoint_api_key=KEY,
            deployment_name="green",
            content_formatter=community.CustomOpenAIChatContentFormatter(),
            model_kwargs={"temperature": 0.3, "max_new_tokens": 50},
        )
        assert model.invoke("Hello from LangChain").content == "Hello from LangChain"
        request = endpoint.requests[-1]
        assert request.json == {
            "input_data": {
                "input_string": [{"role": "user", "content": "Hello from LangChain"}],
                "parameters": {"temperature": 0.3, "max_new_tokens": 50},
            }
        }
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["azureml-model-deployment"] == "green"
        endpoint.add_fault(Fault(424, headers={"ms-azureml-model-error-statuscode": "500"}))
        with pytest.raises(urllib.error.HTTPError) as failed:
            model.invoke("x")
        assert failed.value.code == 424
        assert failed.value.headers["ms-azureml-model-error-statuscode"] == "500"


def test_langchain_community_serverless(community: ModuleType, openai: ModuleType, serverless: LocalEndpoint) -> None:
    # The community class accepts only /completions or /models/chat/completions for serverless,
    # and adds no api-version: the URL must carry it, as on Azure.
    url = serverless.base_url + "/models/chat/completions?api-version=2024-05-01-preview"
    model = community.AzureMLChatOnlineEndpoint(
        endpoint_url=url,
        endpoint_api_type="serverless",
        endpoint_api_key=KEY,
        content_formatter=community.CustomOpenAIChatContentFormatter(),
    )
    reply = model.invoke("Hello serverless", temperature=0.5)
    assert reply.content == "Hello serverless"
    assert serverless.requests[-1].json["temperature"] == 0.5
    bare = community.AzureMLChatOnlineEndpoint(
        endpoint_url=serverless.base_url + "/models/chat/completions",
        endpoint_api_type="serverless",
        endpoint_api_key=KEY,
        content_formatter=community.CustomOpenAIChatContentFormatter(),
    )
    with pytest.raises(urllib.error.HTTPError) as missing:
        bare.invoke("no api-version")
    assert missing.value.code == 400
    assert json.loads(missing.value.read())["error"]["code"] == "MissingApiVersionParameter"
    # Its stream() rewrites the URL to <base>/models?api-version=... and lets openai append
    # /chat/completions after the query: a URL Azure (and this endpoint) does not serve.
    with pytest.raises(openai.NotFoundError):
        list(model.stream("streamed"))
    assert serverless.requests[-1].path.rstrip("/") == "/models"


# -- the Foundry and Azure OpenAI routes, as Microsoft's and OpenAI's clients call them ------


def test_openai_azure_client_on_deployment_route(openai: ModuleType) -> None:
    with LocalEndpoint(kind="azure-openai", api_key=KEY, deployments=["gpt-4o"]) as endpoint:
        client = openai.AzureOpenAI(
            azure_endpoint=endpoint.base_url, api_key=KEY, api_version="2024-10-21", max_retries=0
        )
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "aoai"}])
        assert (reply.choices[0].message.content, reply.model) == ("aoai", "gpt-4o")
        request = endpoint.requests[-1]
        assert request.path == "/openai/deployments/gpt-4o/chat/completions"
        assert request.query == {"api-version": "2024-10-21"} and request.headers["api-key"] == KEY
        chunks = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "streamed aoai"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed aoai"
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="gpt-35", messages=[{"role": "user", "content": "x"}])
        assert missing.value.code == "DeploymentNotFound"
        old = openai.AzureOpenAI(azure_endpoint=endpoint.base_url, api_key=KEY, api_version="2024-06-01")
        with pytest.raises(openai.BadRequestError, match="json_schema"):
            old.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "x"}],
                response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
            )
        # Microsoft's migration path: the plain OpenAI client on /openai/v1 (key as Bearer)
        v1 = openai.OpenAI(base_url=endpoint.base_url + "/openai/v1/", api_key=KEY, max_retries=0)
        reply = v1.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "v1"}])
        assert reply.choices[0].message.content == "v1"
        assert endpoint.requests[-1].headers["authorization"] == f"Bearer {KEY}"
        assert endpoint.requests[-1].query == {}


def test_azure_ai_inference_on_foundry_models_route(inference: ModuleType) -> None:
    from azure.ai.inference.models import UserMessage
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    with (
        LocalEndpoint(kind="foundry", api_key=KEY) as endpoint,
        inference.ChatCompletionsClient(
            endpoint=endpoint.base_url + "/models", credential=AzureKeyCredential(KEY), retry_total=0
        ) as client,
    ):
        reply = client.complete(messages=[UserMessage("foundry")], model="mistral-large")
        assert (reply.choices[0].message.content, reply.model) == ("foundry", "mistral-large")
        assert endpoint.requests[-1].query == {"api-version": "2024-05-01-preview"}
        updates = client.complete(messages=[UserMessage("foundry stream")], model="m", stream=True)
        assert "".join(u.choices[0].delta.content or "" for u in updates) == "foundry stream"
        with pytest.raises(HttpResponseError) as no_model:
            client.complete(messages=[UserMessage("x")])
        assert no_model.value.status_code == 400 and no_model.value.error.code == "no_model_name"
        with pytest.raises(ResourceNotFoundError):  # /info exists only on Azure ML endpoints
            client.get_model_info()
