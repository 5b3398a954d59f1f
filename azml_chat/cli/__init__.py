"""The ``azml-chat`` command: ask a model, hold a conversation, diagnose an endpoint, serve a
local imitation of one, or run a batch file.

    azml-chat chat "What is Azure ML?"          # AZUREML_* settings, else the embedded endpoint
    cat notes.md | azml-chat chat --system "Summarize"
    azml-chat chat -i                           # a conversation
    azml-chat doctor https://my-ep.eastus.inference.ml.azure.com/score
    azml-chat serve --kind dedicated --family mistral --port 8080

Exit status: 0 ok, 1 a request failed, 2 usage or settings error, 130 interrupted (Ctrl-C).
One module per subcommand: :mod:`.chat`, :mod:`.doctor`, :mod:`.serve`; ``batch`` lives in
:mod:`azml_chat.batch.cli`, imported only when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from ..errors import AzureMLChatError, ConfigurationError
from . import chat, doctor, serve
from .settings import UsageError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  #: a request failed
EXIT_USAGE = 2  #: bad arguments or settings; nothing was sent
EXIT_INTERRUPTED = 130  #: Ctrl-C

EPILOG = """\
examples:
  azml-chat chat "What is Azure ML?"                      # ask once
  cat report.txt | azml-chat chat -s "Summarize it"       # pipe a file
  azml-chat chat -i --save chat.jsonl                     # chat interactively
  azml-chat doctor https://my-ep.eastus.inference.ml.azure.com/score --api-key "$KEY"
  azml-chat serve --kind dedicated --port 8080            # a local endpoint for tests

Settings come from AZUREML_ENDPOINT_URL, AZUREML_ENDPOINT_API_KEY, AZUREML_DEPLOYMENT_NAME,
AZUREML_ENDPOINT_API_TYPE and AZUREML_TIMEOUT, or the flags of each command.
exit status: 0 ok, 1 a request failed, 2 usage or settings error, 130 interrupted (Ctrl-C)
"""

_BATCH_CLI = "azml_chat.batch.cli"


def _batch_available() -> bool:
    """Whether the batch command is installed (found without importing it)."""
    try:
        return importlib.util.find_spec("azml_chat.batch") is not None
    except ImportError:  # pragma: no cover - a broken install
        return False


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``azml-chat`` parser; ``batch``'s own arguments are added only when ``argv`` runs it,
    so that other commands never import the batch machinery."""
    parser = argparse.ArgumentParser(
        prog="azml-chat",
        description="Chat with Azure ML online endpoints, diagnose them, or serve a local imitation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"azml-chat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subcommands: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = [
        ("chat", "ask once, or hold a conversation with -i", chat.add_arguments, chat.run),
        ("doctor", "probe an endpoint: route, body, auth, features, latency", doctor.add_arguments, doctor.run),
        ("serve", "run the embedded local endpoint until interrupted", serve.add_arguments, serve.run),
    ]
    for name, summary, add_arguments, run in subcommands:
        sub = commands.add_parser(name, help=summary)
        add_arguments(sub)
        sub.set_defaults(run=run)
    if _batch_available():
        sub = commands.add_parser("batch", help="run a JSONL file of requests (resumable)")
        command = next((arg for arg in argv if not arg.startswith("-")), None)
        if command == "batch":
            batch_cli = importlib.import_module(_BATCH_CLI)
            batch_cli.add_arguments(sub)
            sub.set_defaults(run=batch_cli.run)
    return parser


def _say(text: str) -> None:
    print(f"azml-chat: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 request failed, 2 usage or settings,
    130 interrupted)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(arguments).parse_args(arguments)
        status: int = args.run(args)
        return status
    except KeyboardInterrupt:
        print(file=sys.stderr)
        _say("interrupted")
        return EXIT_INTERRUPTED
    except UsageError as exc:
        _say(f"usage error: {exc}")
        return EXIT_USAGE
    except ConfigurationError as exc:
        _say(f"configuration error: {exc}")
        return EXIT_USAGE
    except AzureMLChatError as exc:
        _say(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # a file that cannot be read or written, stdin gone, ...
        _say(f"error: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover - `python -m azml_chat.cli` runs __main__.py
    sys.exit(main())
