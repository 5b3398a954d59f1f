"""Endpoint settings: URL and api-type inference, validation, and the ``AZUREML_*`` environment."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import httpx

from .errors import ConfigurationError

__all__ = ["DEFAULT_API_VERSION", "ApiType", "Endpoint", "parse_endpoint", "settings_from_env"]

ApiType = Literal["dedicated", "serverless"]
Route = Literal["score", "chat"]

DEFAULT_API_VERSION = "2024-05-01-preview"
DEFAULT_TIMEOUT = 50.0

_URL_HELP = (
    "use https://<endpoint>.<region>.inference.ml.azure.com/score for a dedicated (managed online) "
    "endpoint, or https://<name>.<region>.models.ai.azure.com/v1/chat/completions "
    "(also .../chat/completions or .../models/chat/completions) for a serverless endpoint"
)
_API_TYPES: dict[str, ApiType] = {
    "dedicated": "dedicated",
    "realtime": "dedicated",
    "serverless": "serverless",
}


class Endpoint(NamedTuple):
    """Where and how to call: the full request URL, the endpoint kind and the body route.

    ``route`` is ``"score"`` for ``/score`` (body set by the model-family formatter)
    and ``"chat"`` for ``.../chat/completions`` (OpenAI body), whatever the host.
    """

    url: str
    api_type: ApiType
    route: Route
    info_url: str


def normalize_api_type(value: Any) -> ApiType | None:
    """``dedicated`` | ``serverless`` (``realtime`` is an alias of dedicated); ``None`` means infer."""
    if value is None or value == "":
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str) and value.strip().lower() in _API_TYPES:
        return _API_TYPES[value.strip().lower()]
    raise ConfigurationError(f"api_type {value!r} is not valid: use 'dedicated' or 'serverless'")


def parse_endpoint(url: Any, api_type: Any = None, api_version: str = DEFAULT_API_VERSION) -> Endpoint:
    """Validate an endpoint URL and work out its kind and route.

    A query string already in the URL is kept; ``api-version`` is added only on the
    routes that need it (``/chat/completions``, ``/models/chat/completions``).
    """
    kind = normalize_api_type(api_type)
    if not isinstance(url, str | httpx.URL) or not str(url).strip():
        raise ConfigurationError(f"endpoint_url is missing or not a string: {_URL_HELP}")
    try:
        parsed = httpx.URL(str(url).strip())
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ConfigurationError(f"endpoint_url {str(url)!r} is not a valid URL ({exc}): {_URL_HELP}") from None
    if parsed.userinfo:  # checked first: the messages below quote the URL
        raise ConfigurationError("endpoint_url must not carry a user name or password: pass the key as api_key")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"endpoint_url {str(url)!r} must be an http(s) URL with a host: {_URL_HELP}")
    if any(char.isspace() for char in str(url).strip()):
        raise ConfigurationError(f"endpoint_url {str(url)!r} contains whitespace: {_URL_HELP}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(f"endpoint_url {str(url)!r} has port {parsed.port}, outside 1-65535")

    path = parsed.path.rstrip("/")
    dedicated_host = parsed.host.endswith(".inference.ml.azure.com")
    if path in ("", "/v1", "/models"):  # a base URL: complete it
        if kind == "dedicated" or (kind is None and dedicated_host and path == ""):
            path += "/score"
        else:
            path += "/v1/chat/completions" if path == "" else "/chat/completions"
    if path.endswith("/score"):
        route: Route = "score"
    elif path.endswith("/chat/completions"):
        route = "chat"
    else:
        raise ConfigurationError(f"endpoint_url path {parsed.path!r} is not a chat route: {_URL_HELP}")
    if kind is None:
        kind = "dedicated" if route == "score" or dedicated_host else "serverless"
    elif kind == "serverless" and route == "score":
        raise ConfigurationError(
            "api_type 'serverless' does not fit a /score URL: serverless endpoints take "
            ".../v1/chat/completions; use api_type='dedicated' for /score"
        )

    needs_version = route == "chat" and not path.endswith("/v1/chat/completions")
    params = parsed.params
    if needs_version and "api-version" not in params:
        params = params.set("api-version", api_version)
    full = parsed.copy_with(path=path, params=params)
    info_params = params if "api-version" in params else params.set("api-version", api_version)
    info_path = (
        path[: -len("/v1/chat/completions")]
        if path.endswith("/v1/chat/completions")
        else (path.removesuffix("/score").removesuffix("/chat/completions"))
    )
    info = parsed.copy_with(path=info_path + "/info", params=info_params)
    return Endpoint(str(full), kind, route, str(info))


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the ``AZUREML_*`` variables the LangChain client used, as client keyword arguments.

    ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``, ``AZUREML_DEPLOYMENT_NAME``,
    ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT`` (seconds). Unset ones are left out.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for variable, key in (
        ("AZUREML_ENDPOINT_URL", "endpoint_url"),
        ("AZUREML_ENDPOINT_API_KEY", "api_key"),
        ("AZUREML_DEPLOYMENT_NAME", "deployment_name"),
        ("AZUREML_ENDPOINT_API_TYPE", "api_type"),
    ):
        if env.get(variable):
            settings[key] = env[variable]
    if env.get("AZUREML_TIMEOUT"):
        try:
            timeout = float(env["AZUREML_TIMEOUT"])
        except ValueError:
            raise ConfigurationError(f"AZUREML_TIMEOUT={env['AZUREML_TIMEOUT']!r} is not a number of seconds") from None
        settings["timeout"] = timeout
    return settings
