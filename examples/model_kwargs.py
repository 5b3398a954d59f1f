"""LangChain docs example 3, rewritten: default parameters (model_kwargs) and a per-call max_tokens.

LangChain:
    chat = AzureMLChatOnlineEndpoint(..., model_kwargs={"temperature": 0.8})
    response = chat.invoke([HumanMessage(content="Will the Collatz conjecture ever be solved?")], max_tokens=512)

Unlike LangChain, the per-call max_tokens is used for that call only: it never leaks
into model_kwargs or the next call.
"""

from __future__ import annotations

import asyncio

from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient


async def main(settings: dict[str, str]) -> None:
    async with AsyncChatClient(**settings, model_kwargs={"temperature": 0.8}) as chat:
        response = await chat.chat("Will the Collatz conjecture ever be solved?", max_tokens=512)
        print(response.content)
        print("defaults are unchanged:", chat.model_kwargs)


if __name__ == "__main__":
    with endpoint_settings(kind="serverless") as settings:
        asyncio.run(main(settings))
