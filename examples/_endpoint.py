"""Shared by the examples: Azure settings from the environment, else the embedded local endpoint."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from azml_chat.testing import LocalEndpoint


@contextlib.contextmanager
def endpoint_settings(kind: str = "serverless", **local: Any) -> Iterator[dict[str, Any]]:
    """Yield ``endpoint_url``/``api_key`` settings: Azure's from ``AZUREML_ENDPOINT_URL`` and
    ``AZUREML_ENDPOINT_API_KEY`` when set, else those of a local endpoint of ``kind``."""
    if os.environ.get("AZUREML_ENDPOINT_URL"):
        yield {
            "endpoint_url": os.environ["AZUREML_ENDPOINT_URL"],
            "api_key": os.environ.get("AZUREML_ENDPOINT_API_KEY"),
        }
        return
    with LocalEndpoint(kind=kind, api_key="local-key", **local) as endpoint:  # type: ignore[arg-type]
        yield {"endpoint_url": endpoint.url, "api_key": "local-key"}
