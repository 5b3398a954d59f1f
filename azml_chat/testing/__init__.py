"""A local, scriptable imitation of Azure ML chat endpoints for tests.

``LocalEndpoint`` is a real HTTP/1.1 server (h11 + anyio, no other dependency) serving the
dedicated ``/score`` and serverless ``/v1/chat/completions`` routes, with fault scripting
(``Fault``) and request recording (``RecordedRequest``); ``instant_retries()`` records retry
waits instead of sleeping them. Names load lazily so that the pytest
plugin stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import ChatTurn, Fault, RecordedRequest, ScriptedReply, echo_responder
    from ._server import LocalEndpoint
    from ._waits import instant_retries

__all__ = [
    "ChatTurn",
    "Fault",
    "LocalEndpoint",
    "RecordedRequest",
    "ScriptedReply",
    "echo_responder",
    "instant_retries",
]

_MODULES = {"LocalEndpoint": "._server", "instant_retries": "._waits"} | dict.fromkeys(
    ["ChatTurn", "Fault", "RecordedRequest", "ScriptedReply", "echo_responder"], "._models"
)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
