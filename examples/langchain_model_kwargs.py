"""LangChain docs example: extra model parameters with ``model_kwargs``, and per-call parameters
(``max_tokens=512``), with only the import changed. Per-call parameters apply to that call only.

Runs against your serverless endpoint when ``AZUREML_ENDPOINT_URL`` (and
``AZUREML_ENDPOINT_API_KEY``) are set, else against an embedded local endpoint started here::

    python examples/langchain_model_kwargs.py
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
            model_kwargs={"temperature": 0.8},
        )
        response = chat.invoke(
            [HumanMessage(content="Will the Collatz conjecture ever be solved?")],
            max_tokens=512,
        )
        print(response.content)
        print(chat.model_kwargs)  # still {'temperature': 0.8}: max_tokens did not leak into it
        chat.close()


if __name__ == "__main__":
    main()
