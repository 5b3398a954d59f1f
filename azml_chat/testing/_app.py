"""The request handlers of the local endpoint: routing, auth, validation and reply bodies."""

from __future__ import annotations

import hmac
import http
import inspect
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from ._models import ChatTurn, Fault, RecordedRequest, Responder, ScriptedReply, message_text

CHAT_FAMILIES = frozenset({"llama", "hf", "phi", "mistral"})
FAMILIES = CHAT_FAMILIES | {"openai", "text-generation"}
REPLY_SHAPES = frozenset({"output", "list0", "generated_text", "output_list", "list", "openai", "double_encoded"})
STANDARD_KEYS = frozenset(
    {
        "messages",
        "frequency_penalty",
        "presence_penalty",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "stream",
        "response_format",
        "tools",
        "tool_choice",
        "model",
    }
)
ROLES = ("system", "user", "assistant", "tool", "developer")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_stop(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


# key -> (check, pydantic error type, message)
_FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "temperature": (_is_number, "float_type", "Input should be a valid number"),
    "top_p": (_is_number, "float_type", "Input should be a valid number"),
    "frequency_penalty": (_is_number, "float_type", "Input should be a valid number"),
    "presence_penalty": (_is_number, "float_type", "Input should be a valid number"),
    "max_tokens": (_is_int, "int_type", "Input should be a valid integer"),
    "seed": (_is_int, "int_type", "Input should be a valid integer"),
    "stream": (lambda v: isinstance(v, bool), "bool_type", "Input should be a valid boolean"),
    "stop": (_is_stop, "list_type", "Input should be a valid string or list of strings"),
    "response_format": (lambda v: isinstance(v, dict), "dict_type", "Input should be a dict"),
    "tools": (lambda v: isinstance(v, list), "list_type", "Input should be a valid list"),
    "tool_choice": (lambda v: isinstance(v, str | dict), "union_type", "Input should be str/dict"),
    "model": (lambda v: isinstance(v, str), "string_type", "Input should be a valid string"),
}


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@attrs.define
class Reply:
    """A response before it is put on the wire; ``events`` makes it an SSE stream."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = attrs.field(factory=dict)
    events: list[bytes] | None = None
    split: int = 0  #: events before this index go out before a stream error / mid-stream drop


class HTTPError(Exception):
    """Raised by handlers to answer with an error reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def json_reply(status: int, obj: Any, **headers: str) -> Reply:
    """A JSON reply."""
    return Reply(status, json_bytes(obj), headers={k.replace("_", "-"): v for k, v in headers.items()})


def azure_error(status: int, code: str, message: str) -> Reply:
    """An Azure AI inference API style error: ``{"error": {"code", "message"}}``."""
    return json_reply(status, {"error": {"code": code, "message": message}}, x_ms_error_code=code)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code ("" if unknown)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def fault_reply(fault: Fault) -> Reply:
    """The reply a status/body fault sends instead of the normal one."""
    if fault.body is None:
        phrase = reason_phrase(fault.status) or "Error"
        code = phrase.replace(" ", "").replace("-", "")
        reply = azure_error(fault.status, code, f"Simulated {fault.status} {phrase} (fault).")
    elif isinstance(fault.body, bytes):
        reply = Reply(fault.status, fault.body)
    elif isinstance(fault.body, str):
        reply = Reply(fault.status, fault.body.encode())
    else:
        reply = Reply(fault.status, json_bytes(fault.body))
    if fault.content_type is not None:
        reply.content_type = fault.content_type
    if fault.status < 200 or fault.status in (204, 304):
        reply.body = b""
    return reply


class _Invalid(Exception):
    def __init__(self, loc: tuple[str | int, ...], msg: str, kind: str) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind = loc, msg, kind


def _check_openai_body(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate an OpenAI chat body; return its messages or raise ``_Invalid``."""
    if "messages" not in body:
        raise _Invalid(("messages",), "Field required", "missing")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _Invalid(("messages",), "Input should be a valid list", "list_type")
    if not messages:
        raise _Invalid(("messages",), "List should have at least 1 item, not 0", "too_short")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Invalid(("messages", i), "Input should be a valid dictionary", "dict_type")
        if message.get("role") not in ROLES:
            allowed = ", ".join(repr(r) for r in ROLES)
            kind = "missing" if "role" not in message else "literal_error"
            raise _Invalid(("messages", i, "role"), f"Input should be one of {allowed}", kind)
    for key, (check, kind, msg) in _FIELD_TYPES.items():
        if body.get(key) is not None and not check(body[key]):
            raise _Invalid((key,), msg, kind)
    return [dict(m) for m in messages]


def _split_words(text: str) -> list[str]:
    """Pieces of ``text`` (each a word with its trailing spaces) that concatenate back exactly."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def _split_args(text: str) -> list[str]:
    """Tool-call arguments in 2-3 fragments (one if shorter than 2 characters)."""
    if len(text) < 2:
        return [text] if text else []
    step = math.ceil(len(text) / min(3, len(text)))
    return [text[i : i + step] for i in range(0, len(text), step)]


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Tool calls completed to the OpenAI form (id, type, string arguments)."""
    out = []
    for call in calls or []:
        fn = dict(call.get("function") or {})
        args = fn.get("arguments", "")
        fn["arguments"] = args if isinstance(args, str) else json.dumps(args)
        fn.setdefault("name", "")
        out.append(
            {**call, "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function"} | {"function": fn}
        )
    return out


class Handlers:
    """Route handlers; ``LocalEndpoint`` inherits them and holds the configuration."""

    family: str
    reply_shape: str
    api_key: str | None
    token_validator: Callable[[str], bool] | None
    deployments: Sequence[str] | None
    model_name: str
    responder: Responder

    async def handle(self, req: RecordedRequest) -> Reply:
        """Answer one request (never raises ``HTTPError``)."""
        routes: dict[str, tuple[str, Callable[[RecordedRequest], Any]]] = {
            "/": ("GET", self._health),
            "/score": ("POST", self._score),
            "/v1/chat/completions": ("POST", self._chat),
            "/chat/completions": ("POST", self._chat_versioned),
            "/models/chat/completions": ("POST", self._chat_versioned),
            "/info": ("GET", self._info),
            "/models/info": ("GET", self._info),
        }
        if req.path not in routes:
            return azure_error(404, "NotFound", f"Resource not found: {req.path}")
        method, handler = routes[req.path]
        if req.method != method:
            reply = azure_error(405, "MethodNotAllowed", f"Method {req.method} not allowed.")
            reply.headers["allow"] = method
            return reply
        try:
            if req.path != "/":
                self._check_auth(req)
                self._check_deployment(req)
            result: Reply = await handler(req)
        except HTTPError as exc:
            return exc.reply
        return result

    def deployment_for(self, req: RecordedRequest) -> str:
        """The deployment that answers ``req`` (the requested one, or the first/"default")."""
        requested = req.headers.get("azureml-model-deployment")
        return requested or (self.deployments[0] if self.deployments else "default")

    def _check_auth(self, req: RecordedRequest) -> None:
        if self.api_key is None and self.token_validator is None:
            return
        key = req.headers.get("api-key")
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        for candidate in (key, token):
            if candidate and self.api_key and hmac.compare_digest(candidate, self.api_key):
                return
        if token and self.token_validator is not None and self.token_validator(token):
            return
        what = "missing" if key is None and not token else "invalid"
        reply = azure_error(401, "Unauthorized", f"Access denied: {what} key or token.")
        reply.headers["www-authenticate"] = "Bearer"
        raise HTTPError(reply)

    def _check_deployment(self, req: RecordedRequest) -> None:
        name = req.headers.get("azureml-model-deployment")
        if self.deployments is not None and name is not None and name not in self.deployments:
            msg = f"No deployment named {name!r}; available: {sorted(self.deployments)}."
            raise HTTPError(azure_error(404, "DeploymentNotFound", msg))

    async def _health(self, req: RecordedRequest) -> Reply:
        return Reply(200, b"Healthy", "text/plain; charset=utf-8")

    async def _info(self, req: RecordedRequest) -> Reply:
        info = {
            "model_name": self.model_name,
            "model_type": "chat-completion",
            "model_provider_name": "Local",
        }
        return json_reply(200, info)

    async def _respond(self, turn: ChatTurn) -> ScriptedReply:
        result = self.responder(turn)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ScriptedReply(content=result)
        return result

    async def _chat_versioned(self, req: RecordedRequest) -> Reply:
        if "api-version" not in req.query:
            msg = "The api-version query parameter (?api-version=) is required for all requests."
            raise HTTPError(azure_error(400, "MissingApiVersionParameter", msg))
        return await self._chat(req)

    async def _chat(self, req: RecordedRequest) -> Reply:
        body = req.json
        if not isinstance(body, dict):
            raise HTTPError(azure_error(400, "BadRequest", "The body must be a JSON object."))
        try:
            messages = _check_openai_body(body)
        except _Invalid as exc:
            detail = {"loc": ["body", *exc.loc], "msg": exc.msg, "type": exc.kind}
            raise HTTPError(json_reply(422, {"detail": [detail]})) from None
        params = {k: v for k, v in body.items() if k != "messages"}
        extras = sorted(k for k in params if k not in STANDARD_KEYS)
        mode = req.headers.get("extra-parameters", "error").strip().lower()
        if extras and mode == "drop":
            params = {k: v for k, v in params.items() if k in STANDARD_KEYS}
        elif (
            extras and mode not in ("pass-through", "allow") and getattr(self, "kind", "") != "dedicated"
        ):  # vLLM takes any key
            msg = (
                f"Extra parameters {extras} are not allowed when extra-parameters is not set "
                "or set to be 'error'. Set extra-parameters to 'pass-through' to pass to the model."
            )
            raise HTTPError(azure_error(400, "Invalid input", msg))
        reply = await self._respond(ChatTurn(messages, params, "serverless", req))
        model = body.get("model") or self.model_name
        if body.get("stream"):
            options = params.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return _stream_reply(reply, messages, model, usage)
        return json_reply(200, _completion(reply, messages, model))

    async def _score(self, req: RecordedRequest) -> Reply:
        body = req.json
        try:
            if not isinstance(body, dict):
                raise _Invalid((), "The request body must be a JSON object.", "")
            if self.family == "openai":
                messages = _check_openai_body(body)
                params = {k: v for k, v in body.items() if k != "messages"}
            else:
                messages, params = self._parse_score(body)
        except _Invalid as exc:
            where = ".".join(str(p) for p in exc.loc)
            msg = f"Invalid input{' at ' + where if where else ''}: {exc.msg}"
            raise HTTPError(json_reply(400, {"message": msg})) from None
        reply = await self._respond(ChatTurn(messages, params, "dedicated", req))
        text = reply.content or ""
        shapes: dict[str, Any] = {
            "output": {"output": text},
            "list0": [{"0": text}],
            "generated_text": [{"generated_text": text}],
            "output_list": {"output": [text]},
            "list": [text],
            "double_encoded": json.dumps({"output": text}),
        }
        if self.reply_shape == "openai":
            model = body.get("model") or self.model_name
            return json_reply(200, _completion(reply, messages, model))
        return json_reply(200, shapes[self.reply_shape])

    def _parse_score(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if isinstance(body.get("input_data"), dict):
            data, params = body["input_data"], body["input_data"].get("parameters")
        elif isinstance(body.get("inputs"), dict):
            data, params = body["inputs"], body.get("parameters", body["inputs"].get("parameters"))
        else:
            raise _Invalid(("input_data",), "expected an object with 'input_string'", "missing")
        if params is not None and not isinstance(params, dict):
            raise _Invalid(("parameters",), "parameters must be an object", "dict_type")
        prompts = data.get("input_string")
        if not isinstance(prompts, list) or not prompts:
            raise _Invalid(("input_string",), "must be a non-empty list", "list_type")
        messages: list[dict[str, Any]] = []
        for i, item in enumerate(prompts):
            if self.family == "text-generation":
                if not isinstance(item, str):
                    raise _Invalid(("input_string", i), "prompts must be strings", "string_type")
                messages.append({"role": "user", "content": item})
            elif not isinstance(item, dict) or item.get("role") not in ROLES:
                raise _Invalid(("input_string", i), "expected {'role', 'content'}", "dict_type")
            elif not isinstance(item.get("content"), str | list):
                raise _Invalid(("input_string", i, "content"), "content missing", "missing")
            else:
                messages.append(dict(item))
        return messages, dict(params or {})


def _usage(reply: ScriptedReply, messages: list[dict[str, Any]]) -> dict[str, int]:
    if reply.usage is not None:
        return dict(reply.usage)
    prompt = sum(_words(message_text(m)) for m in messages)
    completion = _words(reply.content) + _words(reply.reasoning_content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(reply: ScriptedReply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _completion(reply: ScriptedReply, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply.tool_calls)
    elif reply.content is None:
        message["content"] = ""
    if reply.reasoning_content is not None:
        message["reasoning_content"] = reply.reasoning_content
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply, messages),
    }


def _stream_reply(reply: ScriptedReply, messages: list[dict[str, Any]], model: str, include_usage: bool) -> Reply:
    """The SSE events of a streamed completion."""
    head: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": model}

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json_bytes({**head, "choices": [choice]}) + b"\n\n"

    events = [b": ping\n\n", event({"role": "assistant", "content": ""})]
    body = [event({"reasoning_content": p}) for p in _split_words(reply.reasoning_content or "")]
    body += [event({"content": p}) for p in _split_words(reply.content or "")]
    for i, call in enumerate(_tool_calls(reply.tool_calls)):
        fn = call["function"]
        first = {"index": i, "id": call["id"], "type": "function"}
        body.append(event({"tool_calls": [first | {"function": {"name": fn["name"], "arguments": ""}}]}))
        for frag in _split_args(fn["arguments"]):
            body.append(event({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}))
    split = len(events) + min(1, len(body))
    events += [*body, event({}, _finish_reason(reply))]
    if include_usage:
        usage = {**head, "choices": [], "usage": _usage(reply, messages)}
        events.append(b"data: " + json_bytes(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    reply_ = Reply(200, content_type="text/event-stream", events=events, split=split)
    reply_.headers["cache-control"] = "no-cache"
    return reply_


def stream_error_event(error: Any) -> bytes:
    """The ``event: error`` SSE event for a fault's ``stream_error``."""
    data = error if isinstance(error, bytes) else (error.encode() if isinstance(error, str) else json_bytes(error))
    return b"event: error\ndata: " + data + b"\n\n"
