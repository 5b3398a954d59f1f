"""The formatter interface and the reply parsing shared by the model families."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from .._json import dumps, loads
from ..errors import ModelError, ResponseFormatError
from ..messages import ChatResponse, Message, _structure_message, _structure_usage

__all__ = ["ChatFormatter", "error_of_payload", "parse_chat_completion", "parse_dedicated_reply"]


class ChatFormatter:
    """Turns messages and parameters into a request body, and a decoded reply into a response.

    Subclass it for a custom container: set ``name``, implement
    :meth:`format_request` and :meth:`parse_response`, then pass an instance (or
    the class) as ``formatter=`` or register it with
    :func:`azml_chat.register_formatter`. ``param_aliases`` renames the portable
    parameter names (``max_tokens``) to the family's own (``max_new_tokens``).
    """

    name: ClassVar[str] = "custom"
    #: ``"score"`` for dedicated ``/score`` bodies, ``"chat"`` for OpenAI chat completions.
    route: ClassVar[Literal["score", "chat"]] = "score"
    #: Whether the endpoint can stream this body (SSE); otherwise ``stream()`` yields one chunk.
    supports_streaming: ClassVar[bool] = False
    param_aliases: ClassVar[Mapping[str, str]] = {}

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
        return {aliases.get(key, key): value for key, value in params.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _excerpt(payload: Any) -> str:
    try:
        return dumps(payload).decode()[:200]
    except Exception:
        return repr(payload)[:200]


def error_of_payload(payload: Any) -> tuple[str, str | None] | None:
    """The (message, code) of an error body, or ``None`` if ``payload`` is no error body.

    Knows ``{"error": {"code", "message"}}``, ``{"error": "..."}``, ``{"detail": "..."}``,
    pydantic-style ``{"detail": [{"loc", "msg"}]}`` and ``{"message": "..."}``.
    """
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("msg") or _excerpt(error)
        code = error.get("code")
        return str(message), (str(code) if code is not None else None)
    if isinstance(error, str) and error:
        return error, None
    detail = payload.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                location = ".".join(str(part) for part in item.get("loc", ()))
                parts.append(f"{location}: {item.get('msg', '')}" if location else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts), None
    message = payload.get("message")
    if isinstance(message, str) and set(payload) <= {"message", "code", "status"}:
        return message, None
    return None


def _raise_error_body(payload: Any) -> None:
    found = error_of_payload(payload)
    if found is not None:
        raise ModelError(
            f"the endpoint answered 200 with an error: {found[0]}", status_code=200, body=payload, code=found[1]
        )
    if payload == {} or payload is None:
        raise ModelError("the endpoint answered 200 with an empty body", status_code=200, body=payload)


def _split_think(message: Message) -> Message:
    """Move an inline ``<think>...</think>`` prefix into ``reasoning_content``."""
    content = message.content
    if isinstance(content, str) and message.reasoning_content is None:
        stripped = content.lstrip()
        if stripped.startswith("<think>") and "</think>" in stripped:
            thinking, _, answer = stripped[len("<think>") :].partition("</think>")
            return Message(
                message.role,
                answer.lstrip(),
                name=message.name,
                tool_calls=message.tool_calls,
                reasoning_content=thinking.strip(),
            )
    return message


def parse_chat_completion(payload: Any) -> ChatResponse:
    """Parse an OpenAI ``chat.completion`` object (serverless, vLLM containers)."""
    # ``type(x) is dict`` first: decoded JSON is plain dicts, and the Mapping ABC check is slow.
    if not (type(payload) is dict or isinstance(payload, Mapping)) or not isinstance(payload.get("choices"), list):
        _raise_error_body(payload)
        raise ResponseFormatError("expected a chat.completion object with 'choices'", excerpt=_excerpt(payload))
    choices = payload["choices"]
    if not choices or not (type(choices[0]) is dict or isinstance(choices[0], Mapping)):
        raise ResponseFormatError("the reply has no choices", excerpt=_excerpt(payload))
    choice = choices[0]
    wire = choice.get("message")
    if not (type(wire) is dict or isinstance(wire, Mapping)):
        text = choice.get("text")  # completions-style choice
        if not isinstance(text, str):
            raise ResponseFormatError("the first choice has no message", excerpt=_excerpt(payload))
        wire = {"role": "assistant", "content": text}
    elif not wire.get("role"):
        wire = {**wire, "role": "assistant"}
    try:
        message = _structure_message(wire)
    except ValueError as exc:
        raise ResponseFormatError(f"the reply message is malformed: {exc}", excerpt=_excerpt(payload)) from None
    usage = payload.get("usage")
    model = payload.get("model")
    reply_id = payload.get("id")
    return ChatResponse(
        _split_think(message),
        choice.get("finish_reason"),
        _structure_usage(usage) if type(usage) is dict or isinstance(usage, Mapping) else None,
        model if isinstance(model, str) else None,
        reply_id if isinstance(reply_id, str) else None,
    )


def parse_dedicated_reply(payload: Any) -> ChatResponse | str:
    """Parse any reply shape of the Azure ML dedicated containers (protocol.md section 3).

    ``{"output": text}``, ``{"output": [text]}``, ``[{"0": text}]``,
    ``[{"generated_text": text}]``, ``[text]``, an OpenAI-like object, and any of
    those JSON-encoded once more as a string. Error bodies sent with 200 raise
    :class:`ModelError`.
    """
    for _ in range(2):  # the inference server may have JSON-encoded a JSON string
        if not isinstance(payload, str):
            break
        try:
            payload = loads(payload)
        except ValueError:
            return str(payload)  # a plain text answer
    if isinstance(payload, Mapping):
        if "choices" in payload:
            return parse_chat_completion(payload)
        output = payload.get("output", payload.get("generated_text"))
        if isinstance(output, list) and output:
            output = output[0]
        if isinstance(output, Mapping):
            output = output.get("generated_text", output.get("0"))
        if isinstance(output, str):
            return output
        _raise_error_body(payload)
    elif isinstance(payload, list) and payload:
        first = payload[0]
        if isinstance(first, str):
            return first
        if isinstance(first, Mapping):
            text = first.get("0", first.get("generated_text", first.get("output")))
            if isinstance(text, str):
                return text
            _raise_error_body(first)
    elif payload is None or payload == []:
        raise ModelError("the endpoint answered 200 with an empty body", status_code=200, body=payload)
    raise ResponseFormatError("unrecognized reply from the /score endpoint", excerpt=_excerpt(payload))
