"""Where the command line sends its calls: endpoint flags over the ``AZUREML_*`` environment,
the embedded endpoint only when nothing at all is configured (or ``--local``), and
``-o key=value`` options turned into ``chat()`` parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..client import ChatClient
from ..config import ENV_VARIABLES, ChatParams, ClientOptions
from ..errors import ConfigurationError
from ..hooks import ChatHooks

if TYPE_CHECKING:
    from ..testing import LocalEndpoint

__all__ = [
    "LOCAL_KEY",
    "UsageError",
    "add_endpoint_arguments",
    "chat_params",
    "client_options",
    "embedded_endpoint",
    "endpoint_url",
    "misspelled_variables",
    "open_client",
    "parse_option",
]

#: The key of the embedded endpoint (``chat`` without settings, and ``serve`` by default).
LOCAL_KEY = "local-key"

#: Names people write for the variables azml-chat reads (compared without the ``AZUREML_`` prefix).
_LOOK_ALIKES = {
    "API_KEY": "AZUREML_ENDPOINT_API_KEY",
    "KEY": "AZUREML_ENDPOINT_API_KEY",
    "URL": "AZUREML_ENDPOINT_URL",
    "API_TYPE": "AZUREML_ENDPOINT_API_TYPE",
}
#: Close enough to a known name to be its typo; Azure ML's own job variables (AZUREML_RUN_ID,
#: AZUREML_SERVICE_ENDPOINT, AZUREML_MODEL_DIR, ...) all score below this.
_TYPO_SIMILARITY = 0.75
#: Call parameters ``-o`` may set directly; any other key goes into ``extra_body``.
_OPTION_PARAMS = frozenset(ChatParams.__annotations__) - {"extra_body", "extra_headers", "extra_query"}


class UsageError(Exception):
    """The command line was used wrongly (exit status 2); the message says how to use it."""


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say which endpoint to call and how (defaults: ``AZUREML_*``)."""
    group = parser.add_argument_group("endpoint (defaults: the AZUREML_* environment variables)")
    group.add_argument("--url", help="endpoint URL (default: $AZUREML_ENDPOINT_URL)")
    group.add_argument("--api-key", help="endpoint key (default: $AZUREML_ENDPOINT_API_KEY)")
    group.add_argument(
        "--api-type",
        choices=["dedicated", "serverless", "realtime", "foundry", "azure-openai"],
        help="endpoint kind (default: from the URL, or $AZUREML_ENDPOINT_API_TYPE)",
    )
    group.add_argument("--deployment", help="deployment name (default: $AZUREML_DEPLOYMENT_NAME)")
    group.add_argument("--formatter", help="model family of a /score endpoint: llama, mistral, phi, ...")
    group.add_argument("--model", help="model name sent in the body (multi-model and vLLM endpoints)")
    group.add_argument("--timeout", type=float, help="seconds per attempt (default: $AZUREML_TIMEOUT or 50)")
    group.add_argument("--max-retries", type=int, help="retries of throttled or failed requests (default 2)")
    group.add_argument(
        "--local", action="store_true", help="use the embedded local endpoint, whatever the environment says"
    )


def misspelled_variables(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``AZUREML_*`` variables that look like typos of the ones azml-chat reads, with the likely name."""
    found = []
    known = {name.removeprefix("AZUREML_"): name for name in ENV_VARIABLES}
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if not upper.startswith("AZUREML_") or name in ENV_VARIABLES or not value:
            continue
        suffix = upper.removeprefix("AZUREML_")
        if suffix in known:  # right name, wrong case
            found.append((name, known[suffix]))
        elif suffix in _LOOK_ALIKES:
            found.append((name, _LOOK_ALIKES[suffix]))
        else:
            close = difflib.get_close_matches(suffix, known, n=1, cutoff=_TYPO_SIMILARITY)
            if close:
                found.append((name, known[close[0]]))
    return found


def endpoint_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The URL to call, or ``None`` for the embedded endpoint.

    The embedded endpoint answers only with ``--local`` or when nothing is configured at
    all; a partial configuration (a key but no URL, a misspelled variable) is an error
    naming what is missing, never a quiet answer from the local echo endpoint.
    """
    if args.local:
        if args.url:
            raise UsageError("--local and --url exclude each other: pick one")
        return None
    typos = misspelled_variables(environ)
    if typos:
        names = "; ".join(f"{name} (did you mean {known}?)" for name, known in typos)
        raise ConfigurationError(
            f"azml-chat does not read {names}: rename it, or pass --local to use the embedded endpoint"
        )
    url: str | None = args.url or environ.get("AZUREML_ENDPOINT_URL")
    if url:
        return url
    given = [name for name in ENV_VARIABLES if environ.get(name)]
    given += [flag for flag, value in (("--api-key", args.api_key), ("--deployment", args.deployment)) if value]
    if given:
        raise ConfigurationError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set but no endpoint URL: "
            "set AZUREML_ENDPOINT_URL or pass --url (or --local for the embedded endpoint)"
        )
    return None


def client_options(args: argparse.Namespace) -> ClientOptions:
    """Client settings given as flags (the client reads the environment for the others)."""
    options: ClientOptions = {}
    if args.api_key is not None:
        options["api_key"] = args.api_key
    if args.api_type is not None:
        options["api_type"] = args.api_type
    if args.deployment is not None:
        options["deployment_name"] = args.deployment
    if args.formatter is not None:
        options["formatter"] = args.formatter
    if args.model is not None:
        options["model"] = args.model
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    return options


@contextlib.contextmanager
def open_client(args: argparse.Namespace, hooks: Sequence[ChatHooks]) -> Iterator[ChatClient]:
    """A client for the configured endpoint, or for a fresh embedded one (said on stderr)."""
    options = client_options(args)
    options["hooks"] = list(hooks)
    url = endpoint_url(args, os.environ)
    if url is not None:
        with ChatClient(url, **options) as client:
            yield client
        return
    with embedded_endpoint(kind="serverless", api_key=LOCAL_KEY) as endpoint:
        why = "--local given" if args.local else "no AZUREML_ENDPOINT_URL set"
        print(f"azml-chat: {why}; using the embedded local endpoint at {endpoint.url}", file=sys.stderr)
        options["api_key"] = LOCAL_KEY
        options["api_type"] = "serverless"
        options.setdefault("deployment_name", "")  # "" keeps $AZUREML_DEPLOYMENT_NAME out
        with ChatClient(endpoint.url, **options) as client:
            yield client


@contextlib.contextmanager
def embedded_endpoint(**settings: Any) -> Iterator[LocalEndpoint]:
    """A running :class:`~azml_chat.testing.LocalEndpoint` whose thread never receives Ctrl-C.

    The kernel hands a process signal to any thread that does not block it; one caught by
    the endpoint's thread would leave the main thread asleep in ``input()`` or ``sleep()``
    and Ctrl-C unanswered. The thread inherits the signal mask in force when it starts.
    """
    from ..testing import LocalEndpoint

    endpoint = LocalEndpoint(**settings)
    blocked = {signal.SIGINT, signal.SIGTERM}
    masked = hasattr(signal, "pthread_sigmask")  # not on Windows, which has no such race
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked) if masked else set()
    try:
        endpoint.start()
    finally:
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value typed: JSON (numbers, ``true``/``false``, ``null``, lists,
    objects) where it parses, ``True``/``False``/``None`` in any case, else the text itself."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, not {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false", "none", "null"):
        return key, {"true": True, "false": False}.get(lowered)
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def chat_params(options: Sequence[tuple[str, Any]], **flags: Any) -> ChatParams:
    """Call parameters from ``-o`` options and typed flags (``None`` flags left out).

    Keys that are ``chat()`` parameters (``max-tokens`` may be written for ``max_tokens``)
    become those; any other key is a model-specific body key sent in ``extra_body``.
    """
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in options:
        name = key.replace("-", "_")
        if name in _OPTION_PARAMS:
            params[name] = value
        else:
            extra[key] = value
    params.update({name: value for name, value in flags.items() if value is not None})
    if extra:
        params["extra_body"] = extra
    checked: ChatParams = ChatParams(**params)  # type: ignore[typeddict-item]
    return checked
