"""The LangChain adapter (``azml_chat.langchain``) over real HTTP against the embedded endpoint:
old constructor arguments and environment, the docs' examples, streaming, async, tools,
structured output, metadata, retries, time-outs, errors and the import isolation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import runpy
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from pydantic import BaseModel
from support import API_KEY, FAST_RETRIES

from azml_chat import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    ResponseFormatError,
    ServerError,
)
from azml_chat.langchain import (
    AzureMLChatOnlineEndpoint,
    AzureMLEndpointApiType,
    ContentFormatterBase,
    CustomOpenAIChatContentFormatter,
    GPT2ContentFormatter,
    LlamaChatContentFormatter,
    LlamaContentFormatter,
    MistralChatContentFormatter,
)
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Will the Collatz conjecture ever be solved?"


def serverless_model(endpoint: LocalEndpoint, **settings: Any) -> AzureMLChatOnlineEndpoint:
    return AzureMLChatOnlineEndpoint(
        endpoint_url=endpoint.chat_url,
        endpoint_api_type=AzureMLEndpointApiType.serverless,
        endpoint_api_key=API_KEY,
        retry_policy=FAST_RETRIES,
        **settings,
    )


def dedicated_model(endpoint: LocalEndpoint, **settings: Any) -> AzureMLChatOnlineEndpoint:
    return AzureMLChatOnlineEndpoint(
        endpoint_url=endpoint.score_url,
        endpoint_api_type=AzureMLEndpointApiType.dedicated,
        endpoint_api_key=API_KEY,
        retry_policy=FAST_RETRIES,
        **settings,
    )


def last_body(endpoint: LocalEndpoint) -> Any:
    return endpoint.requests[-1].json


def weather_call(turn: ChatTurn) -> ScriptedReply | str:
    """Calls ``get_weather`` while tools are offered and no tool result came back yet."""
    if turn.params.get("tools") and turn.messages[-1]["role"] != "tool":
        call = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 2}'}}
        return ScriptedReply(tool_calls=[call])
    return f"answer after {turn.messages[-1]['role']}"


def get_weather(city: str, days: int = 1) -> str:
    """Weather forecast for a city."""
    return "sunny"


# --- the import isolation and the missing extra -----------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_import_azml_chat_never_imports_langchain() -> None:
    result = run_python(
        "import sys, azml_chat, azml_chat.testing\n"
        "roots = ('langchain_core', 'langchain', 'langchain_tests')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print(loaded)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_langchain_core_names_the_extra() -> None:
    result = run_python(
        "import sys\n"
        "sys.modules['langchain_core'] = None  # as if it were not installed\n"
        "try:\n"
        "    import azml_chat.langchain\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name, '|', exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("LangChainNotInstalledError langchain_core |")
    assert "install azml-chat[langchain]" in result.stdout


# --- the LangChain docs' examples ----------------------------------------------------------------


def test_docs_example_dedicated(dedicated: LocalEndpoint) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=dedicated.score_url,
        endpoint_api_type=AzureMLEndpointApiType.dedicated,
        endpoint_api_key=API_KEY,
        content_formatter=CustomOpenAIChatContentFormatter(),
    )
    response = chat.invoke([HumanMessage(content=QUESTION)])
    assert isinstance(response, AIMessage)
    assert response.content == QUESTION
    assert last_body(dedicated) == {
        "input_data": {"input_string": [{"role": "user", "content": QUESTION}], "parameters": {}}
    }
    assert dedicated.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_docs_example_serverless_with_the_formatter_class(endpoint: LocalEndpoint) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=endpoint.chat_url,
        endpoint_api_type=AzureMLEndpointApiType.serverless,
        endpoint_api_key=API_KEY,
        content_formatter=CustomOpenAIChatContentFormatter,
    )
    response = chat.invoke([HumanMessage(content=QUESTION)])
    assert response.content == QUESTION
    assert last_body(endpoint) == {"messages": [{"role": "user", "content": QUESTION}]}


def test_docs_example_model_kwargs_and_per_call_max_tokens(endpoint: LocalEndpoint) -> None:
    model_kwargs = {"temperature": 0.8}
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=endpoint.chat_url,
        endpoint_api_type=AzureMLEndpointApiType.serverless,
        endpoint_api_key=API_KEY,
        content_formatter=CustomOpenAIChatContentFormatter,
        model_kwargs=model_kwargs,
    )
    chat.invoke([HumanMessage(content=QUESTION)], max_tokens=512)
    assert last_body(endpoint) == {
        "temperature": 0.8,
        "max_tokens": 512,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    chat.invoke([HumanMessage(content=QUESTION)])  # the old client kept max_tokens=512 from here on
    assert "max_tokens" not in last_body(endpoint)
    assert model_kwargs == {"temperature": 0.8}
    assert chat.model_kwargs == {"temperature": 0.8}


@pytest.mark.parametrize("name", ["langchain_dedicated", "langchain_serverless", "langchain_model_kwargs"])
def test_example_scripts_run(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # as `python examples/<name>.py` would
    runpy.run_path(str(ROOT / "examples" / f"{name}.py"), run_name="__main__")
    assert capsys.readouterr().out.startswith(QUESTION + "\n")


# --- construction: old arguments, environment, formatters ----------------------------------------


def test_settings_come_from_the_old_environment_variables(
    monkeypatch: pytest.MonkeyPatch, dedicated: LocalEndpoint
) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", dedicated.score_url)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", API_KEY)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_TYPE", "realtime")
    monkeypatch.setenv("AZUREML_DEPLOYMENT_NAME", "blue")
    monkeypatch.setenv("AZUREML_TIMEOUT", "7")
    chat = AzureMLChatOnlineEndpoint()
    assert chat.endpoint_api_type is AzureMLEndpointApiType.realtime
    assert chat.timeout == 7.0
    assert chat.invoke("hi").content == "hi"
    assert dedicated.requests[-1].headers["azureml-model-deployment"] == "blue"


@pytest.mark.parametrize("api_type", [AzureMLEndpointApiType.dedicated, "dedicated", "realtime", " Dedicated ", None])
def test_api_type_accepts_enum_strings_and_inference(api_type: Any, dedicated: LocalEndpoint) -> None:
    chat = AzureMLChatOnlineEndpoint(endpoint_url=dedicated.score_url, endpoint_api_type=api_type, api_key=API_KEY)
    assert chat.invoke("x").content == "x"
    assert "input_data" in last_body(dedicated)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "no endpoint URL"),
        ({"endpoint_url": "not a url"}, "endpoint_url"),
        (
            {"endpoint_url": "https://x.eastus.inference.ml.azure.com/score", "endpoint_api_type": "serverless"},
            "/score",
        ),
        (
            {"endpoint_url": "https://x.eastus.inference.ml.azure.com/score", "content_formatter": 42},
            "content_formatter",
        ),
        (
            {"endpoint_url": "https://x.eastus.inference.ml.azure.com/score", "content_formatter": "nope"},
            "unknown formatter",
        ),
    ],
)
def test_bad_settings_raise_configuration_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AzureMLChatOnlineEndpoint(**settings)


def test_unknown_constructor_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="endpoint_ulr"):
        AzureMLChatOnlineEndpoint(endpoint_ulr="https://x.eastus.inference.ml.azure.com/score")


def test_api_key_never_shows(endpoint: LocalEndpoint) -> None:
    secret = "super-secret-key-123"
    chat = AzureMLChatOnlineEndpoint(endpoint_url=endpoint.chat_url, endpoint_api_key=secret, max_retries=0)
    shown = [repr(chat), str(chat), chat.model_dump_json(), json.dumps(chat.asdict()), repr(chat._get_ls_params())]
    with pytest.raises(AuthenticationError) as caught:
        chat.invoke("hi")
    shown.append(str(caught.value))
    assert all(secret not in text for text in shown)
    assert chat.endpoint_api_key is not None
    assert chat.endpoint_api_key.get_secret_value() == secret


def test_llama_formatter_alias_warns_and_works(dedicated: LocalEndpoint) -> None:
    with pytest.warns(DeprecationWarning, match="CustomOpenAIChatContentFormatter"):
        chat = dedicated_model(dedicated, content_formatter=LlamaChatContentFormatter)
    assert chat.invoke("hello").content == "hello"


def test_mistral_formatter_merges_the_system_turn_on_score(dedicated: LocalEndpoint) -> None:
    chat = dedicated_model(dedicated, content_formatter=MistralChatContentFormatter())
    chat.invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    assert last_body(dedicated)["input_data"]["input_string"] == [{"role": "user", "content": "Be brief.\n\nHi"}]
    chat.invoke([SystemMessage("Only a system turn.")])  # the LangChain formatter crashed here
    assert last_body(dedicated)["input_data"]["input_string"] == [{"role": "user", "content": "Only a system turn."}]


def test_mistral_formatter_keeps_the_system_role_on_serverless(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, content_formatter=MistralChatContentFormatter)
    chat.invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    assert last_body(endpoint)["messages"][0] == {"role": "system", "content": "Be brief."}


def test_quotes_and_newlines_are_escaped_once(dedicated: LocalEndpoint) -> None:
    text = 'She said "hi"\n\\path\ttab'
    reply = dedicated_model(dedicated, content_formatter=CustomOpenAIChatContentFormatter()).invoke(text)
    assert last_body(dedicated)["input_data"]["input_string"][0]["content"] == text
    assert reply.content == text


class OldStyleFormatter(ContentFormatterBase):
    """A custom formatter written the langchain_community way."""

    def format_messages_request_payload(self, messages: Any, model_kwargs: dict[str, Any], api_type: Any) -> bytes:
        chat = [{"role": "user", "content": str(message.content)} for message in messages]
        body = {"input_data": {"input_string": chat, "parameters": model_kwargs}, "kind": api_type.value}
        return json.dumps(body).encode()

    def format_response_payload(self, output: bytes, api_type: Any = None) -> ChatGeneration:
        return ChatGeneration(message=AIMessage(content=json.loads(output)["output"].upper()))


def test_old_style_custom_formatter_keeps_working(dedicated: LocalEndpoint) -> None:
    chat = dedicated_model(dedicated, content_formatter=OldStyleFormatter, model_kwargs={"temperature": 0.5})
    assert chat.invoke("shout", max_tokens=3).content == "SHOUT"
    assert last_body(dedicated) == {
        "input_data": {
            "input_string": [{"role": "user", "content": "shout"}],
            "parameters": {"temperature": 0.5, "max_tokens": 3},
        },
        "kind": "dedicated",
    }
    assert [chunk.content for chunk in chat.stream("quiet")] == ["QUIET", ""]


def test_old_style_formatter_errors_are_typed(dedicated: LocalEndpoint) -> None:
    class Broken(OldStyleFormatter):
        def format_response_payload(self, output: bytes, api_type: Any = None) -> ChatGeneration:
            raise ValueError(self.format_error_msg.format(api_type=api_type))

    with pytest.raises(ResponseFormatError, match="right formatter"):
        dedicated_model(dedicated, content_formatter=Broken()).invoke("x")


def test_old_style_formatter_for_another_endpoint_kind_is_refused(endpoint: LocalEndpoint) -> None:
    class DedicatedOnly(OldStyleFormatter):
        @property
        def supported_api_types(self) -> list[AzureMLEndpointApiType]:
            return [AzureMLEndpointApiType.realtime]

    with pytest.raises(ConfigurationError, match="does not support serverless"):
        serverless_model(endpoint, content_formatter=DedicatedOnly())


def test_builtin_formatter_methods_work_when_called_directly() -> None:
    formatter = CustomOpenAIChatContentFormatter()
    payload = formatter.format_messages_request_payload(
        [HumanMessage("hi")], {"max_tokens": 5}, AzureMLEndpointApiType.dedicated
    )
    assert json.loads(payload) == {
        "input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"max_new_tokens": 5}}
    }
    generation = formatter.format_response_payload(b'{"output": "yes"}', AzureMLEndpointApiType.dedicated)
    assert generation.message.content == "yes"
    serverless = formatter.format_messages_request_payload([HumanMessage("hi")], {}, AzureMLEndpointApiType.serverless)
    assert json.loads(serverless) == {"messages": [{"role": "user", "content": "hi"}]}


# --- replies, metadata, streaming ---------------------------------------------------------------


def test_response_and_usage_metadata(endpoint: LocalEndpoint) -> None:
    endpoint.responder = lambda turn: ScriptedReply(
        content="four words in total",
        reasoning_content="thinking hard",
        usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    )
    reply = serverless_model(endpoint).invoke("count")
    assert reply.content == "four words in total"
    assert reply.usage_metadata == {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}
    assert reply.additional_kwargs["reasoning_content"] == "thinking hard"
    metadata = reply.response_metadata
    assert metadata["finish_reason"] == "stop"
    assert metadata["model_name"] == "local-model"
    assert metadata["request_id"]
    assert metadata["id"].startswith("chatcmpl-")


class TokenRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_serverless_stream_is_incremental_with_token_callbacks(endpoint: LocalEndpoint) -> None:
    recorder = TokenRecorder()
    chunks = list(serverless_model(endpoint).stream("one two three", config={"callbacks": [recorder]}))
    assert [chunk.content for chunk in chunks] == ["one ", "two ", "three", ""]
    assert recorder.tokens == ["one ", "two ", "three", ""]
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata == {"input_tokens": 3, "output_tokens": 3, "total_tokens": 6}
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert last_body(endpoint)["stream"] is True
    assert last_body(endpoint)["stream_options"] == {"include_usage": True}
    assert endpoint.requests[-1].headers["extra-parameters"] == "pass-through"


def test_invoke_with_streaming_true_streams_tokens_to_callbacks(endpoint: LocalEndpoint) -> None:
    recorder = TokenRecorder()
    reply = serverless_model(endpoint, streaming=True).invoke("a b", config={"callbacks": [recorder]})
    assert reply.content == "a b"
    assert recorder.tokens[:2] == ["a ", "b"]
    assert last_body(endpoint)["stream"] is True


def test_dedicated_stream_is_one_chunk(dedicated: LocalEndpoint) -> None:
    chunks = list(dedicated_model(dedicated).stream("whole reply"))
    assert [chunk.content for chunk in chunks] == ["whole reply", ""]
    assert "stream" not in last_body(dedicated)["input_data"]["parameters"]


def test_stream_usage_can_be_switched_off(endpoint: LocalEndpoint) -> None:
    list(serverless_model(endpoint, stream_usage=False).stream("x"))
    assert "stream_options" not in last_body(endpoint)


# --- true async ----------------------------------------------------------------------------------


class NoThreads(concurrent.futures.ThreadPoolExecutor):
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async path used a thread pool")


@pytest.mark.asyncio
async def test_async_calls_use_no_threads_and_no_sync_client(endpoint: LocalEndpoint) -> None:
    asyncio.get_running_loop().set_default_executor(NoThreads())
    chat = serverless_model(endpoint)
    assert (await chat.ainvoke("async hello")).content == "async hello"
    assert [chunk.content async for chunk in chat.astream("x y")] == ["x ", "y", ""]
    replies = await chat.abatch(["a", "b", "c"])
    assert [reply.content for reply in replies] == ["a", "b", "c"]
    assert chat._clients.sync is None
    await chat.aclose()


def test_async_client_follows_the_event_loop(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint)
    assert asyncio.run(chat.ainvoke("first")).content == "first"
    assert asyncio.run(chat.ainvoke("second")).content == "second"  # a new loop: a new connection pool


@pytest.mark.asyncio
async def test_async_client_is_reused_within_a_loop(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint)
    await chat.ainvoke("a")
    client = await chat._async_client()
    await chat.ainvoke("b")
    assert await chat._async_client() is client
    assert endpoint.total_connections == 1
    await chat.aclose()


def test_batch_shares_one_sync_client(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint)
    assert [reply.content for reply in chat.batch(["a", "b", "c"])] == ["a", "b", "c"]
    client = chat._clients.sync
    chat.invoke("d")
    assert chat._clients.sync is client
    chat.close()
    assert chat._clients.sync is None
    assert chat.invoke("e").content == "e"  # a closed model opens a new pool


# --- tools and structured output -----------------------------------------------------------------


def test_bind_tools_sends_openai_tools_and_parses_tool_calls(endpoint: LocalEndpoint) -> None:
    endpoint.responder = weather_call
    chat = serverless_model(endpoint).bind_tools([get_weather], tool_choice="get_weather")
    reply = chat.invoke("Weather in Oslo?")
    body = last_body(endpoint)
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert reply.tool_calls == [
        {"name": "get_weather", "args": {"city": "Oslo", "days": 2}, "id": "call_1", "type": "tool_call"}
    ]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    tool_message = ToolMessage("sunny", tool_call_id="call_1")
    answer = chat.invoke([HumanMessage("Weather in Oslo?"), reply, tool_message])
    assert answer.content == "answer after tool"
    sent = last_body(endpoint)["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo", "days": 2}
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}


@pytest.mark.parametrize(
    ("choice", "wire"),
    [("any", "required"), (True, "required"), ("auto", "auto"), ("none", "none"), ("required", "required")],
)
def test_tool_choice_values(endpoint: LocalEndpoint, choice: Any, wire: Any) -> None:
    serverless_model(endpoint).bind_tools([get_weather], tool_choice=choice).invoke("x")
    assert last_body(endpoint)["tool_choice"] == wire


def test_tool_choice_of_an_unbound_tool_is_refused(endpoint: LocalEndpoint) -> None:
    with pytest.raises(InvalidRequestError, match="not one of the bound tools"):
        serverless_model(endpoint).bind_tools([get_weather], tool_choice="get_time")


def test_streamed_tool_call_fragments_assemble(endpoint: LocalEndpoint) -> None:
    endpoint.responder = weather_call
    chunks = list(serverless_model(endpoint).bind_tools([get_weather]).stream("Weather?"))
    assert sum(1 for chunk in chunks if chunk.tool_call_chunks) >= 3  # name, then argument fragments
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.tool_calls == [
        {"name": "get_weather", "args": {"city": "Oslo", "days": 2}, "id": "call_1", "type": "tool_call"}
    ]


def test_bad_tool_arguments_become_invalid_tool_calls(endpoint: LocalEndpoint) -> None:
    call = {"id": "c", "function": {"name": "get_weather", "arguments": "{not json"}}
    endpoint.responder = lambda turn: ScriptedReply(tool_calls=[call])
    reply = serverless_model(endpoint).bind_tools([get_weather]).invoke("x")
    assert reply.tool_calls == []
    assert reply.invalid_tool_calls[0]["args"] == "{not json"
    assert "not valid JSON" in (reply.invalid_tool_calls[0]["error"] or "")


class Person(BaseModel):
    name: str
    age: int


def person_reply(turn: ChatTurn) -> ScriptedReply | str:
    if turn.params.get("tools"):
        arguments = '{"name": "Ada", "age": 36}'
        return ScriptedReply(tool_calls=[{"function": {"name": "Person", "arguments": arguments}}])
    return '{"name": "Ada", "age": 36}'


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_methods(endpoint: LocalEndpoint, method: Any) -> None:
    endpoint.responder = person_reply
    structured = serverless_model(endpoint).with_structured_output(Person, method=method)
    assert structured.invoke("Who?") == Person(name="Ada", age=36)
    body = last_body(endpoint)
    if method == "function_calling":
        assert body["tool_choice"] == "required"
        assert body["tools"][0]["function"]["name"] == "Person"
    elif method == "json_schema":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]
    else:
        assert body["response_format"] == {"type": "json_object"}


def test_structured_output_with_raw_and_dict_schema(endpoint: LocalEndpoint) -> None:
    endpoint.responder = person_reply
    schema = Person.model_json_schema()
    result: Any = serverless_model(endpoint).with_structured_output(schema, include_raw=True).invoke("Who?")
    assert result["parsed"] == {"name": "Ada", "age": 36}
    assert isinstance(result["raw"], AIMessage)
    assert result["parsing_error"] is None


# --- messages in -------------------------------------------------------------------------------------


def test_images_and_names_are_sent_as_content_parts(endpoint: LocalEndpoint) -> None:
    message = HumanMessage(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
        ],
        name="ann",
    )
    serverless_model(endpoint).invoke([message])
    assert last_body(endpoint)["messages"] == [
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]


def test_unsupported_content_blocks_raise_before_sending(endpoint: LocalEndpoint) -> None:
    pdf = HumanMessage([{"type": "file", "base64": "JVBERi0=", "mime_type": "application/pdf", "filename": "a.pdf"}])
    with pytest.raises(InvalidRequestError, match="'file' is not supported"):
        serverless_model(endpoint).invoke([pdf])
    assert endpoint.requests == []


def test_model_override_only_on_chat_routes(endpoint: LocalEndpoint, dedicated: LocalEndpoint) -> None:
    reply = serverless_model(endpoint, model="default-model").invoke("x", model="other-model")
    assert last_body(endpoint)["model"] == "other-model"
    assert reply.response_metadata["model_name"] == "other-model"
    with pytest.raises(InvalidRequestError, match="model= only applies"):
        dedicated_model(dedicated).invoke("x", model="other-model")


def test_stop_sequences(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, stop=["END"])
    chat.invoke("x")
    assert last_body(endpoint)["stop"] == ["END"]
    chat.invoke("x", stop=["HALT"])
    assert last_body(endpoint)["stop"] == ["HALT"]
    chat.invoke("x", stop=[])
    assert "stop" not in last_body(endpoint)


# --- retries, time-outs, errors --------------------------------------------------------------------


def test_retries_work(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(status=503, times=2))
    assert serverless_model(endpoint, max_retries=2).invoke("retry me").content == "retry me"
    assert len(endpoint.requests) == 3


def test_max_retries_zero_raises_the_typed_error(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(status=503))
    with pytest.raises(ServerError) as caught:
        serverless_model(endpoint, max_retries=0).invoke("x")
    assert caught.value.status_code == 503
    assert caught.value.request_id
    assert len(endpoint.requests) == 1


def test_per_call_max_retries_and_timeout(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, max_retries=3, timeout=30)
    endpoint.add_fault(Fault(status=429, times=2))
    with pytest.raises(Exception, match="429"):
        chat.invoke("x", max_retries=1)
    endpoint.add_fault(Fault(delay_before_headers=1.0))
    with pytest.raises(APITimeoutError):
        chat.invoke("x", timeout=0.2, max_retries=0)
    assert "timeout" not in last_body(endpoint)
    assert "max_retries" not in last_body(endpoint)


def test_timeout_setting(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_before_headers=1.0))
    with pytest.raises(APITimeoutError):
        serverless_model(endpoint, timeout=0.2, max_retries=0).invoke("x")


@pytest.mark.asyncio
async def test_async_errors_are_typed(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, max_retries=0)
    endpoint.add_fault(Fault(status=400, body={"error": {"code": "BadParam", "message": "temperature is wrong"}}))
    with pytest.raises(BadRequestError, match="temperature is wrong"):
        await chat.ainvoke("x")
    endpoint.add_fault(Fault(status=401))
    with pytest.raises(AuthenticationError):
        async for _ in chat.astream("x"):
            pass
    await chat.aclose()


def test_ls_params_for_tracing(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, model="Llama-3", temperature=0.2, max_tokens=9, stop=["x"])
    assert chat._get_ls_params() == {
        "ls_provider": "azureml",
        "ls_model_name": "Llama-3",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 9,
        "ls_stop": ["x"],
    }
    assert chat._get_ls_params(model="other", max_tokens=1)["ls_model_name"] == "other"


class FakeCredential:
    """An azure-identity-like credential."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_kwargs: Any) -> Any:
        self.scopes.extend(scopes)
        return types.SimpleNamespace(token="entra-token", expires_on=time.time() + 3600)


def test_entra_credential_wins_over_a_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, dedicated: LocalEndpoint
) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "stale-env-key")
    dedicated.token_validator = lambda token: token == "entra-token"
    credential = FakeCredential()
    chat = AzureMLChatOnlineEndpoint(endpoint_url=dedicated.score_url, credential=credential)
    assert chat.invoke("via entra").content == "via entra"
    assert dedicated.requests[-1].headers["authorization"] == "Bearer entra-token"
    assert credential.scopes == ["https://ml.azure.com/.default"]
    assert "credential" not in chat.model_dump()
    with pytest.raises(ConfigurationError, match="not both"):
        AzureMLChatOnlineEndpoint(endpoint_url=dedicated.score_url, credential=credential, endpoint_api_key="k")


def test_dedicated_vllm_route_with_deployment_and_model(dedicated: LocalEndpoint) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=dedicated.chat_url,
        endpoint_api_type="dedicated",
        endpoint_api_key=API_KEY,
        deployment_name="vllm-blue",
        model="meta-llama-3",
    )
    reply = chat.invoke("vllm")
    request = dedicated.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["azureml-model-deployment"] == "vllm-blue"
    assert request.json == {"model": "meta-llama-3", "messages": [{"role": "user", "content": "vllm"}]}
    assert reply.response_metadata["model_name"] == "meta-llama-3"


# --- every name of the community module, and formatters of one's own ---------------------------


def test_oldest_docs_example_with_the_llama_content_formatter_class(dedicated: LocalEndpoint) -> None:
    """LangChain's first chat docs passed ``content_formatter=LlamaContentFormatter`` (the class);
    langchain_community now raises TypeError for it, here it is the OpenAI-like chat scheme."""
    with pytest.warns(DeprecationWarning, match="LlamaContentFormatter"):
        chat = AzureMLChatOnlineEndpoint(
            endpoint_url=dedicated.score_url, endpoint_api_key=API_KEY, content_formatter=LlamaContentFormatter
        )
    assert chat.invoke([HumanMessage(content=QUESTION)]).content == QUESTION
    assert last_body(dedicated)["input_data"]["input_string"] == [{"role": "user", "content": QUESTION}]


def test_text_prompt_formatters_are_refused_by_the_chat_model(dedicated: LocalEndpoint) -> None:
    with pytest.raises(ConfigurationError, match="GPT2ContentFormatter formats text prompts for AzureMLOnlineEndpoint"):
        dedicated_model(dedicated, content_formatter=GPT2ContentFormatter())


def test_model_specific_keywords_reach_the_body(endpoint: LocalEndpoint, dedicated: LocalEndpoint) -> None:
    serverless_model(endpoint).bind(top_k=5).invoke("x", repetition_penalty=1.1, temperature=0.2)
    assert {key: last_body(endpoint)[key] for key in ("top_k", "repetition_penalty", "temperature")} == {
        "top_k": 5,
        "repetition_penalty": 1.1,
        "temperature": 0.2,
    }
    assert endpoint.requests[-1].headers["extra-parameters"] == "pass-through"
    list(serverless_model(endpoint).stream("x", top_k=3))
    assert last_body(endpoint)["top_k"] == 3
    dedicated_model(dedicated, model_kwargs={"do_sample": True}).invoke("x", top_k=5, max_tokens=7)
    assert last_body(dedicated)["input_data"]["parameters"] == {"do_sample": True, "top_k": 5, "max_new_tokens": 7}


class RecordingFormatter(ContentFormatterBase):
    """A chat formatter of one's own, written as the community docs show (no ``api_type`` default)."""

    seen: list[Any] = []

    @property
    def supported_api_types(self) -> list[AzureMLEndpointApiType]:
        return [AzureMLEndpointApiType.dedicated, AzureMLEndpointApiType.serverless]

    def format_messages_request_payload(self, messages: Any, model_kwargs: Any, api_type: Any) -> str:
        self.seen.append((messages, api_type))
        chat = [{"role": getattr(message, "role", "user"), "content": message.content} for message in messages]
        return json.dumps({"input_data": {"input_string": chat, "parameters": model_kwargs}})

    def format_response_payload(self, output: bytes, api_type: Any) -> ChatGeneration:
        message = AIMessage(content=json.loads(output)["output"], additional_kwargs={"via": "own formatter"})
        return ChatGeneration(message=message, generation_info={"finish_reason": "stop", "api_type": api_type})


def test_own_formatter_gets_the_original_messages_and_the_configured_api_type(dedicated: LocalEndpoint) -> None:
    formatter = RecordingFormatter()
    formatter.seen = []
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=dedicated.score_url, endpoint_api_type="realtime", api_key=API_KEY, content_formatter=formatter
    )
    message = ChatMessage(role="user", content="as sent", id="m-1")
    result = chat.generate([[message]])
    assert formatter.seen[-1] == ([message], AzureMLEndpointApiType.realtime)
    generation = result.generations[0][0]
    assert generation.message.content == "as sent"
    assert generation.message.additional_kwargs == {"via": "own formatter"}
    assert generation.generation_info == {"finish_reason": "stop", "api_type": "realtime"}
    assert [chunk.content for chunk in chat.stream("streamed")] == ["streamed", ""]


def test_overriding_only_the_reply_parser_keeps_the_builtin_body(dedicated: LocalEndpoint) -> None:
    class Shouting(CustomOpenAIChatContentFormatter):
        def format_response_payload(self, output: bytes, api_type: Any = None) -> ChatGeneration:
            return ChatGeneration(message=AIMessage(content=json.loads(output)["output"].upper()))

    reply = dedicated_model(dedicated, content_formatter=Shouting()).invoke("quiet", max_tokens=2)
    assert reply.content == "QUIET"
    assert last_body(dedicated) == {
        "input_data": {"input_string": [{"role": "user", "content": "quiet"}], "parameters": {"max_new_tokens": 2}}
    }
    assert Shouting._convert_message_to_dict(HumanMessage('say "x"\n')) == {"role": "user", "content": 'say "x"\n'}


def test_chat_result_carries_token_usage_for_callbacks(endpoint: LocalEndpoint) -> None:
    class Recorder(BaseCallbackHandler):
        outputs: list[Any] = []

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.outputs.append(response.llm_output)

    recorder = Recorder()
    serverless_model(endpoint, model="local-model").invoke("two words", config={"callbacks": [recorder]})
    assert recorder.outputs[-1] == {
        "model_name": "local-model",
        "token_usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }


def test_dumpd_and_load(monkeypatch: pytest.MonkeyPatch, endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint, model="m", temperature=0.1)
    serialized = dumpd(chat)
    assert API_KEY not in json.dumps(serialized)
    assert serialized["kwargs"]["endpoint_api_type"] == "serverless"
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", API_KEY)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_TYPE", "dedicated")  # must not override what was serialized
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load() is marked beta
        loaded = load(
            serialized,
            valid_namespaces=["azml_chat"],
            allowed_objects=[AzureMLChatOnlineEndpoint],
            secrets_from_env=True,
        )
    assert loaded.invoke("loaded").content == "loaded"
    assert last_body(endpoint) == {
        "temperature": 0.1,
        "model": "m",
        "messages": [{"role": "user", "content": "loaded"}],
    }


def test_every_public_name_of_the_community_modules_exists() -> None:
    import azml_chat.langchain as ours

    community = {
        "llms": [
            "AzureMLBaseEndpoint",
            "AzureMLEndpointApiType",
            "AzureMLEndpointClient",
            "AzureMLOnlineEndpoint",
            "ContentFormatterBase",
            "CustomOpenAIContentFormatter",
            "DollyContentFormatter",
            "GPT2ContentFormatter",
            "HFContentFormatter",
            "LlamaContentFormatter",
            "OSSContentFormatter",
            "DEFAULT_TIMEOUT",
        ],
        "chat_models": [
            "AzureMLChatOnlineEndpoint",
            "CustomOpenAIChatContentFormatter",
            "LlamaChatContentFormatter",
            "LlamaContentFormatter",
            "MistralChatContentFormatter",
        ],
    }
    missing = [name for names in community.values() for name in names if not hasattr(ours, name)]
    assert missing == []
    assert set(ours.__all__) >= {name for names in community.values() for name in names}


@pytest.mark.asyncio
async def test_own_formatter_streams_one_piece_asynchronously(dedicated: LocalEndpoint) -> None:
    chat = dedicated_model(dedicated, content_formatter=RecordingFormatter())
    recorder = TokenRecorder()
    chunks = [chunk async for chunk in chat.astream("async piece", config={"callbacks": [recorder]})]
    assert [chunk.content for chunk in chunks] == ["async piece", ""]
    assert recorder.tokens == ["async piece", ""]
    assert (await chat.ainvoke("async whole")).additional_kwargs == {"via": "own formatter"}
    await chat.aclose()


def test_own_formatter_mistakes_are_typed_and_nothing_is_sent(dedicated: LocalEndpoint) -> None:
    class MissingKey(RecordingFormatter):
        def format_messages_request_payload(self, messages: Any, model_kwargs: Any, api_type: Any) -> str:
            return json.dumps({"temperature": model_kwargs["temperature"]})

    with pytest.raises(InvalidRequestError, match=r"MissingKey\.format_messages_request_payload failed.*KeyError"):
        dedicated_model(dedicated, content_formatter=MissingKey()).invoke("x")
    assert dedicated.requests == []

    class MessageReply(RecordingFormatter):
        def format_response_payload(self, output: bytes, api_type: Any) -> Any:
            return AIMessage(content=json.loads(output)["output"] + "!")

    assert dedicated_model(dedicated, content_formatter=MessageReply()).invoke("a message").content == "a message!"

    class NumberReply(RecordingFormatter):
        def format_response_payload(self, output: bytes, api_type: Any) -> Any:
            return 42

    with pytest.raises(ResponseFormatError, match="returned int"):
        dedicated_model(dedicated, content_formatter=NumberReply()).invoke("x")

    class Xml(RecordingFormatter):
        content_type = "application/xml"

    with pytest.raises(ConfigurationError, match="application/json"):
        dedicated_model(dedicated, content_formatter=Xml())


def test_own_formatter_on_serverless_sends_extras_through_the_gateway(endpoint: LocalEndpoint) -> None:
    class OpenAIBody(RecordingFormatter):
        def format_messages_request_payload(self, messages: Any, model_kwargs: Any, api_type: Any) -> str:
            chat = [{"role": "user", "content": message.content} for message in messages]
            return json.dumps({"messages": chat, **model_kwargs})

        def format_response_payload(self, output: bytes, api_type: Any) -> ChatGeneration:
            return ChatGeneration(message=AIMessage(content=json.loads(output)["choices"][0]["message"]["content"]))

    chat = serverless_model(endpoint, content_formatter=OpenAIBody(), model="ignored-by-own-formatter")
    assert chat.invoke("own body", top_k=2).content == "own body"
    assert last_body(endpoint) == {"messages": [{"role": "user", "content": "own body"}], "top_k": 2}
    assert endpoint.requests[-1].headers["extra-parameters"] == "pass-through"


def test_azml_chat_formatters_are_accepted(dedicated: LocalEndpoint) -> None:
    from azml_chat import PhiChatFormatter

    assert dedicated_model(dedicated, content_formatter=PhiChatFormatter()).invoke("phi").content == "phi"
    assert dedicated_model(dedicated, content_formatter="mistral").invoke("by name").content == "by name"


def test_bad_structured_output_and_tool_choice_arguments(endpoint: LocalEndpoint) -> None:
    chat = serverless_model(endpoint)
    with pytest.raises(InvalidRequestError, match="unsupported arguments"):
        chat.with_structured_output(Person, tools=[])
    with pytest.raises(InvalidRequestError, match="method must be"):
        chat.with_structured_output(Person, method="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="tool_choice must be"):
        chat.bind_tools([get_weather], tool_choice=3)  # type: ignore[arg-type]
    chat.bind_tools([get_weather], parallel_tool_calls=False).invoke("x")
    assert last_body(endpoint)["parallel_tool_calls"] is False
