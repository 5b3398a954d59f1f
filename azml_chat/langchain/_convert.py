"""LangChain values to azml_chat values and back: messages in, replies and stream chunks out,
token usage, ``tool_choice``, and the keyword arguments of one LangChain call."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

from azml_chat.config import ChatParams
from azml_chat.errors import InvalidRequestError
from azml_chat.messages import ChatResponse, ContentPart, ImagePart, Message, StreamChunk, TextPart, ToolCall, Usage

__all__ = [
    "CALL_OPTIONS",
    "ai_message",
    "client_params",
    "generation_chunk",
    "last_chunk",
    "response_metadata",
    "split_call_kwargs",
    "text_of",
    "to_messages",
    "token_usage",
    "tool_choice",
    "usage_metadata",
    "wire_message",
]

#: Keyword arguments of a LangChain call that set how the call runs, not what the body holds.
CALL_OPTIONS = ("timeout", "max_retries")
#: Parameters every chat-completions endpoint knows; anything else is model-specific.
#: What ``chat()``/``stream()`` take by name; anything else is model-specific and goes in ``extra_body``.
PORTABLE_PARAMS = frozenset(ChatParams.__annotations__)


# --- messages in ---------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """The text of LangChain message content: a string, or the text blocks of a list joined."""
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
    )


def wire_message(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message in the OpenAI chat form: text and image parts, tool calls, tool results.

    Assistant and system turns keep their text only (reasoning and ``tool_use`` blocks are
    dropped; tool calls travel in ``tool_calls``). Other block kinds (files, audio) raise
    :class:`InvalidRequestError`: Azure ML chat endpoints take text and images.
    """
    try:
        item: dict[str, Any] = convert_to_openai_messages(message)
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(f"cannot convert a {type(message).__name__}: {exc}") from None
    content = item.get("content")
    if isinstance(content, list):
        if item.get("role") in ("assistant", "system", "developer"):
            item["content"] = text_of(content)
        else:
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind not in ("text", "image_url"):
                    raise InvalidRequestError(
                        f"{item.get('role')} content block of type {kind!r} is not supported: "
                        "Azure ML chat endpoints take text and image parts"
                    )
    return item


def _part(part: Mapping[str, Any]) -> ContentPart:
    if part["type"] == "text":
        return TextPart(part["text"])
    image = part["image_url"]
    if isinstance(image, str):
        return ImagePart(image)
    return ImagePart(image["url"], image.get("detail"))


def _message(item: Mapping[str, Any]) -> Message:
    content = item.get("content")
    if isinstance(content, list):
        content = tuple(_part(part) for part in content)
    calls = tuple(
        ToolCall(call.get("id") or new_call_id(), call["function"]["name"], call["function"].get("arguments") or "{}")
        for call in item.get("tool_calls") or ()
    )
    return Message(
        item["role"], content, name=item.get("name"), tool_calls=calls, tool_call_id=item.get("tool_call_id")
    )


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as azml_chat messages (see :func:`wire_message`)."""
    return [_message(wire_message(message)) for message in messages]


# --- replies out ---------------------------------------------------------------------------


def new_call_id() -> str:
    """An id for a tool call the server sent without one (LangChain matches results by id)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments(call: ToolCall) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded arguments of a tool call, or ``(None, error)`` if they are not a JSON object."""
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return None, f"arguments are not valid JSON: {exc}"
    if not isinstance(args, dict):
        return None, f"arguments are not a JSON object: {call.arguments[:100]!r}"
    return args, None


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """Token counts in LangChain's form (with cached and reasoning tokens when reported)."""
    if usage is None:
        return None
    metadata = UsageMetadata(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )
    if usage.cached_tokens is not None:
        metadata["input_token_details"] = {"cache_read": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        metadata["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return metadata


def token_usage(usages: Sequence[Usage | None]) -> dict[str, int] | None:
    """The summed counts in ``llm_output["token_usage"]`` form (as LangChain's OpenAI classes report)."""
    known = [usage for usage in usages if usage is not None]
    if not known:
        return None
    return {
        "prompt_tokens": sum(usage.prompt_tokens for usage in known),
        "completion_tokens": sum(usage.completion_tokens for usage in known),
        "total_tokens": sum(usage.total_tokens for usage in known),
    }


def response_metadata(reply: ChatResponse, model_name: str | None) -> dict[str, Any]:
    """``finish_reason``, ``model_name``, the reply ``id`` and the service's ``request_id``, when known."""
    found = {
        "model_name": reply.model or model_name,
        "finish_reason": reply.finish_reason,
        "id": reply.id,
        "request_id": reply.request_id,
    }
    return {key: value for key, value in found.items() if value is not None}


def ai_message(reply: ChatResponse, model_name: str | None) -> AIMessage:
    """A whole reply as an ``AIMessage``; tool calls with bad JSON become ``invalid_tool_calls``."""
    calls, invalid = [], []
    for call in reply.tool_calls:
        args, error = _arguments(call)
        call_id = call.id or new_call_id()
        if args is None:
            invalid.append(invalid_tool_call(name=call.name, args=call.arguments, id=call_id, error=error))
        else:
            calls.append(tool_call(name=call.name, args=args, id=call_id))
    extra = {"reasoning_content": reply.reasoning_content} if reply.reasoning_content else {}
    return AIMessage(
        content=reply.content,
        additional_kwargs=extra,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(reply.usage),
        response_metadata=response_metadata(reply, model_name),
    )


def generation_chunk(chunk: StreamChunk) -> ChatGenerationChunk | None:
    """A stream chunk's text and tool-call fragments (``None`` if it has neither); usage and
    metadata go in the last chunk."""
    if not (chunk.content or chunk.tool_calls or chunk.reasoning_content):
        return None
    message = AIMessageChunk(
        content=chunk.content,
        additional_kwargs={"reasoning_content": chunk.reasoning_content} if chunk.reasoning_content else {},
        tool_call_chunks=[
            # a fragment with a name starts a call: give it an id if the server sent none
            tool_call_chunk(
                name=delta.name,
                args=delta.arguments,
                id=delta.id or (new_call_id() if delta.name else None),
                index=delta.index,
            )
            for delta in chunk.tool_calls
        ],
    )
    return ChatGenerationChunk(message=message)


def last_chunk(reply: ChatResponse | None, model_name: str | None) -> ChatGenerationChunk:
    """The closing chunk of a stream: usage and response metadata, no text."""
    usage = usage_metadata(reply.usage) if reply is not None else None
    metadata = response_metadata(reply, model_name) if reply is not None else {}
    message = AIMessageChunk(content="", usage_metadata=usage, response_metadata=metadata, chunk_position="last")
    return ChatGenerationChunk(message=message)


def tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> Any:
    """LangChain's ``tool_choice`` values in the chat-completions form."""
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice in ("auto", "none") or isinstance(choice, Mapping):
        return choice
    if isinstance(choice, str):
        names = [tool["function"]["name"] for tool in tools if isinstance(tool.get("function"), Mapping)]
        if choice not in names:
            raise InvalidRequestError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return {"type": "function", "function": {"name": choice}}
    raise InvalidRequestError(f"tool_choice must be 'auto', 'any', 'none', a tool name or a dict, not {choice!r}")


# --- the keyword arguments of one call -----------------------------------------------------


def split_call_kwargs(kwargs: Mapping[str, Any], stop: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(call options, model parameters) of one ``invoke``/``bind`` call, in new dicts.

    ``timeout`` and ``max_retries`` apply to this call; every other keyword is a model
    parameter for this call only. ``stop=[...]`` replaces the default stop sequences and
    ``stop=[]`` sends none (``None`` removes a default).
    """
    params = {key: value for key, value in kwargs.items() if key != "stream"}
    options = {key: params.pop(key) for key in CALL_OPTIONS if key in params}
    if stop is not None:
        params["stop"] = stop
    if "stop" in params and not params["stop"]:
        params["stop"] = None
    return options, params


def client_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``ChatClient.chat``/``stream`` that carry these model parameters.

    LangChain users pass portable parameters (``temperature``, ``max_tokens``, ``tools``) and
    model-specific ones (``top_k``, ``repetition_penalty``, ``do_sample``) the same way, as
    keywords of ``invoke``/``bind``/``model_kwargs``, and both must keep working. This is the one
    place that decides how the model-specific ones reach the client: in ``extra_body``, sent as
    they are (with an explicit ``extra_body`` merged over them).
    """
    portable = {key: value for key, value in params.items() if key in PORTABLE_PARAMS}
    specific = {key: value for key, value in params.items() if key not in PORTABLE_PARAMS}
    if specific:
        portable["extra_body"] = {**specific, **(portable.get("extra_body") or {})}
    return portable
