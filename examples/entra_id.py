"""Entra ID (Azure AD) authentication: pass a credential instead of a key.

With AZUREML_ENDPOINT_URL set it uses azure-identity's DefaultAzureCredential
(``pip install "azml-chat[azure]"``; az login, a managed identity or environment
variables); the token scope follows the endpoint kind (dedicated:
https://ml.azure.com/.default, serverless: https://cognitiveservices.azure.com/.default).
Otherwise a local endpoint checks bearer tokens issued by a stand-in credential.

The token is cached and refreshed before it expires; concurrent calls share one refresh.
Each client keeps its own token cache, so the sync client below asks for its own token.

    python examples/entra_id.py
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, NamedTuple

from azml_chat import AsyncChatClient, ChatClient
from azml_chat.testing import LocalEndpoint


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class DemoCredential:
    """Quacks like azure-identity's credentials: get_token(*scopes) -> (token, expires_on)."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token = f"demo-token-{len(self.issued) + 1}"
        self.issued.append(token)
        print(f"  credential asked for a token, scopes={scopes}")
        return AccessToken(token, int(time.time()) + 3600)


async def main(url: str, credential: Any) -> None:
    async with AsyncChatClient(url, credential=credential) as client:
        replies = await asyncio.gather(*(client.chat(f"question {i}") for i in range(20)))
        print("async:", len(replies), "replies, first:", replies[0].content)


def main_sync(url: str, credential: Any) -> None:
    with ChatClient(url, credential=credential) as client:
        print("sync:", client.chat("Hello with a token").content)


if __name__ == "__main__":
    if os.environ.get("AZUREML_ENDPOINT_URL"):
        from azure.identity import DefaultAzureCredential

        url = os.environ["AZUREML_ENDPOINT_URL"]
        credential = DefaultAzureCredential()  # a sync credential serves both clients
        asyncio.run(main(url, credential))
        main_sync(url, credential)
    else:
        demo = DemoCredential()
        with LocalEndpoint(api_key=None, token_validator=lambda token: token in demo.issued) as endpoint:
            asyncio.run(main(endpoint.url, demo))
            main_sync(endpoint.url, demo)
        print("tokens issued:", demo.issued)
