"""LangChain docs example "Chat completions with pay-as-you-go deployments (model as a service)",
with only the import changed (note ``content_formatter`` is the class here, as in the docs).

Runs against your serverless endpoint when ``AZUREML_ENDPOINT_URL`` (and
``AZUREML_ENDPOINT_API_KEY``) are set, else against an embedded local endpoint started here::

    python examples/langchain_serverless.py
"""

from __future__ import annotations

from _endpoint import endpoint_settings
from langchain_core.messages import HumanMessage

# was: from langchain_community.chat_models.azureml_endpoint import (...)
from azml_chat.langchain import (
    AzureMLChatOnlineEndpoint,
    AzureMLEndpointApiType,
    CustomOpenAIChatContentFormatter,
)


def main() -> None:
    with endpoint_settings(kind="serverless") as settings:
        chat = AzureMLChatOnlineEndpoint(
            endpoint_url=settings[
                "endpoint_url"
            ],  # "https://<your-endpoint>.<your_region>.inference.ml.azure.com/v1/chat/completions"
            endpoint_api_type=AzureMLEndpointApiType.serverless,
            endpoint_api_key=settings["api_key"],  # "my-api-key"
            content_formatter=CustomOpenAIChatContentFormatter,
        )
        response = chat.invoke([HumanMessage(content="Will the Collatz conjecture ever be solved?")])
        print(response.content)
        # New with azml_chat: real streaming and token usage.
        for chunk in chat.stream("Count to five."):
            print(chunk.content, end="", flush=True)
        print()
        print(response.usage_metadata)
        chat.close()


if __name__ == "__main__":
    main()
