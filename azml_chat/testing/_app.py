"""The request handlers of the local endpoint: routing, auth, validation and reply bodies.

``ChatApp`` answers one parsed request with one ``Reply``; it knows nothing of sockets,
faults or threads (the server in ``_server`` does).
"""

from __future__ import annotations

import dataclasses
import hmac
import inspect
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from ._capacity import Capacity, Rejection
from ._models import ChatTurn, RecordedRequest, Responder, ScriptedReply, echo_responder, message_text
from ._reply import HTTPError, Reply, azure_error, json_bytes, json_reply, openai_error
from ._routes import KINDS, Route, find_route

logger: logging.Logger = logging.getLogger("azml_chat.testing")

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
AZURE_ML_KINDS = ("serverless", "dedicated")
#: Body keys the OpenAI chat completions API (Azure OpenAI, /openai/v1) knows; others get 400.
OPENAI_KEYS = STANDARD_KEYS | {
    "audio",
    "data_sources",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "prompt_cache_key",
    "reasoning_effort",
    "safety_identifier",
    "service_tier",
    "store",
    "stream_options",
    "top_logprobs",
    "user",
    "user_security_context",
    "verbosity",
    "web_search_options",
}
API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
DEPLOYMENT_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
JSON_SCHEMA_SINCE = "2024-08-01"  #: Azure OpenAI api-versions from this date accept json_schema


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


@dataclasses.dataclass(frozen=True)
class Call:
    """A request on its way through the app: the route it matched and the path's values."""

    req: RecordedRequest
    route: Route
    values: dict[str, str]  #: named parts of the path (``deployment``, ``project``)


class ChatApp:
    """The endpoint's behaviour: routes, auth, validation and reply bodies (no I/O).

    ``LocalEndpoint`` holds one and forwards its settings to it; the settings may be
    changed between requests. See ``LocalEndpoint`` for what each setting means.
    """

    def __init__(
        self,
        *,
        kind: str = "serverless",
        family: str = "llama",
        reply_shape: str | None = None,
        api_key: str | None = "test-key",
        token_validator: Callable[[str], bool] | None = None,
        deployments: Sequence[str] | None = None,
        model_name: str = "local-model",
        responder: Responder | None = None,
        sse_comments: bool = False,
        limits: Capacity | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if kind not in KINDS:  # checked here: the route table is keyed by kind
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
        if reply_shape is None:
            reply_shape = "output" if family in CHAT_FAMILIES else "openai"
            reply_shape = "list0" if family == "text-generation" else reply_shape
        if reply_shape not in REPLY_SHAPES:
            raise ValueError(f"unknown reply_shape {reply_shape!r}; one of {sorted(REPLY_SHAPES)}")
        self.kind = kind
        self.family = family
        self.reply_shape = reply_shape
        self.api_key = api_key
        self.token_validator = token_validator
        self.deployments: list[str] | None = list(deployments) if deployments is not None else None
        self.model_name = model_name
        self.responder: Responder = responder or echo_responder
        self.sse_comments = sse_comments
        self.limits: Capacity = limits or Capacity()
        self.clock: Callable[[], float] = clock or anyio.current_time

    async def handle(self, req: RecordedRequest) -> Reply:
        """Answer one request; never raises (a failing responder gives a 500 reply).

        A request to a model route holds a capacity slot until the server calls the
        reply's ``on_sent``; a cancelled one gives its slot back here.
        """
        found = find_route(self.kind, req.method, req.path)
        if isinstance(found, Reply):
            return found
        route, values = found
        call = Call(req, route, values)
        if route.handler != "health":
            try:
                self._check_auth(call)
                self._check_api_version(call)
                if self.kind in AZURE_ML_KINDS:
                    self._check_deployment(req)
            except HTTPError as exc:
                return exc.reply
        if route.uses_model:
            return await self._admitted(call)
        return await self._answer(call)

    async def _admitted(self, call: Call) -> Reply:
        """Run a model request within the capacity model: 429 when full, else a held slot."""
        limits = self.limits
        now = self.clock()
        rejection = limits.admit(now)
        if rejection is not None:
            return too_many_requests(rejection)
        try:
            reply = await self._answer(call)
        except BaseException:  # cancelled while served: the reply will never be sent
            limits.release()
            raise
        reply.on_sent = limits.release
        remaining = limits.remaining()
        if remaining is not None:
            reply.headers["x-ratelimit-limit-requests"] = str(limits.window_budget)
            reply.headers["x-ratelimit-remaining-requests"] = str(remaining)
        return reply

    async def _answer(self, call: Call) -> Reply:
        handlers: dict[str, Callable[[Call], Awaitable[Reply]]] = {
            "health": self._health,
            "score": self._score,
            "chat": self._chat,
            "info": self._info,
            "models": self._models,
        }
        try:
            return await handlers[call.route.handler](call)
        except HTTPError as exc:
            return exc.reply
        except Exception as exc:  # a responder failed: the Azure ML inference server's answer
            logger.exception("LocalEndpoint responder failed")
            msg = f"An unexpected error occurred in scoring script: {exc!r}"
            return json_reply(500, {"message": msg})

    def reply_headers(self, req: RecordedRequest) -> dict[str, str]:
        """Headers every reply to ``req`` carries, fault replies included: request ids, deployment."""
        request_id = str(uuid.uuid4())
        headers = {"x-request-id": request_id, "x-ms-request-id": request_id}
        if self.kind not in AZURE_ML_KINDS:
            headers["apim-request-id"] = request_id
        if "x-ms-client-request-id" in req.headers:
            headers["x-ms-client-request-id"] = req.headers["x-ms-client-request-id"]
        if self.kind == "dedicated" or (self.kind == "serverless" and req.path == "/score"):
            headers["azureml-model-deployment"] = self.deployment_for(req)
        return headers

    def deployment_name(self, req: RecordedRequest) -> str | None:
        """The deployment (or model) a request is for, as the access log shows it."""
        if self.kind == "dedicated" or (self.kind == "serverless" and req.path == "/score"):
            return self.deployment_for(req)
        in_path = DEPLOYMENT_PATH.fullmatch(req.path)
        if in_path is not None:
            return in_path.group(1)
        model = req.json.get("model") if isinstance(req.json, dict) else None
        return model if isinstance(model, str) else None

    def deployment_for(self, req: RecordedRequest) -> str:
        """The deployment that answers ``req`` (the requested one, or the first/"default")."""
        requested = req.headers.get("azureml-model-deployment")
        return requested or (self.deployments[0] if self.deployments else "default")

    def _check_auth(self, call: Call) -> None:
        if self.api_key is None and self.token_validator is None:
            return
        keys = call.route.keys
        req = call.req
        key = req.headers.get("api-key")
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        offered = [key if "api-key" in keys else None, token if "bearer" in keys else None]
        for candidate in offered:
            if candidate and self.api_key and hmac.compare_digest(candidate, self.api_key):
                return
        if token and self.token_validator is not None and self.token_validator(token):
            return
        if self.kind in AZURE_ML_KINDS:
            what = "missing" if key is None and not token else "invalid"
            reply = azure_error(401, "Unauthorized", f"Access denied: {what} key or token.")
        else:  # the Azure AI services / Azure OpenAI gateway's answer
            msg = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                "provide a valid key for an active subscription and use a correct regional API "
                "endpoint for your resource."
            )
            reply = azure_error(401, "401", msg)
        reply.headers["www-authenticate"] = "Bearer"
        raise HTTPError(reply)

    def _check_api_version(self, call: Call) -> None:
        rule, version = call.route.api_version, call.req.query.get("api-version")
        if rule == "required" and version is None:
            msg = "The api-version query parameter (?api-version=) is required for all requests."
            raise HTTPError(azure_error(400, "MissingApiVersionParameter", msg))
        if rule == "rejected" and version is not None:
            msg = "api-version query parameter is not allowed when using /v1 path"
            raise HTTPError(openai_error(400, msg, code="BadRequest", param="api-version"))
        if call.route.strict_version and version is not None and not API_VERSION.fullmatch(version):
            msg = f"Unsupported api-version {version!r}: use a date such as 2024-10-21 or 2024-08-01-preview."
            raise HTTPError(azure_error(400, "UnsupportedApiVersion", msg))

    def _check_deployment(self, req: RecordedRequest) -> None:
        name = req.headers.get("azureml-model-deployment")
        if self.deployments is not None and name is not None and name not in self.deployments:
            msg = f"No deployment named {name!r}; available: {sorted(self.deployments)}."
            raise HTTPError(azure_error(404, "DeploymentNotFound", msg))

    def _check_model(self, call: Call, body: dict[str, Any]) -> str | None:
        """The model (or Azure OpenAI deployment) the request names; errors where it must and does not."""
        route, req = call.route, call.req
        model = call.values.get("deployment") or body.get("model") or req.headers.get("x-ms-model-mesh-model-name")
        if route.needs_model and not model:
            if route.dialect == "openai":
                raise HTTPError(openai_error(400, "you must provide a model parameter", code="missing_model"))
            msg = (
                "No model specified in request. Please provide a model name in the request body "
                "or as a x-ms-model-mesh-model-name header."
            )
            raise HTTPError(azure_error(400, "no_model_name", msg))
        if model and self.kind not in AZURE_ML_KINDS and self.deployments is not None and model not in self.deployments:
            if route.dialect == "azure":
                raise HTTPError(azure_error(400, "unknown_model", f"Unknown model: {model}"))
            msg = (
                "The API deployment for this resource does not exist. If you created the deployment "
                "within the last 5 minutes, please wait a moment and try again."
            )
            raise HTTPError(azure_error(404, "DeploymentNotFound", msg))
        return str(model) if model else None

    async def _health(self, call: Call) -> Reply:
        return Reply(200, b"Healthy", "text/plain; charset=utf-8")

    async def _info(self, call: Call) -> Reply:
        info = {
            "model_name": self.model_name,
            "model_type": "chat-completion",
            "model_provider_name": "Local",
        }
        return json_reply(200, info)

    async def _models(self, call: Call) -> Reply:
        """vLLM's ``GET /v1/models``: the one model this container serves."""
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "vllm"}
        return json_reply(200, {"object": "list", "data": [model]})

    async def _respond(self, turn: ChatTurn) -> ScriptedReply:
        if self.limits.service_time > 0:
            await anyio.sleep(self.limits.service_time)
        result = self.responder(turn)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ScriptedReply(content=result)
        return result

    async def _chat(self, call: Call) -> Reply:
        req, route = call.req, call.route
        body = req.json
        openai = route.dialect == "openai"
        if not isinstance(body, dict):
            msg = "The body must be a JSON object."
            raise HTTPError(
                openai_error(400, msg, code="invalid_json") if openai else azure_error(400, "BadRequest", msg)
            )
        try:
            messages = _check_openai_body(body)
        except _Invalid as exc:
            if openai:
                where = ".".join(str(p) for p in exc.loc)
                error = openai_error(400, f"Invalid value for '{where}': {exc.msg}", code="invalid_value", param=where)
                raise HTTPError(error) from None
            detail = {"loc": ["body", *exc.loc], "msg": exc.msg, "type": exc.kind}
            raise HTTPError(json_reply(422, {"detail": [detail]})) from None
        model = self._check_model(call, body)
        params = {k: v for k, v in body.items() if k != "messages"}
        params = self._openai_params(call, params) if openai else self._azure_params(req, params)
        reply = await self._respond(ChatTurn(messages, params, "serverless", req))
        model = model or self.model_name
        if body.get("stream"):
            options = params.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return _stream_reply(reply, messages, model, usage, comments=self.sse_comments)
        return json_reply(200, _completion(reply, messages, model))

    def _azure_params(self, req: RecordedRequest, params: dict[str, Any]) -> dict[str, Any]:
        """The Azure AI model inference rule: non-standard keys need ``extra-parameters``.

        A dedicated endpoint (a vLLM container) takes any key unless told to drop extras.
        """
        extras = sorted(k for k in params if k not in STANDARD_KEYS)
        mode = req.headers.get("extra-parameters", "error").strip().lower()
        if extras and mode == "drop":
            return {k: v for k, v in params.items() if k in STANDARD_KEYS}
        if extras and mode not in ("pass-through", "allow") and self.kind != "dedicated":  # vLLM takes any key
            msg = (
                f"Extra parameters {extras} are not allowed when extra-parameters is not set "
                "or set to be 'error'. Set extra-parameters to 'pass-through' to pass to the model."
            )
            raise HTTPError(azure_error(400, "Invalid input", msg))
        return params

    def _openai_params(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI rule: unknown keys are refused (no extra-parameters header there)."""
        unknown = sorted(k for k in params if k not in OPENAI_KEYS)
        if unknown:
            msg = f"Unrecognized request argument supplied: {unknown[0]}"
            raise HTTPError(openai_error(400, msg, code="unrecognized_argument", param=unknown[0]))
        response_format = params.get("response_format")
        version = call.req.query.get("api-version")
        if (
            isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
            and version is not None
            and version[:10] < JSON_SCHEMA_SINCE
        ):
            msg = "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later"
            raise HTTPError(openai_error(400, msg, code="BadRequest", param="response_format"))
        return params

    async def _score(self, call: Call) -> Reply:
        req = call.req
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


def _stream_reply(
    reply: ScriptedReply, messages: list[dict[str, Any]], model: str, include_usage: bool, *, comments: bool
) -> Reply:
    """The SSE events of a streamed completion; ``comments``: ``: ping`` lines first and before ``[DONE]``."""
    head: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": model}

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json_bytes({**head, "choices": [choice]}) + b"\n\n"

    events = [b": ping\n\n"] if comments else []
    events.append(event({"role": "assistant", "content": ""}))
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
    if comments:
        events.append(b": ping\n\n")
    events.append(b"data: [DONE]\n\n")
    reply_ = Reply(200, content_type="text/event-stream", events=events, split=split)
    reply_.headers["cache-control"] = "no-cache"
    return reply_


def too_many_requests(rejection: Rejection) -> Reply:
    """The 429 of the capacity model, with ``retry-after`` (seconds) and ``retry-after-ms`` when it has a wait."""
    reply = azure_error(429, "TooManyRequests", rejection.message)
    if rejection.retry_after is not None:
        reply.headers["retry-after"] = str(math.ceil(rejection.retry_after))
        reply.headers["retry-after-ms"] = str(round(rejection.retry_after * 1000))
    return reply
