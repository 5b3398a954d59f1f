"""``AzureMLOnlineEndpoint``: LangChain's text-completion (LLM) class for Azure ML endpoints,
built on azml_chat's clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import ChatGeneration, Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict

from azml_chat.messages import ChatResponse, Usage

from ._convert import token_usage
from ._endpoint import AzureMLBaseEndpoint, CallPlan
from ._legacy import LegacyReply

__all__ = ["AzureMLOnlineEndpoint"]


def _generation(reply: ChatResponse) -> Generation:
    if isinstance(reply, LegacyReply) and reply.generation is not None:
        made = reply.generation  # as the content formatter made it
        if isinstance(made, ChatGeneration):  # a chat formatter used for prompts: keep its text
            return Generation(text=made.text, generation_info=made.generation_info)
        return made
    return Generation(text=reply.content, generation_info={"finish_reason": reply.finish_reason})


class AzureMLOnlineEndpoint(AzureMLBaseEndpoint, BaseLLM):
    """Text completion on Azure ML online endpoints: the drop-in counterpart of
    ``langchain_community.llms.azureml_endpoint.AzureMLOnlineEndpoint``.

    Example::

        llm = AzureMLOnlineEndpoint(
            endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
            endpoint_api_type=AzureMLEndpointApiType.dedicated,
            endpoint_api_key="my-api-key",
            content_formatter=GPT2ContentFormatter(),
            model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        )
        llm.invoke("Write me a song about sparkling water:")

    The constructor arguments, environment variables and content formatters of the LangChain
    class keep working (see :class:`AzureMLBaseEndpoint`); ``content_formatter`` defaults to
    :class:`CustomOpenAIContentFormatter`. On a chat-completions URL (serverless endpoints,
    vLLM containers) the prompt is sent as one user message and ``stream``/``astream`` stream
    token by token; dedicated ``/score`` endpoints answer in one piece. ``ainvoke``/``astream``
    run on :class:`azml_chat.AsyncChatClient` (no threads). ``llm_output["token_usage"]``
    carries the token counts when the endpoint reports them.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="forbid")

    _takes_prompts: ClassVar[bool] = True

    # --- LangChain metadata -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "azureml_endpoint"

    # --- calls --------------------------------------------------------------------------

    def _result(self, replies: list[ChatResponse]) -> LLMResult:
        llm_output: dict[str, Any] = {"model_name": self.model_name or self.deployment_name or None}
        usage = token_usage([reply.usage for reply in replies])
        if usage is not None:
            llm_output["token_usage"] = usage
        return LLMResult(generations=[[_generation(reply)] for reply in replies], llm_output=llm_output)

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        client = self._sync_client()
        replies = []
        for prompt in prompts:
            call = CallPlan(self, stop, kwargs, stream=False, prompt=prompt)
            replies.append(client.chat(call.messages, **call.options, **call.params))
        return self._result(replies)

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        client = await self._async_client()
        replies = []
        for prompt in prompts:
            call = CallPlan(self, stop, kwargs, stream=False, prompt=prompt)
            replies.append(await client.chat(call.messages, **call.options, **call.params))
        return self._result(replies)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        call = CallPlan(self, stop, kwargs, stream=True, prompt=prompt)
        client = self._sync_client()
        if call.streams:
            chunks: Iterator[GenerationChunk] = _text_chunks(
                client.stream(call.messages, **call.options, **call.params)
            )
        else:
            chunks = iter(_whole_reply(client.chat(call.messages, **call.options, **call.params)))
        for chunk in chunks:
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        call = CallPlan(self, stop, kwargs, stream=True, prompt=prompt)
        client = await self._async_client()
        if not call.streams:
            for chunk in _whole_reply(await client.chat(call.messages, **call.options, **call.params)):
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
            return
        async with client.stream(call.messages, **call.options, **call.params) as stream:
            async for piece in stream:
                if piece.content:
                    chunk = GenerationChunk(text=piece.content)
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        closing = _closing_chunk(stream.response)
        if run_manager:
            await run_manager.on_llm_new_token(closing.text, chunk=closing)
        yield closing


def _info(reply: ChatResponse | None) -> dict[str, Any]:
    """What a streamed reply's closing chunk tells: the finish reason and the token counts."""
    if reply is None:
        return {}
    usage: Usage | None = reply.usage
    info: dict[str, Any] = {"finish_reason": reply.finish_reason}
    if usage is not None:
        info["token_usage"] = token_usage([usage])
    return info


def _closing_chunk(reply: ChatResponse | None) -> GenerationChunk:
    return GenerationChunk(text="", generation_info=_info(reply) or None)


def _text_chunks(stream: Any) -> Iterator[GenerationChunk]:
    with stream:
        for piece in stream:
            if piece.content:
                yield GenerationChunk(text=piece.content)
    yield _closing_chunk(stream.response)


def _whole_reply(reply: ChatResponse) -> list[GenerationChunk]:
    """A reply that came in one piece (``/score`` endpoints cannot stream) as stream chunks."""
    generation = _generation(reply)
    return [GenerationChunk(text=generation.text, generation_info=generation.generation_info)]
