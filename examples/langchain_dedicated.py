"""LangChain docs example "Chat completions with real-time endpoints", with only the import changed.

Runs against your dedicated ``/score`` endpoint when ``AZUREML_ENDPOINT_URL`` (and
``AZUREML_ENDPOINT_API_KEY``) are set, else against an embedded local endpoint started here::

    python examples/langchain_dedicated.py
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
    with endpoint_settings(kind="dedicated", family="llama") as settings:
        chat = AzureMLChatOnlineEndpoint(
            endpoint_url=settings[
                "endpoint_url"
            ],  # "https://<your-endpoint>.<your_region>.inference.ml.azure.com/score"
            endpoint_api_type=AzureMLEndpointApiType.dedicated,
            endpoint_api_key=settings["api_key"],  # "my-api-key"
            content_formatter=CustomOpenAIChatContentFormatter(),
        )
        response = chat.invoke([HumanMessage(content="Will the Collatz conjecture ever be solved?")])
        print(response.content)
        chat.close()


if __name__ == "__main__":
    main()
