"""LangChain docs example "LlaMa 2 completions with real-time endpoints" for the LLM class
(``AzureMLOnlineEndpoint``), with only the import changed (and ``CustomOpenAIContentFormatter``,
the current name of the deprecated ``LlamaContentFormatter``).

Runs against your dedicated ``/score`` endpoint when ``AZUREML_ENDPOINT_URL`` (and
``AZUREML_ENDPOINT_API_KEY``) are set, else against an embedded local endpoint started here::

    python examples/langchain_llm.py
"""

from __future__ import annotations

import asyncio

from _endpoint import endpoint_settings

# was: from langchain_community.llms.azureml_endpoint import (...)
from azml_chat.langchain import (
    AzureMLEndpointApiType,
    AzureMLOnlineEndpoint,
    CustomOpenAIContentFormatter,
)


def main() -> None:
    with endpoint_settings(kind="dedicated", family="text-generation") as settings:
        llm = AzureMLOnlineEndpoint(
            endpoint_url=settings[
                "endpoint_url"
            ],  # "https://<your-endpoint>.<your_region>.inference.ml.azure.com/score"
            endpoint_api_type=AzureMLEndpointApiType.dedicated,
            endpoint_api_key=settings["api_key"],  # "my-api-key"
            content_formatter=CustomOpenAIContentFormatter(),
            model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        )
        print(llm.invoke("Write me a song about sparkling water:"))
        # Model parameters can also be given per call; they apply to that call only.
        print(llm.invoke("Write me a song about sparkling water:", temperature=0.5))
        # New with azml_chat: native async (no thread pool), retries and typed errors.
        print(asyncio.run(llm.ainvoke("Write me a haiku about tea:")))
        llm.close()


if __name__ == "__main__":
    main()
