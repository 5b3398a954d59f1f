"""``azml_chat.langchain.AzureMLOnlineEndpoint`` (LangChain's LLM class) and the text content
formatters over real HTTP against the embedded endpoint: a port of the examples of LangChain's
Azure ML LLM documentation, one test per formatter, the LangChain behaviour users rely on
(invoke/batch/stream in both flavours, callbacks with token usage, bind, with_retry,
with_fallbacks, tracing parameters, serialization), retries and typed errors, and
``AzureMLEndpointClient``.

``langchain-tests`` has no standard suite for LLM classes (only chat models, embeddings,
tools, retrievers, stores), so the behaviour its chat-model suite checks is tested here.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core._api import LangChainDeprecationWarning
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, load
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation, LLMResult
from langchain_core.prompts import PromptTemplate
from support import API_KEY, FAST_RETRIES

from azml_chat import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    ModelError,
    ResponseFormatError,
    ServerError,
)
from azml_chat.langchain import (
    AzureMLBaseEndpoint,
    AzureMLEndpointApiType,
    AzureMLEndpointClient,
    AzureMLOnlineEndpoint,
    ContentFormatterBase,
    CustomOpenAIChatContentFormatter,
    CustomOpenAIContentFormatter,
    DollyContentFormatter,
    GPT2ContentFormatter,
    HFContentFormatter,
    LlamaContentFormatter,
    OSSContentFormatter,
)
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

SONG = "Write me a song about sparkling water:"


@pytest.fixture
def text_endpoint() -> Iterator[LocalEndpoint]:
    """A dedicated endpoint with a text-generation container (prompt strings, ``[{"0": text}]`` replies)."""
    with LocalEndpoint(kind="dedicated", family="text-generation", api_key=API_KEY) as endpoint:
        yield endpoint


def last_body(endpoint: LocalEndpoint) -> Any:
    return endpoint.requests[-1].json


def llm_for(endpoint: LocalEndpoint, url: str | None = None, **settings: Any) -> AzureMLOnlineEndpoint:
    return AzureMLOnlineEndpoint(
        endpoint_url=url or endpoint.score_url, endpoint_api_key=API_KEY, retry_policy=FAST_RETRIES, **settings
    )


# --- the documentation's examples, with only the import changed --------------------------------


def test_docs_example_llama_completions_with_a_realtime_endpoint(text_endpoint: LocalEndpoint) -> None:
    with pytest.warns(LangChainDeprecationWarning, match="CustomOpenAIContentFormatter"):
        formatter = LlamaContentFormatter()
    llm = AzureMLOnlineEndpoint(
        endpoint_url=text_endpoint.score_url,  # "https://<your-endpoint>.<your_region>.inference.ml.azure.com/score"
        endpoint_api_type=AzureMLEndpointApiType.realtime,
        endpoint_api_key=API_KEY,
        content_formatter=formatter,
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    )
    assert llm.invoke(SONG) == SONG
    assert last_body(text_endpoint) == {
        "input_data": {"input_string": [SONG], "parameters": {"temperature": 0.8, "max_new_tokens": 400}}
    }
    assert llm.invoke(SONG, temperature=0.5) == SONG  # "Model parameters can also be indicated during invocation"
    assert last_body(text_endpoint)["input_data"]["parameters"] == {"temperature": 0.5, "max_new_tokens": 400}
    assert llm.model_kwargs == {"temperature": 0.8, "max_new_tokens": 400}


def test_docs_example_serverless_completions_url_is_refused_with_the_fix(endpoint: LocalEndpoint) -> None:
    url = endpoint.base_url + "/v1/completions"  # the docs' URL: a text-completions route
    with pytest.raises(ConfigurationError, match="chat/completions"):
        AzureMLOnlineEndpoint(
            endpoint_url=url,
            endpoint_api_type=AzureMLEndpointApiType.serverless,
            endpoint_api_key=API_KEY,
            content_formatter=CustomOpenAIContentFormatter(),
        )


def test_docs_example_serverless_on_the_chat_completions_url(endpoint: LocalEndpoint) -> None:
    with pytest.warns(LangChainDeprecationWarning):
        formatter = LlamaContentFormatter()
    llm = AzureMLOnlineEndpoint(
        endpoint_url=endpoint.chat_url,
        endpoint_api_type=AzureMLEndpointApiType.serverless,
        endpoint_api_key=API_KEY,
        content_formatter=formatter,
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    )
    assert llm.invoke(SONG) == SONG
    assert last_body(endpoint) == {
        "temperature": 0.8,
        "max_tokens": 400,  # the portable name on chat completions
        "messages": [{"role": "user", "content": SONG}],
    }


def test_docs_example_custom_formatter_without_api_type_arguments(dedicated: LocalEndpoint) -> None:
    class CustomFormatter(ContentFormatterBase):  # the docs' summarization formatter, verbatim
        content_type = "application/json"
        accepts = "application/json"

        def format_request_payload(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:  # type: ignore[override]
            input_str = json.dumps(
                {
                    "inputs": [prompt],
                    "parameters": model_kwargs,
                    "options": {"use_cache": False, "wait_for_model": True},
                }
            )
            return str.encode(input_str)

        def format_response_payload(self, output: bytes) -> str:  # type: ignore[override]
            response_json = json.loads(output)
            return response_json[0]["summary_text"]  # type: ignore[no-any-return]

    llm = AzureMLOnlineEndpoint(
        endpoint_api_type="realtime",
        endpoint_api_key=API_KEY,
        endpoint_url=dedicated.score_url,
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        content_formatter=CustomFormatter(),
    )
    large_text = 'On January 7, 2020, Blockberry Creative announced that HaSeul would not\nparticipate "in" it.'
    # A BART summarization container is not among the embedded endpoint's families: script its reply.
    dedicated.add_fault(Fault(status=200, body=[{"summary_text": "HaSeul paused."}]))
    assert llm.invoke(large_text) == "HaSeul paused."
    assert last_body(dedicated) == {
        "inputs": [large_text],
        "parameters": {"temperature": 0.8, "max_new_tokens": 400},
        "options": {"use_cache": False, "wait_for_model": True},
    }


def test_docs_example_dolly_in_a_prompt_chain(text_endpoint: LocalEndpoint) -> None:
    text_endpoint.reply_shape = "list"  # Dolly replies ["text"]
    prompt = PromptTemplate(
        input_variables=["word_count", "topic"], template="Write a {word_count} word essay about {topic}."
    )
    llm = AzureMLOnlineEndpoint(
        endpoint_api_key=API_KEY,
        endpoint_url=text_endpoint.score_url,
        model_kwargs={"temperature": 0.8, "max_tokens": 300},
        content_formatter=DollyContentFormatter(),
    )
    chain = prompt | llm  # LLMChain(llm=llm, prompt=prompt) in the docs; LLMChain is langchain-classic
    essay = "Write a 100 word essay about how to make friends."
    assert chain.invoke({"word_count": 100, "topic": "how to make friends"}) == essay
    assert last_body(text_endpoint) == {
        "input_data": {"input_string": [essay]},
        "parameters": {"temperature": 0.8, "max_new_tokens": 300},
    }


def test_docs_example_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text_endpoint: LocalEndpoint) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", text_endpoint.score_url)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "saved-key-must-not-show")
    save_llm = AzureMLOnlineEndpoint(
        deployment_name="databricks-dolly-v2-12b-4",
        model_kwargs={
            "temperature": 0.2,
            "max_tokens": 150,
            "top_p": 0.8,
            "frequency_penalty": 0.32,
            "presence_penalty": 72e-3,
        },
    )
    save_llm.save(tmp_path / "azureml.json")
    saved = json.loads((tmp_path / "azureml.json").read_text())
    assert saved["_type"] == "azureml_endpoint"
    assert saved["deployment_name"] == "databricks-dolly-v2-12b-4"
    assert saved["model_kwargs"]["top_p"] == 0.8
    assert "saved-key-must-not-show" not in json.dumps(saved)


# --- each formatter against the embedded endpoint ------------------------------------------------


def test_gpt2_formatter_sends_the_prompt_exactly_once_encoded(text_endpoint: LocalEndpoint) -> None:
    prompt = 'She said "hi"\n\\path\ttab'
    llm = llm_for(text_endpoint, content_formatter=GPT2ContentFormatter(), model_kwargs={"max_tokens": 5})
    assert llm.invoke(prompt) == prompt
    assert last_body(text_endpoint) == {"inputs": {"input_string": [prompt]}, "parameters": {"max_new_tokens": 5}}


def test_oss_formatter_warns_and_works_as_gpt2(text_endpoint: LocalEndpoint) -> None:
    with pytest.warns(LangChainDeprecationWarning, match="GPT2ContentFormatter"):
        llm = llm_for(text_endpoint, content_formatter=OSSContentFormatter)
    assert llm.invoke("oss") == "oss"
    assert last_body(text_endpoint) == {"inputs": {"input_string": ["oss"]}, "parameters": {}}


@pytest.mark.parametrize(
    "reply",
    [
        [{"0": {"generated_text": "hf answer"}}],
        [{"generated_text": "hf answer"}],
        [[{"generated_text": "hf answer"}]],
        [{"0": "hf answer"}],
    ],
)
def test_hf_formatter_body_and_reply_shapes(dedicated: LocalEndpoint, reply: Any) -> None:
    # The embedded endpoint has no Hugging Face pipeline family ({"inputs": [...]}): script its reply.
    dedicated.add_fault(Fault(status=200, body=reply))
    llm = llm_for(dedicated, content_formatter=HFContentFormatter(), model_kwargs={"do_sample": True})
    assert llm.invoke("Tell me a joke", max_tokens=7) == "hf answer"
    assert last_body(dedicated) == {
        "inputs": ["Tell me a joke"],
        "parameters": {"do_sample": True, "max_new_tokens": 7},
    }


def test_dolly_formatter(text_endpoint: LocalEndpoint) -> None:
    text_endpoint.reply_shape = "list"
    assert llm_for(text_endpoint, content_formatter=DollyContentFormatter()).invoke("dolly") == "dolly"


@pytest.mark.parametrize("shape", ["list0", "output", "generated_text", "list", "double_encoded", "openai"])
def test_custom_openai_formatter_on_score_reads_every_reply_shape(text_endpoint: LocalEndpoint, shape: str) -> None:
    text_endpoint.reply_shape = shape
    llm = llm_for(text_endpoint, content_formatter=CustomOpenAIContentFormatter())
    assert llm.invoke("any shape") == "any shape"
    assert last_body(text_endpoint) == {"input_data": {"input_string": ["any shape"], "parameters": {}}}


def test_default_formatter_is_the_openai_like_one(text_endpoint: LocalEndpoint) -> None:
    assert llm_for(text_endpoint).invoke("default") == "default"
    assert last_body(text_endpoint) == {"input_data": {"input_string": ["default"], "parameters": {}}}


def test_chat_formatters_and_family_names_send_the_prompt_as_a_user_turn(dedicated: LocalEndpoint) -> None:
    assert llm_for(dedicated, content_formatter=CustomOpenAIChatContentFormatter()).invoke("as chat") == "as chat"
    assert last_body(dedicated)["input_data"]["input_string"] == [{"role": "user", "content": "as chat"}]
    assert llm_for(dedicated, content_formatter="mistral").invoke("by name") == "by name"


def test_formatters_called_directly_keep_their_interface() -> None:
    payload = CustomOpenAIContentFormatter().format_request_payload("hi", {"max_tokens": 2}, "serverless")
    assert json.loads(payload) == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    completion = {"choices": [{"index": 0, "text": "done", "finish_reason": "length", "logprobs": None}]}
    generation = CustomOpenAIContentFormatter().format_response_payload(
        json.dumps(completion).encode(), AzureMLEndpointApiType.serverless
    )
    assert generation == Generation(text="done", generation_info={"finish_reason": "length", "logprobs": None})
    assert GPT2ContentFormatter().format_response_payload(b'[{"0": "g"}]').text == "g"
    with pytest.raises(ResponseFormatError, match="not JSON"):
        GPT2ContentFormatter().format_response_payload(b"<html>")
    with pytest.raises(ModelError, match="out of memory"):
        DollyContentFormatter().format_response_payload(b'{"error": "out of memory"}')
    assert ContentFormatterBase.escape_special_characters('a"b\n') == 'a\\"b\\n'


def test_formatter_for_another_endpoint_kind_is_refused(endpoint: LocalEndpoint) -> None:
    with pytest.raises(ConfigurationError, match="GPT2ContentFormatter does not support serverless"):
        llm_for(endpoint, endpoint.chat_url, content_formatter=GPT2ContentFormatter())


class ScoredFormatter(ContentFormatterBase):
    """A formatter of one's own whose generations carry extra information."""

    def format_request_payload(self, prompt: str, model_kwargs: dict[str, Any], api_type: Any) -> str:
        return json.dumps({"input_data": {"input_string": [prompt.upper()], "parameters": model_kwargs}})

    def format_response_payload(self, output: bytes, api_type: Any) -> Generation:
        text = json.loads(output)[0]["0"]
        return Generation(text=text, generation_info={"kind": str(api_type), "length": len(text)})


def test_own_formatter_generations_reach_the_result_unchanged(text_endpoint: LocalEndpoint) -> None:
    llm = llm_for(text_endpoint, content_formatter=ScoredFormatter(), endpoint_api_type="realtime")
    result = llm.generate(["shout"])
    assert result.generations[0][0] == Generation(text="SHOUT", generation_info={"kind": "realtime", "length": 5})
    assert [chunk for chunk in llm.stream("one piece")] == ["ONE PIECE"]


def test_own_formatter_errors_are_typed(text_endpoint: LocalEndpoint) -> None:
    class Broken(ScoredFormatter):
        def format_response_payload(self, output: bytes, api_type: Any) -> Generation:
            raise ValueError(self.format_error_msg.format(api_type=api_type))

    with pytest.raises(ResponseFormatError, match="right formatter"):
        llm_for(text_endpoint, content_formatter=Broken()).invoke("x")

    class NotJson(ScoredFormatter):
        def format_request_payload(self, prompt: str, model_kwargs: dict[str, Any], api_type: Any) -> str:
            return "prompt=" + prompt

    sent = len(text_endpoint.requests)
    with pytest.raises(InvalidRequestError, match="not JSON"):
        llm_for(text_endpoint, content_formatter=NotJson()).invoke("x")
    assert len(text_endpoint.requests) == sent  # nothing was sent


# --- LangChain behaviour --------------------------------------------------------------------------


class UsageRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.results: list[LLMResult] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.results.append(response)


def test_serverless_stream_is_incremental_with_usage(endpoint: LocalEndpoint) -> None:
    recorder = UsageRecorder()
    llm = llm_for(endpoint, endpoint.chat_url)
    assert list(llm.stream("one two three", config={"callbacks": [recorder]})) == ["one ", "two ", "three", ""]
    assert recorder.tokens == ["one ", "two ", "three", ""]
    assert last_body(endpoint)["stream"] is True
    assert last_body(endpoint)["stream_options"] == {"include_usage": True}
    final = recorder.results[-1].generations[0][0]
    assert final.text == "one two three"
    assert final.generation_info == {
        "finish_reason": "stop",
        "token_usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


def test_callbacks_get_token_usage_and_model_name(endpoint: LocalEndpoint) -> None:
    endpoint.responder = lambda turn: ScriptedReply(
        content="ok", usage={"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    )
    recorder = UsageRecorder()
    llm = llm_for(endpoint, endpoint.chat_url, model="phi-4")
    assert llm.invoke("a", config={"callbacks": [recorder]}) == "ok"
    assert recorder.results[-1].llm_output == {
        "model_name": "phi-4",
        "token_usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
    }
    result = llm.generate(["a", "b"])
    assert result.llm_output == {
        "model_name": "phi-4",
        "token_usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
    }
    assert [generations[0].generation_info for generations in result.generations] == [{"finish_reason": "stop"}] * 2
    assert [request.json["model"] for request in endpoint.requests] == ["phi-4"] * 3


def test_dedicated_stream_is_one_chunk(text_endpoint: LocalEndpoint) -> None:
    assert list(llm_for(text_endpoint).stream("whole reply")) == ["whole reply"]
    assert "stream" not in last_body(text_endpoint)["input_data"]["parameters"]


@pytest.mark.asyncio
async def test_async_invoke_batch_and_stream(endpoint: LocalEndpoint, text_endpoint: LocalEndpoint) -> None:
    serverless = llm_for(endpoint, endpoint.chat_url)
    assert await serverless.ainvoke("async hello") == "async hello"
    assert await serverless.abatch(["a", "b", "c"]) == ["a", "b", "c"]
    recorder = UsageRecorder()
    chunks = [chunk async for chunk in serverless.astream("x y", config={"callbacks": [recorder]})]
    assert chunks == ["x ", "y", ""]
    assert recorder.tokens == ["x ", "y", ""]
    dedicated = llm_for(text_endpoint)
    assert [chunk async for chunk in dedicated.astream("in one piece")] == ["in one piece"]
    assert (await dedicated.agenerate(["p", "q"])).generations[1][0].text == "q"
    assert serverless._clients.sync is None  # no thread ran the sync client
    await serverless.aclose()
    await dedicated.aclose()


def test_batch_bind_config_retry_and_fallbacks(endpoint: LocalEndpoint, text_endpoint: LocalEndpoint) -> None:
    llm = llm_for(endpoint, endpoint.chat_url, max_retries=0)
    assert llm.batch(["a", "b"]) == ["a", "b"]
    llm.bind(stop=["END"], top_k=5).invoke("bound")
    assert last_body(endpoint)["stop"] == ["END"]
    assert last_body(endpoint)["top_k"] == 5  # a model-specific key reaches the body
    assert endpoint.requests[-1].headers["extra-parameters"] == "pass-through"
    assert llm.with_config(tags=["t"]).invoke("configured") == "configured"
    endpoint.add_fault(Fault(status=503))
    assert llm.with_retry(stop_after_attempt=2, wait_exponential_jitter=False).invoke("again") == "again"
    endpoint.add_fault(Fault(status=500))
    assert llm.with_fallbacks([llm_for(text_endpoint)]).invoke("fell back") == "fell back"
    assert last_body(text_endpoint)["input_data"]["input_string"] == ["fell back"]


def test_per_call_parameters_never_leak(text_endpoint: LocalEndpoint) -> None:
    model_kwargs = {"temperature": 0.8}
    llm = llm_for(text_endpoint, model_kwargs=model_kwargs)
    llm.invoke("x", max_tokens=512, stop=["\n"])
    assert last_body(text_endpoint)["input_data"]["parameters"] == {
        "temperature": 0.8,
        "max_new_tokens": 512,
        "stop": ["\n"],
    }
    llm.invoke("x")  # the old class kept max_tokens and stop from here on
    assert last_body(text_endpoint)["input_data"]["parameters"] == {"temperature": 0.8}
    assert model_kwargs == {"temperature": 0.8}


def test_ls_params_and_identifying_params(endpoint: LocalEndpoint) -> None:
    llm = llm_for(endpoint, endpoint.chat_url, deployment_name="blue", temperature=0.1, max_tokens=9)
    assert llm._get_ls_params(stop=["x"]) == {
        "ls_provider": "azureml",
        "ls_model_name": "blue",
        "ls_model_type": "llm",
        "ls_temperature": 0.1,
        "ls_max_tokens": 9,
        "ls_stop": ["x"],
    }
    assert llm._identifying_params["deployment_name"] == "blue"
    assert llm._llm_type == "azureml_endpoint"
    assert isinstance(llm, AzureMLBaseEndpoint)


def test_dumpd_and_load(monkeypatch: pytest.MonkeyPatch, text_endpoint: LocalEndpoint) -> None:
    llm = llm_for(text_endpoint, model_kwargs={"temperature": 0.3}, deployment_name="blue")
    serialized = dumpd(llm)
    assert API_KEY not in json.dumps(serialized)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", API_KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load() is marked beta
        loaded = load(
            serialized, valid_namespaces=["azml_chat"], allowed_objects=[AzureMLOnlineEndpoint], secrets_from_env=True
        )
    assert isinstance(loaded, AzureMLOnlineEndpoint)
    assert loaded.invoke("loaded") == "loaded"
    assert text_endpoint.requests[-1].headers["azureml-model-deployment"] == "blue"


# --- retries, errors, settings ----------------------------------------------------------------------


def test_retries_and_typed_errors(text_endpoint: LocalEndpoint) -> None:
    text_endpoint.add_fault(Fault(status=503, times=2))
    assert llm_for(text_endpoint, max_retries=2).invoke("retried") == "retried"
    text_endpoint.add_fault(Fault(status=503))
    with pytest.raises(ServerError) as caught:
        llm_for(text_endpoint, max_retries=0).invoke("x")
    assert caught.value.status_code == 503
    assert caught.value.request_id
    with pytest.raises(AuthenticationError):
        AzureMLOnlineEndpoint(endpoint_url=text_endpoint.score_url, endpoint_api_key="wrong", max_retries=0).invoke("x")


@pytest.mark.asyncio
async def test_async_errors_are_typed(endpoint: LocalEndpoint) -> None:
    llm = llm_for(endpoint, endpoint.chat_url, max_retries=0)
    endpoint.add_fault(Fault(status=400, body={"error": {"code": "BadParam", "message": "top_k is wrong"}}))
    with pytest.raises(BadRequestError, match="top_k is wrong"):
        await llm.ainvoke("x")
    endpoint.add_fault(Fault(status=401))
    with pytest.raises(AuthenticationError):
        async for _ in llm.astream("x"):
            pass
    await llm.aclose()


def test_old_environment_variables(monkeypatch: pytest.MonkeyPatch, text_endpoint: LocalEndpoint) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", text_endpoint.score_url)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", API_KEY)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_TYPE", "realtime")
    monkeypatch.setenv("AZUREML_DEPLOYMENT_NAME", "green")
    monkeypatch.setenv("AZUREML_TIMEOUT", "9")
    llm = AzureMLOnlineEndpoint(content_formatter=GPT2ContentFormatter())
    assert (llm.endpoint_api_type, llm.timeout, llm.deployment_name) == ("realtime", 9.0, "green")
    assert llm.invoke("from env") == "from env"
    assert text_endpoint.requests[-1].headers["azureml-model-deployment"] == "green"


def test_model_override_only_on_chat_routes(text_endpoint: LocalEndpoint) -> None:
    with pytest.raises(InvalidRequestError, match="model= only applies"):
        llm_for(text_endpoint).invoke("x", model="other")


def test_llm_with_a_chat_only_formatter_of_ones_own(dedicated: LocalEndpoint) -> None:
    class ChatOnly(ContentFormatterBase):
        def format_messages_request_payload(self, messages: Any, model_kwargs: Any, api_type: Any) -> bytes:
            chat = [{"role": "user", "content": message.content} for message in messages]
            return json.dumps({"input_data": {"input_string": chat, "parameters": model_kwargs}}).encode()

        def format_response_payload(self, output: bytes, api_type: Any = None) -> Any:
            return json.loads(output)["output"]

    assert llm_for(dedicated, content_formatter=ChatOnly()).invoke("via messages") == "via messages"


def test_empty_formatter_is_refused() -> None:
    class Nothing(ContentFormatterBase):
        def format_response_payload(self, output: bytes, api_type: Any = None) -> Any:
            return ""

    with pytest.raises(ConfigurationError, match="implements neither format_request_payload"):
        AzureMLOnlineEndpoint(endpoint_url="https://x.eastus.inference.ml.azure.com/score", content_formatter=Nothing())


# --- AzureMLEndpointClient -------------------------------------------------------------------------


def test_endpoint_client_posts_a_body_and_returns_the_reply(text_endpoint: LocalEndpoint) -> None:
    client = AzureMLEndpointClient(text_endpoint.score_url, API_KEY, deployment_name="blue", timeout=5)
    body = GPT2ContentFormatter().format_request_payload("raw", {}, AzureMLEndpointApiType.dedicated)
    assert json.loads(client.call(body)) == [{"0": "raw"}]
    assert text_endpoint.requests[-1].json == json.loads(body)
    assert text_endpoint.requests[-1].headers["azureml-model-deployment"] == "blue"
    assert (client.endpoint_url, client.deployment_name, client.timeout) == (text_endpoint.score_url, "blue", 5)
    text_endpoint.add_fault(Fault(status=401))
    with pytest.raises(AuthenticationError):
        client.call(body, timeout=3)
    with pytest.raises(InvalidRequestError, match="not JSON"):
        client.call(b"\xff not json")
    client.close()
    with pytest.raises(ConfigurationError, match="key"):
        AzureMLEndpointClient(text_endpoint.score_url, "")


def test_chat_input_becomes_one_prompt(endpoint: LocalEndpoint) -> None:
    """An LLM takes a string or messages, which LangChain renders as one prompt text."""

    def whole_prompt(turn: ChatTurn) -> str:
        return str(turn.messages[-1]["content"])

    endpoint.responder = whole_prompt
    llm = llm_for(endpoint, endpoint.chat_url)
    assert llm.invoke([HumanMessage("from a message")]) == "Human: from a message"
    assert asyncio.run(llm.ainvoke("in a fresh loop")) == "in a fresh loop"


def test_example_script_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root / "examples"))  # as `python examples/langchain_llm.py` would
    runpy.run_path(str(root / "examples" / "langchain_llm.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [SONG, SONG, "Write me a haiku about tea:"]
