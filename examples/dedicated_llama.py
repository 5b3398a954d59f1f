"""LangChain docs example 1, rewritten: a Llama chat model on a dedicated (/score) endpoint.

LangChain:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
        endpoint_api_type=AzureMLEndpointApiType.dedicated,
        endpoint_api_key="my-api-key",
        content_formatter=CustomOpenAIChatContentFormatter(),
    )
    response = chat.invoke([HumanMessage(content="Will the Collatz conjecture ever be solved?")])
"""

from __future__ import annotations

from _endpoint import endpoint_settings

from azml_chat import ChatClient

if __name__ == "__main__":
    with endpoint_settings(kind="dedicated", family="llama") as settings:
        chat = ChatClient(**settings, api_type="dedicated", formatter="llama")
        response = chat.chat("Will the Collatz conjecture ever be solved?")
        print(response.content)
