"""What the chat model and the LLM class share: their settings (``AzureMLBaseEndpoint``, as in
``langchain_community``), the clients they make on first use, and ``AzureMLEndpointClient``."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Self, TypedDict

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LangSmithParams
from langchain_core.messages import BaseMessage
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from azml_chat import AsyncChatClient, ChatClient, ChatHooks, RetryPolicy
from azml_chat.config import Endpoint, parse_endpoint
from azml_chat.errors import ConfigurationError, InvalidRequestError
from azml_chat.formatters import ChatFormatter
from azml_chat.messages import Message

from ._convert import client_params, split_call_kwargs, to_messages
from ._legacy import (
    AzureMLEndpointApiType,
    ContentFormatterBase,
    FormatterPlan,
    body_text,
    build_body,
    plan_formatter,
    preformatted,
)

__all__ = ["DEFAULT_TIMEOUT", "AzureMLBaseEndpoint", "AzureMLEndpointClient", "CallPlan", "Settings"]

DEFAULT_TIMEOUT = 50


class Settings(NamedTuple):
    """What a model works out from its fields: where to call, the api type its content formatter
    is told, and how the formatter runs."""

    endpoint: Endpoint
    api_type: AzureMLEndpointApiType
    plan: FormatterPlan

    @property
    def chat_route(self) -> bool:
        """Whether the URL is a chat-completions route (OpenAI body, streaming), not ``/score``."""
        return self.endpoint.route != "score"


class ClientArgs(TypedDict):
    """The keyword arguments both clients are made with (type-checked against their signatures)."""

    api_key: str | None
    api_type: str
    deployment_name: str | None
    formatter: str | ChatFormatter | None
    model: str | None
    model_kwargs: Mapping[str, Any]
    timeout: float | None
    max_retries: int
    retry_policy: RetryPolicy | None
    credential: Any
    api_version: str | None
    hooks: Sequence[ChatHooks] | None


def _loop_key() -> object:
    """The running event loop (each has its own connections); one key per thread elsewhere (trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return ("thread", threading.get_ident())


class Clients:
    """The HTTP clients of one model object, made on first use, and the settings worked out
    from its fields.

    Copies and pickles of the model start with an empty holder: clients own sockets, locks and
    event-loop state that cannot be copied, and a copy's settings must follow its own fields
    (``model_copy(update=...)``). The sync client is closed when the model is garbage collected
    (one finalizer per holder, however often it is closed and reopened); each event loop's
    async client is closed when that loop shuts down (``asyncio.run`` and pytest-asyncio close
    the async generators of a loop before closing it; trio does the same at the end of a run).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: Settings | None = None
        self.sync: ChatClient | None = None
        self.by_loop: dict[object, tuple[AsyncChatClient, AsyncGenerator[None, None]]] = {}
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Clients:
        return Clients()

    def __reduce__(self) -> tuple[type[Clients], tuple[()]]:
        return (Clients, ())

    def sync_client(self, owner: object, make: Callable[[], ChatClient]) -> ChatClient:
        """The sync client, made by ``make`` on first use."""
        with self.lock:
            if self.sync is None:
                self.sync = make()
                if self.finalizer is None:
                    self.finalizer = weakref.finalize(owner, self.close_sync)
            return self.sync

    def close_sync(self) -> None:
        """Close the sync client (a later call makes a new one)."""
        with self.lock:
            client, self.sync = self.sync, None
        if client is not None:
            client.close()

    async def async_client(self, make: Callable[[], AsyncChatClient]) -> AsyncChatClient:
        """The running event loop's async client, made by ``make`` on first use in that loop."""
        key = _loop_key()
        with self.lock:
            entry = self.by_loop.get(key)
            if entry is not None:
                return entry[0]
            for stale in [k for k in self.by_loop if isinstance(k, asyncio.AbstractEventLoop) and k.is_closed()]:
                del self.by_loop[stale]  # its loop closed without shutting down: nothing can close it now
            client = make()
            closer = self._close_with_loop(key, client)
            self.by_loop[key] = (client, closer)
        await closer.__anext__()  # runs to its ``yield`` at once: from now on the loop's shutdown closes it
        return client

    async def _close_with_loop(self, key: object, client: AsyncChatClient) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self.lock:
                if key in self.by_loop and self.by_loop[key][0] is client:
                    del self.by_loop[key]
            await client.aclose()

    async def aclose_current(self) -> None:
        """Close the running event loop's async client."""
        with self.lock:
            entry = self.by_loop.pop(_loop_key(), None)
        if entry is not None:
            await entry[1].aclose()  # its ``finally`` closes the client


class AzureMLBaseEndpoint(BaseModel):
    """Settings of Azure ML online endpoint models, shared by :class:`AzureMLChatOnlineEndpoint`
    and :class:`AzureMLOnlineEndpoint` (the counterpart of LangChain's ``AzureMLBaseEndpoint``).

    ``endpoint_url``, ``endpoint_api_key``, ``deployment_name``, ``endpoint_api_type`` and
    ``timeout`` default to ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``,
    ``AZUREML_DEPLOYMENT_NAME``, ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT``.
    ``endpoint_api_type`` is inferred from the URL when unset. The model makes one
    :class:`azml_chat.ChatClient` and one :class:`azml_chat.AsyncChatClient` per event loop on
    first use and reuses them; :meth:`close` / :meth:`aclose` release their connections.
    ``copy.deepcopy``, ``model_copy()`` and ``pickle`` give models with clients of their own
    (an Entra ID ``credential`` is shared, not copied).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="forbid")

    endpoint_url: str = Field(default_factory=from_env("AZUREML_ENDPOINT_URL", default=""))
    """The scoring URL (``.../score``) or chat-completions URL; env ``AZUREML_ENDPOINT_URL``."""
    endpoint_api_type: AzureMLEndpointApiType | None = Field(
        default_factory=from_env("AZUREML_ENDPOINT_API_TYPE", default=None), validate_default=True
    )
    """``dedicated`` / ``serverless`` (``realtime`` = dedicated); ``None`` infers it from the URL."""
    endpoint_api_key: SecretStr | None = Field(
        default_factory=secret_from_env("AZUREML_ENDPOINT_API_KEY", default=None), alias="api_key"
    )
    """The endpoint key (never shown or serialized); env ``AZUREML_ENDPOINT_API_KEY``."""
    deployment_name: str = Field(default_factory=from_env("AZUREML_DEPLOYMENT_NAME", default=""))
    """Pins one deployment (header ``azureml-model-deployment``); env ``AZUREML_DEPLOYMENT_NAME``."""
    content_formatter: Any = None
    """A content formatter instance or class, an ``azml_chat.ChatFormatter`` or a family name."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Default model parameters sent with every call (never modified by calls)."""
    timeout: float | None = Field(
        default_factory=from_env("AZUREML_TIMEOUT", default=str(DEFAULT_TIMEOUT)), validate_default=True
    )
    """Seconds each attempt may take; env ``AZUREML_TIMEOUT`` (default 50)."""
    max_retries: int = 2
    """Retries of 408/429/5xx replies and connection failures, with backoff."""
    model_name: str | None = Field(default=None, alias="model")
    """The ``model`` sent on chat-completions routes (Foundry multi-model and vLLM endpoints)."""
    temperature: float | None = None
    """Sampling temperature (default: the model's)."""
    max_tokens: int | None = None
    """Most tokens to generate (``max_new_tokens`` on Hugging Face containers)."""
    stop: list[str] | None = None
    """Stop sequences."""
    stream_usage: bool = True
    """Ask chat-completions streams for token usage (``stream_options={"include_usage": true}``)."""
    api_version: str | None = None
    """``api-version`` for the routes that take one; ``None``: the route's own default
    (``2024-05-01-preview`` on Azure AI model inference routes, ``2024-10-21`` on Azure OpenAI
    deployment routes, none on ``/openai/v1``)."""
    credential: Any = Field(default=None, exclude=True)
    """An Azure Entra ID credential (``azure.identity``) instead of a key."""
    retry_policy: RetryPolicy | None = Field(default=None, exclude=True)
    """Backoff between retries (default: :class:`azml_chat.RetryPolicy`)."""
    hooks: Sequence[ChatHooks] | None = Field(default=None, exclude=True)
    """:class:`azml_chat.ChatHooks` told about every call and attempt (e.g.
    ``azml_chat.otel.OpenTelemetryHooks()``), besides the defaults of ``instrument()``."""

    _clients: Clients = PrivateAttr(default_factory=Clients)
    #: Whether the model sends one text prompt per call (the LLM class) rather than a chat.
    _takes_prompts: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.credential is not None:
            if "endpoint_api_key" in self.model_fields_set and self.endpoint_api_key is not None:
                raise ConfigurationError("pass either endpoint_api_key or credential, not both")
            self.endpoint_api_key = None  # a key from AZUREML_ENDPOINT_API_KEY yields to the credential
        self._resolve()

    @field_validator("endpoint_api_type", mode="before")
    @classmethod
    def _api_type(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("model_kwargs", mode="before")
    @classmethod
    def _model_kwargs(cls, value: Any) -> Any:
        return {} if value is None else value

    # --- copies ---------------------------------------------------------------------------

    def __copy__(self) -> Self:
        copied = super().__copy__()
        copied._clients = Clients()
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        if self.credential is not None:
            memo[id(self.credential)] = self.credential  # a credential is a service (token cache, locks): share it
        return super().__deepcopy__(memo)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with clients of its own; ``update`` values are checked like constructor arguments."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            if "endpoint_url" in update and not {"endpoint_api_type"} & (update.keys() | self.model_fields_set):
                copied.__dict__["endpoint_api_type"] = None  # it was inferred from the old URL: infer it again
            copied._resolve()
        return copied

    # --- settings -----------------------------------------------------------------------------

    def _resolve(self) -> None:
        """Check the settings now (bad ones fail here, not at the first call) and fill in the
        inferred ``endpoint_api_type``, so that it shows and survives serialization."""
        settings = self._settings()
        if self.endpoint_api_type is None:
            self.__dict__["endpoint_api_type"] = settings.api_type  # inferred, not set: fields_set stays as it is

    def _settings(self) -> Settings:
        """The endpoint, api type and formatter plan of the current fields (worked out once)."""
        settings = self._clients.settings
        if settings is None:
            if not self.endpoint_url:
                raise ConfigurationError("no endpoint URL: pass endpoint_url=... or set AZUREML_ENDPOINT_URL")
            try:
                endpoint = parse_endpoint(self.endpoint_url, self.endpoint_api_type, self.api_version)
            except ConfigurationError:
                if self._takes_prompts and self.endpoint_url.partition("?")[0].rstrip("/").endswith("/completions"):
                    raise ConfigurationError(
                        f"endpoint_url {self.endpoint_url!r} is a text-completions route, which azml_chat does not "
                        "call: use the deployment's chat-completions URL (.../v1/chat/completions); the prompt is "
                        "sent as one user message"
                    ) from None
                raise
            api_type = self.endpoint_api_type or (
                AzureMLEndpointApiType.dedicated
                if endpoint.api_type == "dedicated"
                else AzureMLEndpointApiType.serverless
            )
            plan = plan_formatter(self.content_formatter, endpoint, api_type, prompts=self._takes_prompts)
            settings = self._clients.settings = Settings(endpoint, api_type, plan)
        return settings

    def _default_params(self) -> dict[str, Any]:
        """``temperature``/``max_tokens``/``stop`` fields under ``model_kwargs``, in a new dict."""
        params: dict[str, Any] = {}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if self.stop:
            params["stop"] = list(self.stop)
        return {**params, **self.model_kwargs}

    def _merged_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call parameters over the defaults, ``None`` dropping a key (as the clients merge them)."""
        merged = {**self._default_params(), **params}
        return {key: value for key, value in merged.items() if value is not None}

    def _check_model_param(self, params: Mapping[str, Any]) -> None:
        if params.get("model") is not None and not self._settings().chat_route:
            raise InvalidRequestError(
                "model= only applies to chat-completions URLs; a dedicated /score endpoint serves the "
                "deployment chosen by deployment_name"
            )

    def _model_label(self) -> str:
        url = self._settings().endpoint.url
        return self.model_name or self.deployment_name or url.split("//", 1)[-1].split(".", 1)[0]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "endpoint_api_type": self._settings().endpoint.api_type,
            "deployment_name": self.deployment_name,
            "model_name": self.model_name,
            "model_kwargs": self._default_params(),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._tracing_params("llm" if self._takes_prompts else "chat", stop, kwargs)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """``langchain_core.load.dumpd`` serializes the settings (the key as a secret reference)."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The import path ``langchain_core.load`` uses: ``azml_chat.langchain``."""
        return ["azml_chat", "langchain"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key is serialized as a reference to ``AZUREML_ENDPOINT_API_KEY``, never its value."""
        return {"endpoint_api_key": "AZUREML_ENDPOINT_API_KEY"}

    def _tracing_params(self, model_type: str, stop: list[str] | None, kwargs: Mapping[str, Any]) -> LangSmithParams:
        """LangSmith's standard tracing parameters (``ls_provider``, ``ls_model_name``, ...)."""
        defaults = {**self._default_params(), **kwargs}
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="azureml",
            ls_model_name=model if isinstance(model, str) else self._model_label(),
            ls_model_type="chat" if model_type == "chat" else "llm",
        )
        temperature = defaults.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            params["ls_temperature"] = temperature
        max_tokens = defaults.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop or defaults.get("stop")
        if stop_sequences:
            params["ls_stop"] = list(stop_sequences)
        return params

    # --- clients ------------------------------------------------------------------------------

    def _client_args(self) -> ClientArgs:
        settings = self._settings()
        return ClientArgs(
            api_key=self.endpoint_api_key.get_secret_value() if self.endpoint_api_key else None,
            api_type=settings.endpoint.api_type,
            deployment_name=self.deployment_name or None,
            formatter=settings.plan.client_formatter,
            model=None if settings.plan.legacy else self.model_name,  # the content formatter writes the body
            model_kwargs=self._default_params(),
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_policy=self.retry_policy,
            credential=self.credential,
            api_version=self.api_version,
            hooks=self.hooks,
        )

    def _sync_client(self) -> ChatClient:
        return self._clients.sync_client(self, lambda: ChatClient(self._settings().endpoint.url, **self._client_args()))

    async def _async_client(self) -> AsyncChatClient:
        return await self._clients.async_client(
            lambda: AsyncChatClient(self._settings().endpoint.url, **self._client_args())
        )

    def close(self) -> None:
        """Close the sync client's connections (a later call opens new ones)."""
        self._clients.close_sync()

    async def aclose(self) -> None:
        """Close the running event loop's async client and the sync client (a later call opens new
        ones). Async clients of other event loops close when their loop shuts down."""
        await self._clients.aclose_current()
        self.close()


class CallPlan:
    """One LangChain call (a chat model's ``messages`` or an LLM's ``prompt``), worked out from
    its arguments: what the client is given."""

    def __init__(
        self,
        model: AzureMLBaseEndpoint,
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
        messages: list[BaseMessage] | None = None,
        prompt: str | None = None,
    ) -> None:
        settings = model._settings()
        self.options, params = split_call_kwargs(kwargs, stop)
        model._check_model_param(params)
        legacy = settings.plan.legacy
        #: Whether a LangChain content formatter builds the body (the reply then comes in one piece).
        self.legacy = legacy is not None
        #: Whether the reply arrives token by token (chat-completions routes) or in one piece.
        self.streams = legacy is None and settings.chat_route
        if legacy is not None:
            body = build_body(legacy, model._merged_params(params), settings.api_type, messages=messages, prompt=prompt)
            self.messages: list[Message] = preformatted(body)
            self.params: dict[str, Any] = {}
            return
        asks_usage = stream and self.streams and model.stream_usage
        if asks_usage and "stream_options" not in {**model.model_kwargs, **params}:
            params["stream_options"] = {"include_usage": True}
        self.messages = to_messages(messages) if messages is not None else [Message("user", prompt or "")]
        self.params = client_params(params)


class AzureMLEndpointClient:
    """The counterpart of LangChain's ``AzureMLEndpointClient``: POST a request body you built
    yourself to an endpoint and get the reply body, built on :class:`azml_chat.ChatClient`
    (retries, time-outs, typed errors; JSON bodies only).

    Example::

        client = AzureMLEndpointClient(url, api_key, deployment_name="blue")
        reply = client.call(b'{"input_data": {"input_string": ["Hi"], "parameters": {}}}')
    """

    def __init__(
        self,
        endpoint_url: str,
        endpoint_api_key: str,
        deployment_name: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoint_api_key or not endpoint_url:
            raise ConfigurationError("A key/token and REST endpoint should be provided to invoke the endpoint")
        self.endpoint_url = endpoint_url
        self.endpoint_api_key = endpoint_api_key
        self.deployment_name = deployment_name
        self.timeout = timeout
        endpoint = parse_endpoint(endpoint_url)
        self._client = ChatClient(
            endpoint.url,
            api_key=endpoint_api_key,
            deployment_name=deployment_name or None,
            formatter=plan_formatter(
                _RawReply(), endpoint, AzureMLEndpointApiType.dedicated, prompts=True
            ).client_formatter,
            timeout=timeout,
        )

    def call(self, body: bytes, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> bytes:
        """Send ``body`` (JSON bytes) and return the reply's JSON bytes; ``timeout=`` per call."""
        reply = self._client.chat(preformatted(body_text(body, self)), timeout=kwargs.get("timeout"))
        return reply.content.encode()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


class _RawReply(ContentFormatterBase):
    """Keeps the reply body as it is (for :class:`AzureMLEndpointClient`)."""

    @property
    def supported_api_types(self) -> list[AzureMLEndpointApiType]:
        return list(AzureMLEndpointApiType)

    def format_request_payload(self, prompt: str, model_kwargs: dict[str, Any], api_type: Any = None) -> str:
        return prompt

    def format_response_payload(self, output: bytes, api_type: Any = None) -> str:
        return output.decode()
