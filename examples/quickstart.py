"""Quickstart: one chat round-trip, async and sync.

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set it talks to Azure; otherwise it
starts the embedded local endpoint shipped in azml_chat.testing.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient, ChatClient


async def main(settings: dict[str, str]) -> None:
    async with AsyncChatClient(**settings) as client:
        reply = await client.chat("What is Azure Machine Learning?", temperature=0.8, max_tokens=256)
        print("async:", reply.content)
        print("  finish_reason:", reply.finish_reason, "usage:", reply.usage, "request id:", reply.request_id)


if __name__ == "__main__":
    with endpoint_settings() as settings:
        asyncio.run(main(settings))
        with ChatClient(**settings) as client:
            print("sync:", client.chat("Hello from a script!").content)
