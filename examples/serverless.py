"""LangChain docs example 2, rewritten: a serverless (pay-as-you-go) chat-completions endpoint.

LangChain:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/v1/chat/completions",
        endpoint_api_type=AzureMLEndpointApiType.serverless,
        endpoint_api_key="my-api-key",
        content_formatter=CustomOpenAIChatContentFormatter,
    )
    response = chat.invoke([HumanMessage(content="Will the Collatz conjecture ever be solved?")])
"""

from __future__ import annotations

from _endpoint import endpoint_settings

from azml_chat import ChatClient

if __name__ == "__main__":
    with endpoint_settings(kind="serverless") as settings:
        chat = ChatClient(**settings, api_type="serverless")
        response = chat.chat("Will the Collatz conjecture ever be solved?")
        print(response.content)
