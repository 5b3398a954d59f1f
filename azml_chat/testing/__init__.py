"""A local, scriptable imitation of Azure chat endpoints for tests.

``LocalEndpoint`` is a real HTTP/1.1 server (h11 + anyio, no other dependency) serving the
routes of Azure ML (dedicated ``/score``, serverless chat completions), Foundry and Azure
OpenAI with their auth and api-version rules, with fault scripting (``Fault``, also from a
one-line spec with ``Fault.parse``), scripted replies (``ScriptedReply``, ``load_replies``,
``replay_responder``), a capacity model (``CapacityStats``) and request recording
(``RecordedRequest``); ``instant_retries()`` records a client's retry waits instead of
sleeping them. Names load lazily so that the pytest plugin stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._capacity import CapacityStats
    from ._faults import Fault
    from ._models import ChatTurn, RecordedRequest, ScriptedReply, echo_responder, load_replies, replay_responder
    from ._server import LocalEndpoint
    from ._waits import instant_retries

__all__ = [
    "CapacityStats",
    "ChatTurn",
    "Fault",
    "LocalEndpoint",
    "RecordedRequest",
    "ScriptedReply",
    "echo_responder",
    "instant_retries",
    "load_replies",
    "replay_responder",
]

_MODULES = {
    "LocalEndpoint": "._server",
    "Fault": "._faults",
    "CapacityStats": "._capacity",
    "instant_retries": "._waits",
} | dict.fromkeys(
    ["ChatTurn", "RecordedRequest", "ScriptedReply", "echo_responder", "load_replies", "replay_responder"], "._models"
)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
