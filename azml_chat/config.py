"""Client settings: the route table, endpoint URL parsing, the ``AZUREML_*`` environment,
and :class:`ClientSettings`, the one place every client setting is validated.

Routes (the URL path decides the route; the host decides the kind, ``api_type``):

=====================  ==============================================  ===================  =====  ==========
route                  path                                            api-version          /info  body
=====================  ==============================================  ===================  =====  ==========
``score``              ``/score``                                      none                 yes    family's own
``v1-chat``            ``/v1/chat/completions`` (serverless, vLLM)     none                 yes    OpenAI
``chat``               ``/chat/completions``                           added (optional)     yes    OpenAI
``models-chat``        ``/models/chat/completions`` (Foundry, MaaS)    required             yes*   OpenAI
``openai-v1``          ``/openai/v1/chat/completions`` (and under      none (v1 rejects     no     OpenAI
                       ``/api/projects/<p>``)                          it)
``openai-deployments`` ``/openai/deployments/<d>/chat/completions``    required             no     OpenAI
=====================  ==============================================  ===================  =====  ==========

``*`` not on the ``foundry`` and ``azure-openai`` kinds. An ``api-version`` already in
the URL, or passed as ``api_version=``, always wins. Kinds and their default Entra ID scope:
``dedicated`` (``*.inference.ml.azure.com``, ``https://ml.azure.com/.default``),
``serverless`` (``*.models.ai.azure.com``: keys only, Entra ID is rejected there),
``foundry`` (``*.services.ai.azure.com``, ``https://ai.azure.com/.default``) and
``azure-openai`` (``*.openai.azure.com``, ``https://cognitiveservices.azure.com/.default``).
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypedDict, get_args
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

from .errors import ConfigurationError, InvalidRequestError
from .formatters import ChatFormatter, get_formatter
from .hooks import ChatHooks, check_hooks

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT",
    "ApiType",
    "AuthHeader",
    "ChatParams",
    "ClientOptions",
    "ClientSettings",
    "Endpoint",
    "ExtraParameters",
    "RetryPolicy",
    "Route",
    "parse_endpoint",
    "settings_from_env",
]

ApiType = Literal["dedicated", "serverless", "foundry", "azure-openai"]
Route = Literal["score", "v1-chat", "chat", "models-chat", "openai-v1", "openai-deployments"]
AuthHeader = Literal["both", "bearer", "api-key"]
ExtraParameters = Literal["pass-through", "drop", "error"]

#: ``api-version`` of the Azure AI model inference routes (``/chat/completions``, ``/models/...``).
DEFAULT_API_VERSION = "2024-05-01-preview"
#: ``api-version`` of Azure OpenAI deployment routes: the GA version that has ``json_schema``.
DEFAULT_DEPLOYMENTS_API_VERSION = "2024-10-21"
DEFAULT_TIMEOUT = 50.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

SCOPES: dict[ApiType, str] = {
    "dedicated": "https://ml.azure.com/.default",
    "serverless": "https://cognitiveservices.azure.com/.default",
    "foundry": "https://ai.azure.com/.default",
    "azure-openai": "https://cognitiveservices.azure.com/.default",
}

_URL_HELP = (
    "use https://<endpoint>.<region>.inference.ml.azure.com/score (dedicated), "
    "https://<name>.<region>.models.ai.azure.com/v1/chat/completions (serverless), "
    "https://<resource>.services.ai.azure.com/openai/v1 or .../models (Foundry), or "
    "https://<resource>.openai.azure.com/openai/v1 (Azure OpenAI)"
)
_API_TYPES: dict[str, ApiType] = {
    "dedicated": "dedicated",
    "realtime": "dedicated",
    "serverless": "serverless",
    "foundry": "foundry",
    "azure-openai": "azure-openai",
    "azure_openai": "azure-openai",
}
_HOST_KINDS: tuple[tuple[str, ApiType], ...] = (
    (".inference.ml.azure.com", "dedicated"),
    (".models.ai.azure.com", "serverless"),
    (".services.ai.azure.com", "foundry"),
    (".cognitiveservices.azure.com", "foundry"),
    (".openai.azure.com", "azure-openai"),
)
#: Full route paths, most specific first: (pattern, route).
_ROUTE_PATHS: tuple[tuple[re.Pattern[str], Route], ...] = (
    (re.compile(r".*/score"), "score"),
    (re.compile(r".*/openai/v1/chat/completions"), "openai-v1"),
    (re.compile(r".*/openai/deployments/[^/]+/chat/completions"), "openai-deployments"),
    (re.compile(r".*/models/chat/completions"), "models-chat"),
    (re.compile(r".*/v1/chat/completions"), "v1-chat"),
    (re.compile(r".*/chat/completions"), "chat"),
)
#: Base URLs completed to a route: (pattern, suffix to add).
_BASE_PATHS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r".*/openai/v1"), "/chat/completions"),
    (re.compile(r".*/openai"), "/v1/chat/completions"),
    (re.compile(r".*/openai/deployments/[^/]+"), "/chat/completions"),
    (re.compile(r".*/api/projects/[^/]+"), "/openai/v1/chat/completions"),
    (re.compile(r"(.*/)?models"), "/chat/completions"),
    (re.compile(r"(.*/)?v1"), "/chat/completions"),
)
_BARE_HOST_PATHS: dict[ApiType | None, str] = {
    "dedicated": "/score",
    "serverless": "/v1/chat/completions",
    "foundry": "/openai/v1/chat/completions",
    "azure-openai": "/openai/v1/chat/completions",
    None: "/v1/chat/completions",
}


class Endpoint(NamedTuple):
    """Where and how to call, worked out from the URL (see the route table above).

    ``url`` is the full request URL, ``api_type`` the endpoint kind, ``route`` the route,
    ``dialect`` the body (``"score"`` or ``"chat-completions"``), ``info_url`` the ``/info``
    URL where the route has one (else ``None``), ``scope`` the default Entra ID scope
    (``None`` where Entra ID is not accepted), and ``extra_parameters_header`` whether
    the route honours the ``extra-parameters`` header.
    """

    url: str
    api_type: ApiType
    route: Route
    info_url: str | None
    dialect: Literal["score", "chat-completions"] = "chat-completions"
    scope: str | None = None
    extra_parameters_header: bool = False
    host: str = ""
    port: int | None = None


def normalize_api_type(value: Any) -> ApiType | None:
    """``dedicated`` | ``serverless`` | ``foundry`` | ``azure-openai`` (``realtime`` is an alias
    of dedicated); ``None`` means infer from the URL."""
    if value is None or value == "":
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str) and value.strip().lower() in _API_TYPES:
        return _API_TYPES[value.strip().lower()]
    raise ConfigurationError(
        f"api_type {value!r} is not valid: use 'dedicated', 'serverless', 'foundry' or 'azure-openai'"
    )


def _split(url: Any) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"endpoint_url is missing or not a string: {_URL_HELP}")
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ConfigurationError(f"endpoint_url {text!r} is not a valid URL ({exc}): {_URL_HELP}") from None
    if parts.username is not None or parts.password is not None:  # checked first: the messages below quote the URL
        raise ConfigurationError("endpoint_url must not carry a user name or password: pass the key as api_key")
    try:
        port = parts.port
    except ValueError:
        given = parts.netloc.rpartition(":")[2]
        if not given.isdigit():
            bad_port = f"endpoint_url {text!r} is not a valid URL (port {given!r})"
            raise ConfigurationError(f"{bad_port}: {_URL_HELP}") from None
        raise ConfigurationError(f"endpoint_url {text!r} has port {given}, outside 1-65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"endpoint_url {text!r} must be an http(s) URL with a host: {_URL_HELP}")
    if any(char.isspace() for char in text):
        raise ConfigurationError(f"endpoint_url {text!r} contains whitespace: {_URL_HELP}")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"endpoint_url {text!r} has port {port}, outside 1-65535")
    return parts


def _route_of(path: str) -> Route | None:
    return next((route for pattern, route in _ROUTE_PATHS if pattern.fullmatch(path)), None)


def _complete(path: str, kind: ApiType | None) -> str:
    """A base URL's path completed to a route, or the path unchanged."""
    if path == "":
        return _BARE_HOST_PATHS[kind]
    if kind == "dedicated" and path in ("/v1", "/models"):
        return path + "/score" if path == "/models" else path + "/chat/completions"
    return next((path + suffix for pattern, suffix in _BASE_PATHS if pattern.fullmatch(path)), path)


def parse_endpoint(url: Any, api_type: Any = None, api_version: str | None = None) -> Endpoint:
    """Validate an endpoint URL and work out its kind, route and body dialect.

    A base URL (a bare host, ``.../v1``, ``.../models``, ``.../openai/v1``,
    ``.../openai/deployments/<d>``, ``.../api/projects/<p>``) is completed to its chat
    route. A query string already in the URL is kept; ``api-version`` is added only on
    the routes that take one, unless the URL or ``api_version`` already says which.
    """
    kind = normalize_api_type(api_type)
    parts = _split(url)
    host = parts.hostname or ""
    host_kind = next((k for suffix, k in _HOST_KINDS if host.endswith(suffix)), None)
    path = _complete(parts.path.rstrip("/"), kind or host_kind)
    route = _route_of(path)
    if route is None:
        raise ConfigurationError(f"endpoint_url path {parts.path!r} is not a chat route: {_URL_HELP}")
    if kind is None:
        kind = host_kind or (
            "dedicated" if route == "score" else "azure-openai" if route.startswith("openai") else "serverless"
        )
    elif kind != "dedicated" and route == "score":
        raise ConfigurationError(
            f"api_type {kind!r} does not fit a /score URL: /score is a dedicated endpoint's route; "
            "use api_type='dedicated' (or a chat-completions URL)"
        )

    query = parse_qsl(parts.query, keep_blank_values=True)
    has_version = any(name == "api-version" for name, _ in query)
    default_version = {"chat": DEFAULT_API_VERSION, "models-chat": DEFAULT_API_VERSION}.get(route)
    if route == "openai-deployments":
        default_version = DEFAULT_DEPLOYMENTS_API_VERSION
    version = api_version if api_version is not None else default_version
    if version is not None and not has_version:
        query.append(("api-version", version))
    full = urlunsplit(parts._replace(path=quote(path, safe="/%:@!$&'()*+,;="), query=urlencode(query)))

    info_url = None
    if not route.startswith("openai") and kind in ("dedicated", "serverless"):
        base = path.removesuffix("/score").removesuffix("/chat/completions").removesuffix("/v1")
        info_query = (
            query if any(n == "api-version" for n, _ in query) else [*query, ("api-version", DEFAULT_API_VERSION)]
        )
        info_url = urlunsplit(parts._replace(path=base + "/info", query=urlencode(info_query)))
    maas = host.endswith(".models.ai.azure.com")
    return Endpoint(
        url=full,
        api_type=kind,
        route=route,
        info_url=info_url,
        dialect="score" if route == "score" else "chat-completions",
        scope=None if maas else SCOPES[kind],
        extra_parameters_header=route in ("v1-chat", "chat", "models-chat") and kind in ("serverless", "foundry"),
        host=host,
        port=parts.port or (443 if parts.scheme == "https" else 80),
    )


_ENV = (
    ("AZUREML_ENDPOINT_URL", "endpoint_url"),
    ("AZUREML_ENDPOINT_API_KEY", "api_key"),
    ("AZUREML_DEPLOYMENT_NAME", "deployment_name"),
    ("AZUREML_ENDPOINT_API_TYPE", "api_type"),
)
#: Every ``AZUREML_*`` variable azml-chat reads.
ENV_VARIABLES = (*(variable for variable, _ in _ENV), "AZUREML_TIMEOUT")


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the ``AZUREML_*`` variables the LangChain client used, as client keyword arguments.

    ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``, ``AZUREML_DEPLOYMENT_NAME``,
    ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT`` (seconds; ``none`` for no time-out).
    Unset ones are left out.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {key: env[variable] for variable, key in _ENV if env.get(variable)}
    raw = env.get("AZUREML_TIMEOUT")
    if raw:
        if raw.strip().lower() == "none":
            settings["timeout"] = None
        else:
            try:
                settings["timeout"] = float(raw)
            except ValueError:
                raise ConfigurationError(f"AZUREML_TIMEOUT={raw!r} is not a number of seconds") from None
    return settings


# --- validation ------------------------------------------------------------------------


def check_seconds(value: Any, name: str, error: type[ConfigurationError] | Any = ConfigurationError) -> float | None:
    """A time-out in seconds: a positive finite number, or ``None`` (also ``inf``) for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value <= 0:
        raise error(f"{name} must be a positive number of seconds or None (no time-out), not {value!r}")
    return None if math.isinf(value) else float(value)


def check_retries(value: Any, error: Any = ConfigurationError) -> int:
    """``max_retries``: a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(f"max_retries must be a whole number >= 0, not {value!r}")
    return value


def _seconds_at_least_0(_instance: Any, attribute: attrs.Attribute[float], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:  # also NaN
        raise ConfigurationError(f"RetryPolicy {attribute.name} must be >= 0 seconds, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How long to wait between attempts.

    Without a ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``retry-after`` header the
    wait is ``initial_backoff * 2**attempt`` (at most ``max_backoff``) minus up to 25%
    random jitter. A server-given wait up to ``max_retry_after`` seconds is honoured; a
    longer one fails the call at once (the error carries ``retry_after``) rather than
    sleeping a cap and asking again into a long quota window. Values that are not
    numbers >= 0 raise :class:`ConfigurationError`. ``retry_timeouts`` (default true)
    retries a time-out of the whole attempt; a managed online endpoint's 408 (its
    ``request_timeout_ms``) is never retried by default since it repeats.
    """

    initial_backoff: float = attrs.field(default=0.5, validator=_seconds_at_least_0)
    max_backoff: float = attrs.field(default=8.0, validator=_seconds_at_least_0)
    max_retry_after: float = attrs.field(default=60.0, validator=_seconds_at_least_0)
    retry_timeouts: bool = True


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SETTING_OF_HEADER = {"authorization": "api_key", "api-key": "api_key", "azureml-model-deployment": "deployment_name"}


def check_headers(headers: Any, what: str = "headers", error: Any = ConfigurationError) -> dict[str, str]:
    """Headers with lower-case names, once HTTP can carry them all (else ``error``, by default
    :class:`ConfigurationError`; a call's ``extra_headers`` raise :class:`InvalidRequestError`).

    Checked when the client is made, so a key read from a file with a stray control
    character fails at once, naming the setting, instead of at the first call.
    """
    if not isinstance(headers, Mapping):
        raise error(f"{what} must be a dict of header names to values, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise error(f"{name!r} is not a valid HTTP header name")
        name = name.lower()
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            setting = _SETTING_OF_HEADER.get(name, f"the value of header {name!r}")
            raise error(f"{setting} must be printable ASCII text (no line breaks or control characters)")
        checked[name] = value
    return checked


def _key_text(api_key: Any) -> str | None:
    """The key's text, stripped of surrounding whitespace (a key read from a file keeps its newline)."""
    if api_key is None:
        return None
    key = getattr(api_key, "key", api_key)  # azure.core.credentials.AzureKeyCredential
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError("api_key must be a non-empty string or an AzureKeyCredential")
    return key.strip()


def _choose(value: Any, choices: tuple[str, ...], name: str) -> Any:
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


@attrs.frozen
class ClientSettings:
    """Every setting of a client, validated once (:meth:`create`); the clients hold one.

    ``api_key`` keeps what the caller passed: a string (stripped of surrounding
    whitespace) or an ``AzureKeyCredential``, read at every request so ``update()``
    rotates the key. ``headers`` are the default request headers without auth.
    """

    endpoint: Endpoint
    formatter: ChatFormatter
    api_key: Any = attrs.field(default=None, repr=False)
    credential: Any = attrs.field(default=None, repr=False)
    credential_scope: str | None = None
    auth_header: AuthHeader = "both"
    deployment_name: str | None = None
    model: str | None = None
    model_kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    timeout: float | None = DEFAULT_TIMEOUT
    max_retries: int = 2
    retry_policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    headers: Mapping[str, str] = attrs.field(factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_concurrency: int | None = None
    extra_parameters: ExtraParameters | None = None
    hooks: tuple[ChatHooks, ...] = ()

    @property
    def key(self) -> str | None:
        """The key text now (an ``AzureKeyCredential`` may have been updated)."""
        return _key_text(self.api_key)

    @classmethod
    def create(cls, owner: str, endpoint_url: str | None, options: Mapping[str, Any]) -> ClientSettings:
        """Validate ``owner``'s keyword arguments (see :class:`ClientOptions`), filling unset ones
        from the ``AZUREML_*`` environment; an unknown one is a :class:`TypeError` and every bad
        value a :class:`ConfigurationError` naming the setting."""
        unknown = [name for name in options if name not in ClientOptions.__annotations__]
        if unknown:
            raise TypeError(f"{owner}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
        get = options.get
        api_key, credential, formatter, model_kwargs = (
            get("api_key"),
            get("credential"),
            get("formatter"),
            get("model_kwargs"),
        )
        retry_policy, max_concurrency, extra_parameters = (
            get("retry_policy"),
            get("max_concurrency"),
            get("extra_parameters"),
        )
        max_response_bytes = get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        headers, deployment_name = get("headers"), get("deployment_name")
        env = settings_from_env()
        if endpoint_url is None:
            endpoint_url = env.get("endpoint_url")
            if endpoint_url is None:
                raise ConfigurationError(
                    f"{owner} has no endpoint URL: pass endpoint_url=... or set AZUREML_ENDPOINT_URL"
                )
        if api_key is None and credential is None:
            api_key = env.get("api_key")
        if api_key is not None and credential is not None:
            raise ConfigurationError("pass either api_key or credential, not both")
        key = _key_text(api_key)
        if isinstance(api_key, str):
            api_key = key  # stripped: a key read from a file keeps its newline
        api_type = get("api_type")
        endpoint = parse_endpoint(
            endpoint_url, api_type if api_type is not None else env.get("api_type"), get("api_version")
        )
        if credential is not None:
            if not callable(getattr(credential, "get_token", None)):
                raise ConfigurationError("credential must have a get_token(*scopes) method, like azure-identity's")
            if get("credential_scope") is None and endpoint.scope is None:
                raise ConfigurationError(
                    "serverless endpoints (*.models.ai.azure.com) accept keys only, not Entra ID tokens: "
                    "pass api_key=... (or credential_scope=... if your endpoint does accept tokens)"
                )
        chosen = get_formatter(
            formatter if formatter is not None else ("llama" if endpoint.dialect == "score" else "openai")
        )
        if chosen.dialect == "score" and endpoint.dialect == "chat-completions":
            # every family speaks the OpenAI body on chat-completions routes; an OpenAI body on
            # /score is fine (vLLM-based containers take it), a /score body on a chat route is not
            if not isinstance(formatter, str | type):  # an instance of the caller's own is never replaced
                raise ConfigurationError(
                    f"formatter {type(chosen).__name__} writes {chosen.dialect!r} bodies, but {endpoint.url!r} "
                    f"is a {endpoint.dialect!r} route: pick a formatter for that route or the matching URL"
                )
            chosen = get_formatter("openai")
        if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
            raise ConfigurationError(f"model_kwargs must be a dict, not {type(model_kwargs).__name__}")
        timeout = get("timeout") if "timeout" in options else env.get("timeout", DEFAULT_TIMEOUT)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ConfigurationError(f"retry_policy must be a RetryPolicy, not {type(retry_policy).__name__}")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes <= 0:
            raise ConfigurationError("max_response_bytes must be a positive number of bytes")
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1
        ):
            raise ConfigurationError(f"max_concurrency must be a whole number >= 1 or None, not {max_concurrency!r}")
        if extra_parameters is not None:
            _choose(extra_parameters, get_args(ExtraParameters), "extra_parameters")
        deployment = deployment_name if deployment_name is not None else env.get("deployment_name")
        checked = check_headers(headers) if headers else {}
        if deployment:
            checked["azureml-model-deployment"] = check_headers({"azureml-model-deployment": deployment})[
                "azureml-model-deployment"
            ]
        if key is not None:
            check_headers({"api-key": key})
        return cls(
            endpoint=endpoint,
            formatter=chosen,
            api_key=api_key,
            credential=credential,
            credential_scope=get("credential_scope"),
            auth_header=_choose(get("auth_header", "both"), get_args(AuthHeader), "auth_header"),
            deployment_name=deployment or None,
            model=get("model"),
            model_kwargs=dict(model_kwargs or {}),
            timeout=check_seconds(timeout, "timeout"),
            max_retries=check_retries(get("max_retries", 2), InvalidRequestError),
            retry_policy=retry_policy or RetryPolicy(),
            headers=checked,
            max_response_bytes=max_response_bytes,
            max_concurrency=max_concurrency,
            extra_parameters=extra_parameters,
            hooks=check_hooks(get("hooks")),
        )


# --- keyword arguments, typed ----------------------------------------------------------


class ClientOptions(TypedDict, total=False):
    """The settings both clients (and ``from_env``) take as keyword arguments.

    Unset ones come from the ``AZUREML_*`` environment (see :func:`settings_from_env`) or
    their defaults. Every value is checked when the client is made
    (:class:`~azml_chat.ConfigurationError` names what to fix).
    """

    #: The key: a string (surrounding whitespace is stripped) or an ``AzureKeyCredential``
    #: (read at each request, so ``update()`` rotates it). Default ``AZUREML_ENDPOINT_API_KEY``.
    api_key: str | Any | None
    #: ``"dedicated"`` (``"realtime"``), ``"serverless"``, ``"foundry"`` or ``"azure-openai"``;
    #: inferred from the URL when unset (``AZUREML_ENDPOINT_API_TYPE``).
    api_type: str | None
    #: Pins one deployment of a managed online endpoint (header ``azureml-model-deployment``).
    deployment_name: str | None
    #: The model family of a ``/score`` deployment: a registered name (``"llama"``, ``"mistral"``,
    #: ``"phi"``, ``"text-generation"``), a ``ChatFormatter`` subclass or instance.
    formatter: Any
    #: ``model`` sent in the body on chat-completions routes (multi-model and vLLM endpoints).
    model: str | None
    #: Default body parameters merged under each call's own.
    model_kwargs: Mapping[str, Any] | None
    #: Seconds each attempt may take (connect, each read, and the whole reply of ``chat()``);
    #: ``None`` for no time-out. Default ``AZUREML_TIMEOUT`` or 50.
    timeout: float | None
    #: Retries of 408 (not on dedicated endpoints), 429, 5xx and connection failures. Default 2.
    max_retries: int
    #: Backoff, the longest server-given wait to honour, and whether time-outs are retried.
    retry_policy: RetryPolicy | None
    #: An Entra ID credential (azure-identity, sync or async) instead of a key.
    credential: Any
    #: Overrides the Entra ID scope the endpoint kind implies.
    credential_scope: str | None
    #: Which header carries a key: ``"both"`` (default: ``Authorization: Bearer`` and ``api-key``,
    #: as Microsoft's own SDK sends), ``"bearer"`` or ``"api-key"``.
    auth_header: AuthHeader
    #: ``api-version`` for the routes that take one; the route's default when unset.
    api_version: str | None
    #: Extra headers sent with every request.
    headers: Mapping[str, str] | None
    #: Largest reply body accepted (bytes). Default 32 MiB.
    max_response_bytes: int
    #: At most this many calls in flight; the rest wait in order. Default no limit.
    max_concurrency: int | None
    #: The ``extra-parameters`` header on Azure AI model inference routes: ``"pass-through"``,
    #: ``"drop"`` or ``"error"``. Default: ``pass-through`` when a call sends ``extra_body`` keys.
    extra_parameters: ExtraParameters | None
    #: :class:`~azml_chat.hooks.ChatHooks` told about every call and attempt (besides the
    #: defaults of :func:`~azml_chat.hooks.add_default_hooks`).
    hooks: Sequence[Any] | None


class ChatParams(TypedDict, total=False):
    """The keyword arguments of ``chat()``, ``stream()`` and ``chat_structured()``.

    Body parameters (``temperature`` ... ``reasoning_effort``) go over the client's
    ``model_kwargs`` for this call only; ``None`` removes a ``model_kwargs`` default. A
    ``/score`` formatter renames the portable names (``max_tokens`` becomes
    ``max_new_tokens``). Model-specific parameters go in ``extra_body``, where a
    ``None`` value removes a ``model_kwargs`` default.
    """

    model: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: str | Sequence[str] | None
    seed: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    #: How many choices to generate (see ``ChatResponse.choices``).
    n: int | None
    #: Return token log probabilities (``ChatResponse.logprobs``), with ``top_logprobs`` alternatives.
    logprobs: bool | None
    top_logprobs: int | None
    #: ``{"type": "json_object"}``, a ``json_schema`` format, or a class (attrs, dataclass,
    #: TypedDict, pydantic) to build one from.
    response_format: Any
    #: Tool dicts or plain Python functions (schemas from their signatures).
    tools: Sequence[Any] | None
    #: ``"auto"``, ``"none"``, ``"required"``, a function name, or the wire dict.
    tool_choice: Any
    parallel_tool_calls: bool | None
    user: str | None
    #: e.g. ``{"include_usage": True}`` for usage on streams.
    stream_options: Mapping[str, Any] | None
    #: ``"low"``, ``"medium"`` or ``"high"`` for reasoning models.
    reasoning_effort: str | None
    #: Model-specific body keys, sent as they are (``do_sample``, ``top_k``, ...).
    extra_body: Mapping[str, Any] | None
    #: Headers for this call only.
    extra_headers: Mapping[str, str] | None
    #: Query parameters for this call only.
    extra_query: Mapping[str, str] | None
    #: Seconds for this call's attempts (``None``: no time-out); the client's when unset.
    timeout: float | None
    #: Retries for this call; the client's when unset.
    max_retries: int | None


#: Every keyword argument of ``chat()`` and ``stream()``.
CALL_PARAMS = frozenset(ChatParams.__annotations__)
#: The body parameters among :class:`ChatParams`.
BODY_PARAMS = CALL_PARAMS - {
    "extra_body",
    "extra_headers",
    "extra_query",
    "timeout",
    "max_retries",
}
