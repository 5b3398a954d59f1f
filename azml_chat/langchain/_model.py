"""``AzureMLChatOnlineEndpoint``: a LangChain ``BaseChatModel`` built on azml_chat's clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_function, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict

from azml_chat.errors import InvalidRequestError
from azml_chat.messages import ChatResponse

from ._convert import (
    ai_message,
    generation_chunk,
    last_chunk,
    token_usage,
    tool_choice,
)
from ._endpoint import AzureMLBaseEndpoint, CallPlan
from ._legacy import LegacyReply

__all__ = ["AzureMLChatOnlineEndpoint"]


class AzureMLChatOnlineEndpoint(AzureMLBaseEndpoint, BaseChatModel):
    """Chat models on Azure ML online endpoints (dedicated ``/score``) and Azure AI serverless endpoints.

    Example::

        chat = AzureMLChatOnlineEndpoint(
            endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
            endpoint_api_type=AzureMLEndpointApiType.dedicated,
            endpoint_api_key="my-api-key",
            content_formatter=CustomOpenAIChatContentFormatter(),
        )
        chat.invoke("Will the Collatz conjecture ever be solved?", max_tokens=512)

    The constructor arguments, environment variables and content formatters of
    ``langchain_community.chat_models.azureml_endpoint`` keep working (see
    :class:`AzureMLBaseEndpoint`). Per-call keyword arguments (``max_tokens=512``,
    ``temperature``, any model-specific knob, and ``timeout``, ``max_retries``) apply to that
    call only. ``invoke``/``stream`` use :class:`azml_chat.ChatClient`; ``ainvoke``/``astream``
    use :class:`azml_chat.AsyncChatClient` (no threads).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="forbid")

    streaming: bool = False
    """Whether ``invoke`` streams internally (callbacks then get tokens as they arrive)."""

    # --- LangChain metadata -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "azureml_chat_endpoint"

    # --- calls --------------------------------------------------------------------------

    def _result(self, reply: ChatResponse) -> ChatResult:
        if isinstance(reply, LegacyReply) and isinstance(reply.generation, ChatGeneration):
            generation = reply.generation  # as the content formatter made it
        else:
            generation = ChatGeneration(
                message=ai_message(reply, self.model_name or self.deployment_name or None),
                generation_info={"finish_reason": reply.finish_reason} if reply.finish_reason else None,
            )
        llm_output = {"model_name": reply.model or self.model_name or self.deployment_name or None}
        usage = token_usage([reply.usage])
        if usage is not None:
            llm_output["token_usage"] = usage  # type: ignore[assignment]
        return ChatResult(generations=[generation], llm_output=llm_output)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = CallPlan(self, stop, kwargs, stream=False, messages=messages)
        return self._result(self._sync_client().chat(call.messages, **call.options, **call.params))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = CallPlan(self, stop, kwargs, stream=False, messages=messages)
        client = await self._async_client()
        return self._result(await client.chat(call.messages, **call.options, **call.params))

    def _whole_reply_chunks(self, reply: ChatResponse) -> list[ChatGenerationChunk]:
        """A reply that came in one piece (from a content formatter of your own), as stream chunks:
        its content, then the closing chunk with metadata, as for other replies."""
        generation = self._result(reply).generations[0]
        message = generation.message
        calls = [
            tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=index)
            for index, call in enumerate(getattr(message, "tool_calls", []))
        ]
        content = AIMessageChunk(
            content=message.content, additional_kwargs=message.additional_kwargs, tool_call_chunks=calls
        )
        closing = AIMessageChunk(
            content="",
            response_metadata=message.response_metadata,
            usage_metadata=getattr(message, "usage_metadata", None),
            chunk_position="last",
        )
        return [
            ChatGenerationChunk(message=content, generation_info=generation.generation_info),
            ChatGenerationChunk(message=closing),
        ]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = CallPlan(self, stop, kwargs, stream=True, messages=messages)
        client = self._sync_client()
        chunks: Iterator[ChatGenerationChunk]
        if call.legacy:
            chunks = iter(self._whole_reply_chunks(client.chat(call.messages, **call.options)))
        else:
            chunks = self._chunks(client.stream(call.messages, **call.options, **call.params))
        for chunk in chunks:
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _chunks(self, stream: Any) -> Iterator[ChatGenerationChunk]:
        with stream:
            for piece in stream:
                generation = generation_chunk(piece)
                if generation is not None:
                    yield generation
            reply = stream.response
        yield last_chunk(reply, self.model_name or self.deployment_name or None)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = CallPlan(self, stop, kwargs, stream=True, messages=messages)
        client = await self._async_client()
        if call.legacy:
            for chunk in self._whole_reply_chunks(await client.chat(call.messages, **call.options)):
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
            return
        async with client.stream(call.messages, **call.options, **call.params) as stream:
            async for piece in stream:
                generation = generation_chunk(piece)
                if generation is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
            reply = stream.response
        chunk = last_chunk(reply, self.model_name or self.deployment_name or None)
        if run_manager:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    # --- tools and structured output ----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, pydantic models, ``BaseTool``s, OpenAI tool dicts) to the model.

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (call some
        tool), or a tool name (call that tool).
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        bound = dict(kwargs)
        if tool_choice is not None and tool_choice is not False:
            bound["tool_choice"] = _tool_choice(tool_choice, formatted)
        if parallel_tool_calls is not None:
            bound["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **bound)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable returning ``schema`` instances (pydantic) or dicts (TypedDict, JSON schema).

        ``method``: ``"function_calling"`` (a forced tool call; most widely supported),
        ``"json_schema"`` (``response_format`` with the schema) or ``"json_mode"``
        (``response_format={"type": "json_object"}``; say the keys in the prompt).
        """
        if kwargs:
            raise InvalidRequestError(f"with_structured_output got unsupported arguments {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema, strict=strict)
            llm = self.bind_tools([tool], tool_choice="any", strict=strict, ls_structured_output_format=trace)
            name = tool["function"]["name"]
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                function = convert_to_openai_function(schema, strict=strict)
                json_schema = {"name": function["name"], "schema": function.get("parameters", {})}
                if strict is not None:
                    json_schema["strict"] = strict
                response_format: dict[str, Any] = {"type": "json_schema", "json_schema": json_schema}
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise InvalidRequestError(
                f"method must be 'function_calling', 'json_schema' or 'json_mode', not {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


_tool_choice = tool_choice  # the parameter of bind_tools shadows the function's name there
