"""``azml-chat serve``: an imitation of an Azure chat endpoint on this machine, to develop and
test against: one log line per request, scripted faults and replies, a capacity limit, and a
graceful stop on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import ConfigurationError
from .settings import LOCAL_KEY

__all__ = ["add_arguments", "run"]

EPILOG = """\
examples:
  azml-chat serve --kind dedicated --family mistral --port 8080
  azml-chat serve --fault 429,retry-after=2 --fault 424,model-status=503,reason=warming --fault slow=3
  azml-chat serve --replies replies.jsonl --model-name gpt-4o --kind azure-openai
  azml-chat serve --capacity 8 --service-time 0.05     # at most 160 requests/s, 429 beyond
  azml-chat serve --api-key ''                         # no key needed

fault options (Fault.parse): a status first, then retry-after=S, retry-after-ms=MS, times=N,
path=/score, model-status=CODE, reason=TEXT, slow=S, trickle=S, chunk=BYTES,
drop=before_headers|in_body|mid_stream, body=TEXT, stream-error=TEXT, header:NAME=VALUE

Point a client at the URL it prints; Ctrl-C or SIGTERM stops it after requests in progress.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` command's arguments to ``parser``."""
    parser.description = (
        "Serve an imitation of an Azure chat endpoint on this machine, for developing and testing "
        "against: one log line per request on stderr, scripted faults and replies, a capacity "
        "limit. Stops gracefully on Ctrl-C or SIGTERM."
    )
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--kind", choices=["serverless", "dedicated", "foundry", "azure-openai"], default="serverless")
    parser.add_argument("--family", default="llama", help="/score body family: llama, mistral, phi, openai, ...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=LOCAL_KEY, help="key clients must send ('' disables auth)")
    parser.add_argument("--model-name", default="local-model", help="model name in replies and /info")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="queue a fault, e.g. '429,retry-after=2', '424,model-status=503', 'slow=5', 'drop=mid_stream,times=3' "
        "(repeatable; consumed in order)",
    )
    parser.add_argument(
        "--replies",
        metavar="FILE",
        help="answer from a JSONL file of scripted replies, in order and then again: one JSON string or "
        'object a line with "content", "tool_calls", "reasoning_content", "finish_reason", "usage" '
        "(default: echo the last user message)",
    )
    parser.add_argument("--capacity", type=int, metavar="N", help="at most N requests in flight (429 beyond)")
    parser.add_argument("--service-time", type=float, default=0.0, metavar="SECONDS", help="time each request takes")
    parser.add_argument("--requests-per-minute", type=float, metavar="N", help="a request quota (429 with retry-after)")
    parser.add_argument("--retry-after", type=float, metavar="SECONDS", help="retry-after of --capacity 429s")
    parser.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="on shutdown, time for requests in progress"
    )
    parser.add_argument("--quiet", action="store_true", help="no log line per request")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; faults, replies and limits from the flags (bad ones: exit 2)."""
    import logging

    import anyio

    from ..testing import Fault, LocalEndpoint, load_replies, replay_responder

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

    try:
        signum = anyio.run(lambda: endpoint.serve_until_signal(grace=args.grace, on_ready=ready))
    finally:
        log.removeHandler(handler)
    print(f"stopped ({signal.Signals(signum).name})", file=sys.stderr, flush=True)
    return 0
