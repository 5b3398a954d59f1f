"""``azml-chat serve``: run the embedded local endpoint until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import time

from .settings import LOCAL_KEY, embedded_endpoint

__all__ = ["add_arguments", "run"]

EPILOG = """\
examples:
  azml-chat serve                                     # serverless, /v1/chat/completions, key local-key
  azml-chat serve --kind dedicated --family mistral --port 8080
  azml-chat serve --api-key ''                        # no key needed

Point a client at the URL it prints; Ctrl-C stops it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` command's arguments to ``parser``."""
    parser.description = "Run the embedded local endpoint (an imitation of Azure ML) until interrupted."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--kind", choices=["dedicated", "serverless"], default="serverless")
    parser.add_argument("--family", default="llama", help="/score body family: llama, mistral, phi, openai, ...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=LOCAL_KEY, help="key clients must send ('' disables auth)")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; returns the exit status."""
    settings = {"kind": args.kind, "family": args.family, "host": args.host, "port": args.port}
    with embedded_endpoint(**settings, api_key=args.api_key or None) as endpoint:
        print(f"serving a local {args.kind} endpoint ({args.family}) at {endpoint.url}", flush=True)
        if args.api_key:
            print("clients must send the key given with --api-key (default: local-key)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0
