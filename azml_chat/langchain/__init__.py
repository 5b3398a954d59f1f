"""LangChain adapter: drop-in counterparts of LangChain's Azure ML integration, built on azml_chat.

Switch from ``langchain_community`` by changing the import::

    # from langchain_community.chat_models.azureml_endpoint import (...)
    # from langchain_community.llms.azureml_endpoint import (...)
    from azml_chat.langchain import (
        AzureMLChatOnlineEndpoint,    # chat model (BaseChatModel)
        AzureMLOnlineEndpoint,        # text completion (BaseLLM)
        AzureMLEndpointApiType,
        CustomOpenAIChatContentFormatter,
        GPT2ContentFormatter,
    )

Every public name of ``langchain_community.llms.azureml_endpoint`` and
``langchain_community.chat_models.azureml_endpoint`` is here, with the same constructor
arguments (``endpoint_url``, ``endpoint_api_type``, ``endpoint_api_key``, ``deployment_name``,
``content_formatter`` as an instance or a class, ``model_kwargs``, ``timeout``,
``max_retries``), ``AZUREML_*`` environment variables and content formatters, including your
own ``ContentFormatterBase`` subclasses. On top come true async (``ainvoke``/``astream`` on
``AsyncChatClient``), streaming, tool calling, structured output, token usage, working retries
and time-outs, and typed errors from :mod:`azml_chat.errors`.

This is the only part of azml_chat that imports ``langchain_core``; it needs the ``langchain``
extra: ``pip install "azml-chat[langchain]"``.
"""

from __future__ import annotations


class LangChainNotInstalledError(ImportError):
    """``langchain-core`` is missing: install the extra with ``pip install "azml-chat[langchain]"``."""


try:
    from ._endpoint import DEFAULT_TIMEOUT, AzureMLBaseEndpoint, AzureMLEndpointClient
    from ._legacy import (
        AzureMLEndpointApiType,
        ContentFormatterBase,
        CustomOpenAIChatContentFormatter,
        CustomOpenAIContentFormatter,
        DollyContentFormatter,
        GPT2ContentFormatter,
        HFContentFormatter,
        LlamaChatContentFormatter,
        LlamaContentFormatter,
        MistralChatContentFormatter,
        OSSContentFormatter,
    )
    from ._llm import AzureMLOnlineEndpoint
    from ._model import AzureMLChatOnlineEndpoint
except ImportError as _exc:
    if (_exc.name or "").partition(".")[0] not in ("langchain_core", "pydantic"):
        raise
    raise LangChainNotInstalledError(
        "azml_chat.langchain needs langchain-core, which is not installed or failed to import "
        f'({_exc}): install azml-chat[langchain] (pip install "azml-chat[langchain]")',
        name="langchain_core",
    ) from _exc

__all__ = [
    "DEFAULT_TIMEOUT",
    "AzureMLBaseEndpoint",
    "AzureMLChatOnlineEndpoint",
    "AzureMLEndpointApiType",
    "AzureMLEndpointClient",
    "AzureMLOnlineEndpoint",
    "ContentFormatterBase",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "LangChainNotInstalledError",
    "LlamaChatContentFormatter",
    "LlamaContentFormatter",
    "MistralChatContentFormatter",
    "OSSContentFormatter",
]
