"""Formatter registry, request bodies per model family and every dedicated reply shape."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from azml_chat import (
    ChatFormatter,
    ChatResponse,
    ConfigurationError,
    Message,
    ModelError,
    ResponseFormatError,
    available_formatters,
    family_for_model,
    get_formatter,
    register_formatter,
)
from azml_chat.formatters import (
    LlamaChatFormatter,
    MistralChatFormatter,
    OpenAIChatFormatter,
    PhiChatFormatter,
    TextGenerationFormatter,
    parse_dedicated_reply,
)

CHAT = (Message.system("Be brief."), Message.user('Say "hi"\n'))


def test_registry_names_and_aliases() -> None:
    names = available_formatters()
    for name in ("openai", "llama", "mistral", "phi", "text-generation", "gpt2", "dolly", "hf"):
        assert name in names
    assert isinstance(get_formatter("Mistral"), MistralChatFormatter)
    assert isinstance(get_formatter("dolly"), TextGenerationFormatter)
    assert isinstance(get_formatter(PhiChatFormatter), PhiChatFormatter)
    instance = LlamaChatFormatter(legacy_inputs=True)
    assert get_formatter(instance) is instance


def test_register_custom_formatter() -> None:
    class Echo(ChatFormatter):
        name: ClassVar[str] = "echo-test"

        def format_request(self, messages: tuple[Message, ...], params: Any) -> Any:
            return {"q": messages[-1].text}

        def parse_response(self, payload: Any) -> str:
            return str(payload["a"])

    register_formatter("echo-test", Echo, aliases=("echo-alias",))
    assert isinstance(get_formatter("echo-alias"), Echo)
    with pytest.raises(ConfigurationError, match="already registered"):
        register_formatter("echo-test", Echo)
    shared = Echo()
    register_formatter("echo-test", shared, replace=True)
    assert get_formatter("echo-test") is shared
    with pytest.raises(ConfigurationError, match="must be a ChatFormatter"):
        register_formatter("bad", 3)  # type: ignore[arg-type]


def test_family_for_model() -> None:
    assert family_for_model("Mistral-large-2407") == "mistral"
    assert family_for_model("Phi-3.5-mini-instruct") == "phi"
    assert family_for_model("Meta-Llama-3-8B-Instruct") == "llama"
    assert family_for_model("databricks-dolly-v2-12b") == "text-generation"
    assert family_for_model("unknown") == "llama"


def test_hf_chat_body_maps_max_tokens() -> None:
    body = LlamaChatFormatter().format_request(CHAT, {"max_tokens": 5, "temperature": 0.1})
    assert body == {
        "input_data": {
            "input_string": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": 'Say "hi"\n'}],
            "parameters": {"max_new_tokens": 5, "temperature": 0.1},
        }
    }
    legacy = LlamaChatFormatter(legacy_inputs=True).format_request(CHAT, {})
    assert set(legacy) == {"inputs", "parameters"}


def test_mistral_merges_system_into_first_user_turn() -> None:
    body = MistralChatFormatter().format_request(CHAT, {})
    assert body["input_data"]["input_string"] == [{"role": "user", "content": 'Be brief.\n\nSay "hi"\n'}]
    only_system = MistralChatFormatter().format_request((Message.system("Rules."),), {})
    assert only_system["input_data"]["input_string"] == [{"role": "user", "content": "Rules."}]
    with_history = MistralChatFormatter().format_request(
        (Message.system("S"), Message.assistant("earlier"), Message.user("u")), {}
    )
    assert with_history["input_data"]["input_string"][0] == {"role": "user", "content": "S"}


def test_text_generation_prompt() -> None:
    formatter = TextGenerationFormatter()
    assert formatter.format_request((Message.user("Once upon"),), {})["input_data"]["input_string"] == ["Once upon"]
    prompt = formatter.format_request(CHAT, {})["input_data"]["input_string"][0]
    assert prompt == 'System: Be brief.\n\nUser: Say "hi"\n\n\nAssistant:'


def test_openai_body_and_extra_parameters_header() -> None:
    formatter = OpenAIChatFormatter()
    body = formatter.format_request(CHAT, {"max_new_tokens": 9, "temperature": 0})
    assert body["max_tokens"] == 9 and "max_new_tokens" not in body
    assert formatter.request_headers(body) == {}  # extra-parameters is the core's decision (test_core)


@pytest.mark.parametrize(
    "payload",
    [
        {"output": "the answer"},
        [{"0": "the answer"}],
        [{"generated_text": "the answer"}],
        {"output": ["the answer"]},
        ["the answer"],
        json.dumps({"output": "the answer"}),
        json.dumps(json.dumps({"output": "the answer"})),
        {"output": [{"generated_text": "the answer"}]},
        "the answer",
    ],
)
def test_every_dedicated_reply_shape(payload: Any) -> None:
    assert parse_dedicated_reply(payload) == "the answer"


def test_openai_like_dedicated_reply() -> None:
    parsed = parse_dedicated_reply(
        {
            "id": "x1",
            "model": "m",
            "choices": [
                {"message": {"role": "assistant", "content": "<think>hmm</think> 42"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 1}},
        }
    )
    assert isinstance(parsed, ChatResponse)
    assert (parsed.content, parsed.reasoning_content, parsed.finish_reason, parsed.id) == ("42", "hmm", "stop", "x1")
    assert parsed.usage is not None and parsed.usage.total_tokens == 5 and parsed.usage.reasoning_tokens == 1


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "empty body"),
        ({"output": None, "error": {"code": "E1", "message": "CUDA out of memory"}}, "CUDA out of memory"),
        ({"error": "model crashed"}, "model crashed"),
        ([{"error": "bad"}], "bad"),
        (None, "empty body"),
        ([], "empty body"),
    ],
)
def test_errors_sent_with_200(payload: Any, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment) as info:
        parse_dedicated_reply(payload)
    assert info.value.status_code == 200


@pytest.mark.parametrize("payload", [{"result": 1}, [1], 7, [{"x": 1}]])
def test_unknown_shapes_raise_response_format_error(payload: Any) -> None:
    with pytest.raises(ResponseFormatError, match="unrecognized"):
        parse_dedicated_reply(payload)


@pytest.mark.parametrize(
    "payload",
    [{"choices": []}, {"choices": [{"index": 0}]}, {"choices": [{"message": {"content": 5}}]}, {"nothing": 1}],
)
def test_malformed_chat_completions(payload: Any) -> None:
    with pytest.raises(ResponseFormatError):
        OpenAIChatFormatter().parse_response(payload)
