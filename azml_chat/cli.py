"""The ``azml-chat`` command: chat with an endpoint, or serve the embedded local endpoint.

azml-chat chat "What is Azure ML?"          # AZUREML_* settings, else the embedded endpoint
azml-chat chat --stream --system "Be brief" "Hello"
azml-chat serve --kind dedicated --family mistral --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ._version import __version__
from .batch import cli as batch_cli
from .client import ChatClient
from .config import settings_from_env
from .errors import AzureMLChatError, ConfigurationError
from .messages import ChatResponse, Message

__all__ = ["main"]

LOCAL_KEY = "local-key"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azml-chat", description="Chat with Azure ML online endpoints.")
    parser.add_argument("--version", action="version", version=f"azml-chat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="send one question and print the reply")
    chat.add_argument("question", help="the user message")
    chat.add_argument("--system", help="a system message sent first")
    chat.add_argument("--stream", action="store_true", help="print the reply as it arrives")
    chat.add_argument("--json", action="store_true", help="print the whole response as JSON")
    chat.add_argument("--url", help="endpoint URL (default: $AZUREML_ENDPOINT_URL)")
    chat.add_argument("--api-key", help="endpoint key (default: $AZUREML_ENDPOINT_API_KEY)")
    chat.add_argument("--api-type", choices=["dedicated", "serverless", "realtime"], help="endpoint kind")
    chat.add_argument("--deployment", help="deployment name (default: $AZUREML_DEPLOYMENT_NAME)")
    chat.add_argument("--formatter", help="model family of a /score endpoint: llama, mistral, phi, ...")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--timeout", type=float, help="seconds per attempt (default: $AZUREML_TIMEOUT or 50)")

    serve = commands.add_parser(
        "serve",
        help="run the embedded local endpoint until interrupted",
        description=(
            "Serve an imitation of an Azure chat endpoint on this machine, for developing and testing "
            "against: one log line per request on stderr, scripted faults and replies, a capacity "
            "limit. Stops gracefully on Ctrl-C or SIGTERM."
        ),
        epilog=_SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--kind", choices=["serverless", "dedicated", "foundry", "azure-openai"], default="serverless")
    serve.add_argument("--family", default="llama", help="/score body family: llama, mistral, phi, openai, ...")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--api-key", default=LOCAL_KEY, help="key clients must send ('' disables auth)")
    serve.add_argument("--model-name", default="local-model", help="model name in replies and /info")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="queue a fault, e.g. '429,retry-after=2', '424,model-status=503', 'slow=5', 'drop=mid_stream,times=3' "
        "(repeatable; consumed in order)",
    )
    serve.add_argument(
        "--replies",
        metavar="FILE",
        help="answer from a JSONL file of scripted replies, in order and then again: one JSON string or "
        'object a line with "content", "tool_calls", "reasoning_content", "finish_reason", "usage" '
        "(default: echo the last user message)",
    )
    serve.add_argument("--capacity", type=int, metavar="N", help="at most N requests in flight (429 beyond)")
    serve.add_argument("--service-time", type=float, default=0.0, metavar="SECONDS", help="time each request takes")
    serve.add_argument("--requests-per-minute", type=float, metavar="N", help="a request quota (429 with retry-after)")
    serve.add_argument("--retry-after", type=float, metavar="SECONDS", help="retry-after of --capacity 429s")
    serve.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="on shutdown, time for requests in progress"
    )
    serve.add_argument("--quiet", action="store_true", help="no log line per request")
    batch_cli.add_arguments(commands.add_parser("batch", help="run a JSONL file of requests (resumable)"))
    return parser


_SERVE_EXAMPLES = """examples:
  azml-chat serve --kind dedicated --family mistral --port 8080
  azml-chat serve --fault 429,retry-after=2 --fault 424,model-status=503,reason=warming --fault slow=3
  azml-chat serve --replies replies.jsonl --model-name gpt-4o --kind azure-openai
  azml-chat serve --capacity 8 --service-time 0.05     # at most 160 requests/s, 429 beyond

fault options (Fault.parse): a status first, then retry-after=S, retry-after-ms=MS, times=N,
path=/score, model-status=CODE, reason=TEXT, slow=S, trickle=S, chunk=BYTES,
drop=before_headers|in_body|mid_stream, body=TEXT, stream-error=TEXT, header:NAME=VALUE
"""


@contextlib.contextmanager
def _endpoint_settings(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Client settings from flags over the environment; the embedded endpoint if there are none."""
    settings = settings_from_env()
    for flag, key in (
        ("url", "endpoint_url"),
        ("api_key", "api_key"),
        ("api_type", "api_type"),
        ("deployment", "deployment_name"),
        ("formatter", "formatter"),
        ("timeout", "timeout"),
    ):
        value = getattr(args, flag)
        if value is not None:
            settings[key] = value
    if "endpoint_url" in settings:
        yield settings
        return
    from .testing import LocalEndpoint

    with LocalEndpoint(kind="serverless", api_key=LOCAL_KEY) as endpoint:
        print(
            f"azml-chat: no AZUREML_ENDPOINT_URL set; using the embedded local endpoint at {endpoint.url}",
            file=sys.stderr,
        )
        yield {**settings, "endpoint_url": endpoint.url, "api_key": LOCAL_KEY}


def _response_json(response: ChatResponse) -> str:
    usage = response.usage
    return json.dumps(
        {
            "content": response.content,
            "reasoning_content": response.reasoning_content,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
            "finish_reason": response.finish_reason,
            "model": response.model,
            "id": response.id,
            "request_id": response.request_id,
            "elapsed": response.elapsed,
            "usage": None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        },
        ensure_ascii=False,
        indent=2,
    )


def _chat(args: argparse.Namespace) -> None:
    messages = [Message.system(args.system)] if args.system else []
    messages.append(Message.user(args.question))
    params = {
        key: value
        for key, value in (("temperature", args.temperature), ("max_tokens", args.max_tokens))
        if value is not None
    }
    with _endpoint_settings(args) as settings, ChatClient(**settings) as client:
        if not args.stream:
            response = client.chat(messages, **params)
            print(_response_json(response) if args.json else response.content)
            return
        with client.stream(messages, **params) as stream:
            for chunk in stream:
                if not args.json and chunk.content:
                    print(chunk.content, end="", flush=True)
            response = stream.get_final_response()
        print(_response_json(response) if args.json else "")


def _serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT/SIGTERM; faults, replies and limits from the flags (bad ones: exit 2)."""
    import logging

    import anyio

    from .testing import Fault, LocalEndpoint, load_replies, replay_responder

    try:
        faults = [Fault.parse(spec) for spec in args.fault]
        responder = replay_responder(load_replies(args.replies)) if args.replies else None
        endpoint = LocalEndpoint(
            kind=args.kind,
            family=args.family,
            host=args.host,
            port=args.port,
            api_key=args.api_key or None,
            model_name=args.model_name,
            responder=responder,
            capacity=args.capacity,
            service_time=args.service_time,
            requests_per_minute=args.requests_per_minute,
            retry_after=args.retry_after,
        )
    except (ValueError, OSError) as exc:
        raise ConfigurationError(str(exc)) from None
    for fault in faults:
        endpoint.add_fault(fault)
    log = logging.getLogger("azml_chat.testing")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if args.quiet:
        logging.getLogger("azml_chat.testing.access").setLevel(logging.WARNING)

    def ready(endpoint: LocalEndpoint) -> None:
        print(f"serving a local {args.kind} endpoint ({args.family}) at {endpoint.url}", flush=True)
        if args.api_key:
            print("clients must send the key given with --api-key (default: local-key)", flush=True)
        if faults:
            print(f"{len(faults)} fault(s) queued", flush=True)

    signum = anyio.run(lambda: endpoint.serve_until_signal(grace=args.grace, on_ready=ready))
    print(f"stopped ({_signal_name(signum)})", file=sys.stderr, flush=True)


def _signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    import signal

    return signal.Signals(signum).name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 request failed, 2 bad settings)."""
    args = _parser().parse_args(argv)
    if args.command == "batch":
        return batch_cli.run(args)
    try:
        _chat(args) if args.command == "chat" else _serve(args)
    except ConfigurationError as exc:
        print(f"azml-chat: configuration error: {exc}", file=sys.stderr)
        return 2
    except AzureMLChatError as exc:
        print(f"azml-chat: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
