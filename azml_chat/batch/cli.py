"""``azml-chat batch INPUT.jsonl -o OUTPUT.jsonl``: a resumable batch job from the command line.

    azml-chat batch requests.jsonl -o results.jsonl                # AZUREML_* settings
    azml-chat batch requests.jsonl -o results.jsonl --errors failed.jsonl --max-requests-per-minute 600
    azml-chat batch requests.jsonl -o results.jsonl                # again after a crash: resumes

Exit status: 0 every row succeeded, 1 some rows failed (their lines say why), 2 bad input
or settings (nothing sent), 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_arguments", "run"]

EPILOG = """\
input lines: OpenAI Batch API requests
  {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [...]}}
or plain {"messages": [...], "max_tokens": 100} lines (custom_id optional).
output lines: {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}

examples:
  azml-chat batch requests.jsonl -o results.jsonl
  azml-chat batch requests.jsonl -o results.jsonl --errors failed.jsonl --concurrency 16
  azml-chat batch requests.jsonl -o results.jsonl --max-tokens-per-minute 200000

Rerunning the same command after a crash or Ctrl-C skips the rows already written.
exit status: 0 all rows succeeded, 1 some rows failed, 2 bad input or settings, 130 interrupted
"""


def _concurrency(text: str) -> int | str:
    if text == "adaptive":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'adaptive' or a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("a fixed concurrency must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``batch`` command's arguments to ``parser`` (a subparser of ``azml-chat``)."""
    parser.description = "Run a JSONL file of chat requests against an endpoint: adaptive, crash-safe, resumable."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", help='JSONL file of requests (OpenAI Batch API lines, or {"messages": ...} lines)')
    parser.add_argument("-o", "--output", required=True, help="JSONL file the results are appended to")
    parser.add_argument("--errors", help="write failed rows here instead of to the output")
    endpoint = parser.add_argument_group("endpoint (defaults: the AZUREML_* environment variables)")
    endpoint.add_argument("--url", help="endpoint URL (default: $AZUREML_ENDPOINT_URL)")
    endpoint.add_argument("--api-key", help="endpoint key (default: $AZUREML_ENDPOINT_API_KEY)")
    endpoint.add_argument("--api-type", choices=["dedicated", "serverless", "realtime"], help="endpoint kind")
    endpoint.add_argument("--deployment", help="deployment name (default: $AZUREML_DEPLOYMENT_NAME)")
    endpoint.add_argument("--formatter", help="model family of a /score endpoint: llama, mistral, phi, ...")
    endpoint.add_argument("--timeout", type=float, help="seconds per call (default: $AZUREML_TIMEOUT or 50)")
    endpoint.add_argument(
        "--driver",
        choices=["httpx", "aiohttp"],
        help="HTTP library (aiohttp: several times less CPU per call; azml-chat[aiohttp])",
    )
    endpoint.add_argument("--model", help="send this model name with every row (multi-model endpoints)")
    endpoint.add_argument(
        "--keep-model",
        action="store_true",
        help="send each row's own body.model (dropped by default: it names an OpenAI model)",
    )
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--concurrency",
        type=_concurrency,
        default="adaptive",
        help="'adaptive' (default, AIMD from 2) or a fixed number of calls in flight",
    )
    pace.add_argument(
        "--max-concurrency",
        type=int,
        default=100,
        help="the most calls in flight the adaptive limit may reach (default 100)",
    )
    pace.add_argument("--max-requests-per-minute", type=float, help="request budget")
    pace.add_argument("--max-tokens-per-minute", type=float, help="token budget (prompt + completion)")
    pace.add_argument(
        "--max-attempts",
        type=int,
        default=8,
        help="calls per row on 5xx or broken connections (default 8); 429s wait while anything gets through",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "off"],
        default="auto",
        help="auto: a bar on a terminal (needs azml-chat[progress]), else a log line every --log-interval seconds",
    )
    parser.add_argument("--log-interval", type=float, default=10.0, help="seconds between progress lines (default 10)")


def _client_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Client keyword arguments from the flags given; the client reads AZUREML_* for the others."""
    settings: dict[str, Any] = {"max_retries": 0}  # the batch retries, so its controller sees every 429
    for flag, key in (
        ("url", "endpoint_url"),
        ("api_key", "api_key"),
        ("api_type", "api_type"),
        ("deployment", "deployment_name"),
        ("formatter", "formatter"),
        ("timeout", "timeout"),
        ("driver", "driver"),
    ):
        value = getattr(args, flag)
        if value is not None:
            settings[key] = value
    return settings


def run(args: argparse.Namespace) -> int:
    """Run the ``batch`` command parsed into ``args``; returns the exit status."""
    import anyio

    from ..client import AsyncChatClient
    from ..errors import AzureMLChatError, ConfigurationError, InvalidRequestError
    from .controller import AIMDController
    from .jobs import JsonlJob, run_job
    from .progress import make_progress

    try:
        job = JsonlJob(args.input, args.output, errors_path=args.errors, model=args.model, keep_model=args.keep_model)
        with job:
            progress = make_progress(args.progress, sys.stderr, interval=args.log_interval)
            plan = job.scan()
            budgets = {
                "max_requests_per_minute": args.max_requests_per_minute,
                "max_tokens_per_minute": args.max_tokens_per_minute,
            }
            if args.concurrency == "adaptive":
                controller = AIMDController(max_limit=args.max_concurrency, **budgets)
            else:
                controller = AIMDController(
                    initial_limit=args.concurrency, max_limit=args.concurrency, adaptive=False, **budgets
                )
            client = AsyncChatClient(**_client_settings(args))

            async def main() -> Any:
                async with client:
                    return await run_job(
                        client,
                        job,
                        controller=controller,
                        max_attempts=args.max_attempts,
                        on_progress=None if progress is None else progress.update,
                    )

            if progress is not None:
                progress.start(plan)
            summary = anyio.run(main)
            if progress is not None:
                progress.finish(summary)
            else:
                print(summary, file=sys.stderr)
    except KeyboardInterrupt:
        print("azml-chat batch: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ConfigurationError, InvalidRequestError) as exc:
        print(f"azml-chat batch: {exc}", file=sys.stderr)
        return 2
    except (AzureMLChatError, OSError) as exc:
        print(f"azml-chat batch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 1 if summary.failed else 0
