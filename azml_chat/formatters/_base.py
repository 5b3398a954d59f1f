"""The formatter interface: one body dialect and one model family per formatter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ..messages import ChatResponse, Message

__all__ = ["CALL_FEATURES", "ChatFormatter", "Dialect"]

#: ``"score"``: a dedicated ``/score`` container's own body; ``"chat-completions"``: the OpenAI body.
Dialect = Literal["score", "chat-completions"]

#: Call parameters that need the endpoint to have the feature, not only the body to carry a key.
CALL_FEATURES = frozenset({"tools", "tool_choice", "response_format", "model"})


class ChatFormatter:
    """Turns messages and parameters into a request body, and a decoded reply into a response.

    Subclass it for a custom container: set ``name``, implement :meth:`format_request`
    and :meth:`parse_response`, then pass an instance (or the class) as ``formatter=`` or
    register it with :func:`azml_chat.register_formatter`. ``param_aliases`` renames the
    portable parameter names (``max_tokens``) to the family's own (``max_new_tokens``).
    ``features`` lists which of :data:`CALL_FEATURES` (``tools``, ``tool_choice``,
    ``response_format``, ``model``) the body can carry; asking for another raises
    :class:`~azml_chat.InvalidRequestError` before anything is sent.
    """

    name: ClassVar[str] = "custom"
    #: The body dialect this formatter writes.
    dialect: ClassVar[Dialect] = "score"
    #: Whether the endpoint can stream this body (SSE); otherwise ``stream()`` yields one chunk.
    supports_streaming: ClassVar[bool] = False
    param_aliases: ClassVar[Mapping[str, str]] = {}
    features: ClassVar[frozenset[str]] = frozenset()

    def format_request(self, messages: tuple[Message, ...], params: Mapping[str, Any]) -> Any:
        """Return the JSON body (any JSON-serializable value) for these messages and parameters."""
        raise NotImplementedError

    def parse_response(self, payload: Any) -> ChatResponse | str:
        """Turn the decoded JSON reply into a :class:`ChatResponse` (or just the answer text)."""
        raise NotImplementedError

    def request_headers(self, body: Any) -> Mapping[str, str]:
        """Extra headers this body needs (none by default)."""
        return {}

    def rename_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A new dict with the portable parameter names mapped to this family's names."""
        aliases = self.param_aliases
        if aliases.keys().isdisjoint(params):  # the usual case: a plain copy is several times cheaper
            return dict(params)
        return {aliases.get(key, key): value for key, value in params.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
