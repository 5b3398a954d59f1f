"""Streaming: print the reply as it arrives, get the assembled response (with usage) at the end.

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set (a serverless endpoint) it talks to
Azure; otherwise it starts the embedded local endpoint, which streams word by word.
Dedicated (/score) endpoints cannot stream: there the whole reply arrives as one chunk.

    python examples/streaming.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient, ChatClient


async def main(settings: dict[str, Any]) -> None:
    async with AsyncChatClient(**settings) as client:
        # include_usage asks for a last chunk carrying the token counts
        async with client.stream("Tell me a short story about a kettle.", stream_options={"include_usage": True}) as s:
            async for chunk in s:
                print(chunk.content, end="", flush=True)
        print()
        reply = s.response
        assert reply is not None
        print(f"[finish_reason={reply.finish_reason} usage={reply.usage} elapsed={reply.elapsed:.3f}s]")

        # Leaving early (break) closes the response: no connection is leaked.
        async with client.stream("Count to one hundred, please, one number per word.") as s:
            words = 0
            async for chunk in s:
                words += bool(chunk.content)
                if words == 3:
                    break
        print("stopped after", words, "pieces")


def main_sync(settings: dict[str, Any]) -> None:
    with ChatClient(**settings) as client, client.stream("Hello from the sync client!") as s:
        for chunk in s:
            print(chunk.content, end="", flush=True)
    print()
    print("sync reply:", repr(s.get_final_response().content))


if __name__ == "__main__":
    with endpoint_settings() as settings:
        asyncio.run(main(settings))
        main_sync(settings)
