"""Which routes each kind of endpoint serves, and the rules of each (protocol.md sections 1 and 8).

- ``serverless``: ``/v1/chat/completions``, ``/chat/completions``, ``/models/chat/completions``,
  ``/score``, ``/info``, ``/models/info``, ``GET /``; the key as Bearer or ``api-key``;
  api-version required on ``/models/chat/completions``, optional elsewhere.
- ``dedicated`` (managed online endpoint): the same routes plus vLLM's ``GET /v1/models``;
  the key as Bearer only.
- ``foundry`` (``*.services.ai.azure.com``): ``/models/chat/completions`` (api-version
  required, key in ``api-key``), ``/openai/v1/chat/completions`` and the project-scoped
  ``/api/projects/<p>/openai/v1/chat/completions`` (api-version rejected, key in either
  header); ``model`` required in the body on all three.
- ``azure-openai`` (``*.openai.azure.com``): ``/openai/v1/chat/completions`` as above and
  ``/openai/deployments/<d>/chat/completions`` (api-version required; json_schema needs
  2024-08-01-preview or later; key in ``api-key``).

Entra ID tokens (``token_validator``) are accepted as Bearer on every route. The two Azure ML
kinds keep serving every Azure ML route whatever their ``kind``, so one endpoint answers the
URLs of both; ``/info`` exists only there (Foundry and Azure OpenAI answer 404).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal, TypeAlias

from ._reply import Reply, azure_error

__all__ = ["KINDS", "ROUTES", "Route", "find_route"]

Handler: TypeAlias = Literal["health", "score", "chat", "info", "models"]
ApiVersionRule: TypeAlias = Literal["optional", "required", "rejected"]
Dialect: TypeAlias = Literal["azure", "openai"]

KINDS = ("serverless", "dedicated", "foundry", "azure-openai")
BEARER_OR_API_KEY = frozenset({"bearer", "api-key"})
API_KEY_ONLY = frozenset({"api-key"})
BEARER_ONLY = frozenset({"bearer"})


@dataclasses.dataclass(frozen=True)
class Route:
    """One route: what answers it and the rules a request must follow there."""

    method: str
    pattern: str  #: a regular expression the whole path must match (named groups: path values)
    handler: Handler
    keys: frozenset[str] = BEARER_OR_API_KEY  #: headers that may carry the API key
    api_version: ApiVersionRule = "optional"
    strict_version: bool = False  #: api-version must look like ``2024-10-21`` or ``2024-08-01-preview``
    needs_model: bool = False  #: multi-model route: ``model`` is required in the body
    dialect: Dialect = "azure"  #: error bodies and extra-parameter rules: Azure AI inference or OpenAI

    @property
    def uses_model(self) -> bool:
        """Whether requests here reach the model (and so take capacity)."""
        return self.handler in ("score", "chat")

    def match(self, path: str) -> dict[str, str] | None:
        """The path's named values if ``path`` is this route's, else None."""
        found = re.fullmatch(self.pattern, path)
        return None if found is None else found.groupdict()


def _azure_ml(keys: frozenset[str]) -> tuple[Route, ...]:
    return (
        Route("GET", "/", "health"),
        Route("POST", "/score", "score", keys),
        Route("POST", "/v1/chat/completions", "chat", keys),
        Route("POST", "/chat/completions", "chat", keys),
        Route("POST", "/models/chat/completions", "chat", keys, api_version="required"),
        Route("GET", "/info", "info", keys),
        Route("GET", "/models/info", "info", keys),
    )


def _openai_v1(pattern: str) -> Route:
    """The OpenAI v1 API: no api-version, ``model`` required, a key in either header."""
    return Route("POST", pattern, "chat", BEARER_OR_API_KEY, api_version="rejected", needs_model=True, dialect="openai")


ROUTES: dict[str, tuple[Route, ...]] = {
    "serverless": _azure_ml(BEARER_OR_API_KEY),
    "dedicated": (*_azure_ml(BEARER_ONLY), Route("GET", "/v1/models", "models", BEARER_ONLY)),
    "foundry": (
        Route(
            "POST",
            "/models/chat/completions",
            "chat",
            API_KEY_ONLY,
            api_version="required",
            strict_version=True,
            needs_model=True,
        ),
        _openai_v1("/openai/v1/chat/completions"),
        _openai_v1("/api/projects/(?P<project>[^/]+)/openai/v1/chat/completions"),
    ),
    "azure-openai": (
        _openai_v1("/openai/v1/chat/completions"),
        Route(
            "POST",
            "/openai/deployments/(?P<deployment>[^/]+)/chat/completions",
            "chat",
            API_KEY_ONLY,
            api_version="required",
            strict_version=True,
            dialect="openai",
        ),
    ),
}


def find_route(kind: str, method: str, path: str) -> tuple[Route, dict[str, str]] | Reply:
    """The route of a request and its path values, or the 404/405 reply."""
    allowed = []
    for route in ROUTES[kind]:
        values = route.match(path)
        if values is None:
            continue
        if route.method == method:
            return route, values
        allowed.append(route.method)
    if allowed:
        reply = azure_error(405, "MethodNotAllowed", f"Method {method} not allowed.")
        reply.headers["allow"] = ", ".join(allowed)
        return reply
    return azure_error(404, "NotFound", f"Resource not found: {path}")
