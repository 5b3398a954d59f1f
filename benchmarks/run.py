"""What azml_chat costs on top of the HTTP client it wraps: client CPU per request.

Every client row is compared with raw code on the library it runs on: the default clients
with raw ``httpx2``, ``driver="aiohttp"`` with raw ``aiohttp``, a caller's ``httpx`` client
with raw ``httpx``; one row per client adds a no-op hook. Starts ``benchmarks/server.py``
in its own process (pinned to the last CPU when taskset exists). Each round then starts one
fresh worker process per group (pinned to CPU 0); a group is a set of rows measured side by
side, e.g. raw ``httpx2.AsyncClient`` and ``AsyncChatClient`` at concurrency 1. The worker
warms every row up, then runs them in
interleaved blocks (the order rotating block by block), so slow spells of a noisy
machine hit every row alike. Per row and block it reports the CPU time (user+sys,
``getrusage``) and the wall time. A figure is the median over all blocks of all rounds;
a ratio is the median of the block-by-block ratios (a row's block against the baseline's
block of the same cycle, run back to back). ``import`` cost is measured in fresh
interpreters (bytecode cached, as for any installed package), in pairs.

    python benchmarks/run.py            # full run (about 4 minutes on 2 cores)
    python benchmarks/run.py --quick    # CI smoke: checks that every row runs, not its speed
    python benchmarks/run.py --check    # exit 1 if a target is missed

Prints a markdown table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
API_KEY = "bench-key"
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in two sentences."},
]
PARAMS = {"temperature": 0.2, "max_tokens": 64}
SERVERLESS_BODY = {"messages": MESSAGES, **PARAMS}
DEDICATED_BODY = {"input_data": {"input_string": MESSAGES, "parameters": {"temperature": 0.2, "max_new_tokens": 64}}}
STREAM_BODY = {**SERVERLESS_BODY, "stream": True}
# The raw baselines send the request the clients send: both key headers (as Microsoft's SDK
# does, and the clients by default) held by the HTTP client, and an x-ms-client-request-id
# per request (a fixed one: the raw code does not pay for making ids). The "minimal" rows
# send only Authorization, for reference: each header costs httpx2 ~30k instructions.
RAW_CLIENT_HEADERS = {"authorization": f"Bearer {API_KEY}", "api-key": API_KEY}
RAW_REQUEST_HEADERS = {"x-ms-client-request-id": "6f1e3c2a-1b2c-4d3e-8f4a-5b6c7d8e9f00"}
MINIMAL_HEADERS = {"authorization": f"Bearer {API_KEY}"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- scenarios: each yields ``one()``, a single request (or stream) returning its unit count ----


@dataclass(frozen=True)
class Job:
    base: str  # http://127.0.0.1:PORT
    kind: str  # serverless | dedicated

    @property
    def url(self) -> str:
        return self.base + ("/score" if self.kind == "dedicated" else "/v1/chat/completions")

    @property
    def body(self) -> dict[str, Any]:
        return DEDICATED_BODY if self.kind == "dedicated" else SERVERLESS_BODY


AsyncOne = Callable[[], Awaitable[int]]
SyncOne = Callable[[], int]


def _text_of(payload: Any, kind: str) -> str:
    text = payload["output"] if kind == "dedicated" else payload["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    assert text
    return text


def _delta_of(data: bytes | str) -> int:
    """Parse one raw SSE data payload: 1 per chunk, 0 for ``[DONE]``."""
    if data in ("[DONE]", b"[DONE]"):
        return 0
    chunk = json.loads(data)
    chunk["choices"][0]["delta"].get("content")
    return 1


# The raw baselines do the minimum a caller of the HTTP library would write by hand.


@contextlib.asynccontextmanager
async def _raw_httpx_posts(job: Job, http: Any, headers: dict[str, str]) -> AsyncIterator[AsyncOne]:
    """Raw posts on a given ``httpx2.AsyncClient`` / ``httpx.AsyncClient`` (or a subclass)."""
    async with http:

        async def one() -> int:
            response = await http.post(job.url, json=job.body, headers=headers)
            response.raise_for_status()
            _text_of(json.loads(response.content), job.kind)
            return 1

        yield one


def raw_async(library: str, minimal: bool = False) -> Callable[[Job], contextlib.AbstractAsyncContextManager[AsyncOne]]:
    def scenario(job: Job) -> contextlib.AbstractAsyncContextManager[AsyncOne]:
        if minimal:
            return _raw_httpx_posts(job, importlib.import_module(library).AsyncClient(), MINIMAL_HEADERS)
        http = importlib.import_module(library).AsyncClient(headers=RAW_CLIENT_HEADERS)
        return _raw_httpx_posts(job, http, RAW_REQUEST_HEADERS)

    return scenario


@contextlib.asynccontextmanager
async def raw_aiohttp(job: Job, minimal: bool = False) -> AsyncIterator[AsyncOne]:
    import aiohttp

    session = aiohttp.ClientSession(headers=None if minimal else RAW_CLIENT_HEADERS)
    headers = MINIMAL_HEADERS if minimal else RAW_REQUEST_HEADERS
    async with session:

        async def one() -> int:
            async with session.post(job.url, json=job.body, headers=headers) as response:
                response.raise_for_status()
                _text_of(json.loads(await response.read()), job.kind)
            return 1

        yield one


def raw_httpx_aiohttp(job: Job) -> contextlib.AbstractAsyncContextManager[AsyncOne]:
    import httpx_aiohttp

    return _raw_httpx_posts(job, httpx_aiohttp.HttpxAiohttpClient(headers=RAW_CLIENT_HEADERS), RAW_REQUEST_HEADERS)


def _no_op_hooks() -> Any:
    from azml_chat import ChatHooks

    return type("NoOpHooks", (ChatHooks,), {})()  # every method inherited: does nothing


@contextlib.asynccontextmanager
async def _sdk_async(
    job: Job, http: str | None = None, hooked: bool = False, **options: Any
) -> AsyncIterator[AsyncOne]:
    """``AsyncChatClient`` as users make it: default settings; ``http`` names the library of a
    caller-owned ``http_client``; ``hooked`` adds one no-op hook."""
    from azml_chat import AsyncChatClient

    if hooked:
        options["hooks"] = [_no_op_hooks()]
    async with contextlib.AsyncExitStack() as stack:
        if http is not None:
            client = importlib.import_module(http).AsyncClient(timeout=50.0)
            options["http_client"] = await stack.enter_async_context(client)
        chat = await stack.enter_async_context(AsyncChatClient(job.url, api_key=API_KEY, **options))

        async def one() -> int:
            reply = await chat.chat(MESSAGES, **PARAMS)
            assert reply.content
            return 1

        yield one


@contextlib.asynccontextmanager
async def sdk_httpx_aiohttp(job: Job) -> AsyncIterator[AsyncOne]:
    import httpx_aiohttp

    http = httpx_aiohttp.HttpxAiohttpClient(timeout=50.0)
    async with http, _sdk_async(job, http_client=http) as one:
        yield one


def raw_sync(library: str, minimal: bool = False) -> Callable[[Job], contextlib.AbstractContextManager[SyncOne]]:
    @contextlib.contextmanager
    def scenario(job: Job) -> Iterator[SyncOne]:
        client = importlib.import_module(library).Client(headers=None if minimal else RAW_CLIENT_HEADERS)
        headers = MINIMAL_HEADERS if minimal else RAW_REQUEST_HEADERS
        with client as http:

            def one() -> int:
                response = http.post(job.url, json=job.body, headers=headers)
                response.raise_for_status()
                _text_of(json.loads(response.content), job.kind)
                return 1

            yield one

    return scenario


@contextlib.contextmanager
def _sdk_sync(job: Job, http: str | None = None, hooked: bool = False) -> Iterator[SyncOne]:
    from azml_chat import ChatClient

    options: dict[str, Any] = {"hooks": [_no_op_hooks()]} if hooked else {}
    with contextlib.ExitStack() as stack:
        if http is not None:
            options["http_client"] = stack.enter_context(importlib.import_module(http).Client(timeout=50.0))
        chat = stack.enter_context(ChatClient(job.url, api_key=API_KEY, **options))

        def one() -> int:
            assert chat.chat(MESSAGES, **PARAMS).content
            return 1

        yield one


def stream_raw_async(library: str) -> Callable[[Job], contextlib.AbstractAsyncContextManager[AsyncOne]]:
    @contextlib.asynccontextmanager
    async def scenario(job: Job) -> AsyncIterator[AsyncOne]:
        async with importlib.import_module(library).AsyncClient(headers=RAW_CLIENT_HEADERS) as http:

            async def one() -> int:
                units = 0
                async with http.stream("POST", job.url, json=STREAM_BODY, headers=RAW_REQUEST_HEADERS) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            units += _delta_of(line[6:])
                return units

            yield one

    return scenario


@contextlib.asynccontextmanager
async def stream_raw_aiohttp(job: Job) -> AsyncIterator[AsyncOne]:
    import aiohttp

    async with aiohttp.ClientSession(headers=RAW_CLIENT_HEADERS) as session:

        async def one() -> int:
            units = 0
            async with session.post(job.url, json=STREAM_BODY, headers=RAW_REQUEST_HEADERS) as response:
                response.raise_for_status()
                async for line in response.content:
                    if line.startswith(b"data: "):
                        units += _delta_of(line[6:].rstrip(b"\r\n"))
            return units

        yield one


@contextlib.asynccontextmanager
async def _stream_sdk_async(job: Job, **options: Any) -> AsyncIterator[AsyncOne]:
    from azml_chat import AsyncChatClient

    async with AsyncChatClient(job.url, api_key=API_KEY, **options) as client:

        async def one() -> int:
            units = 0
            async with client.stream(MESSAGES, **PARAMS) as stream:
                async for chunk in stream:
                    chunk.content  # noqa: B018 - what a caller reads
                    units += 1
            return units

        yield one


def stream_raw_sync(library: str) -> Callable[[Job], contextlib.AbstractContextManager[SyncOne]]:
    @contextlib.contextmanager
    def scenario(job: Job) -> Iterator[SyncOne]:
        with importlib.import_module(library).Client(headers=RAW_CLIENT_HEADERS) as http:

            def one() -> int:
                units = 0
                with http.stream("POST", job.url, json=STREAM_BODY, headers=RAW_REQUEST_HEADERS) as response:
                    response.raise_for_status()
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            units += _delta_of(line[6:])
                return units

            yield one

    return scenario


@contextlib.contextmanager
def stream_sdk_sync(job: Job) -> Iterator[SyncOne]:
    from azml_chat import ChatClient

    with ChatClient(job.url, api_key=API_KEY) as client:

        def one() -> int:
            units = 0
            with client.stream(MESSAGES, **PARAMS) as stream:
                for chunk in stream:
                    chunk.content  # noqa: B018
                    units += 1
            return units

        yield one


SCENARIOS: dict[str, Callable[[Job], Any]] = {
    "httpx2-async": raw_async("httpx2"),
    "httpx2-async-minimal": raw_async("httpx2", minimal=True),
    "aiohttp-minimal": functools.partial(raw_aiohttp, minimal=True),
    "httpx-async": raw_async("httpx"),
    "aiohttp": raw_aiohttp,
    "httpx-aiohttp": raw_httpx_aiohttp,
    "sdk-async": _sdk_async,
    "sdk-async-hook": functools.partial(_sdk_async, hooked=True),
    "sdk-aiohttp": functools.partial(_sdk_async, driver="aiohttp"),
    "sdk-httpx": functools.partial(_sdk_async, http="httpx"),
    "sdk-httpx-aiohttp": sdk_httpx_aiohttp,
    "httpx2-sync": raw_sync("httpx2"),
    "httpx2-sync-minimal": raw_sync("httpx2", minimal=True),
    "httpx-sync": raw_sync("httpx"),
    "sdk-sync": _sdk_sync,
    "sdk-sync-hook": functools.partial(_sdk_sync, hooked=True),
    "sdk-sync-httpx": functools.partial(_sdk_sync, http="httpx"),
    "stream-httpx2-async": stream_raw_async("httpx2"),
    "stream-aiohttp": stream_raw_aiohttp,
    "stream-sdk-async": _stream_sdk_async,
    "stream-sdk-aiohttp": functools.partial(_stream_sdk_async, driver="aiohttp"),
    "stream-httpx2-sync": stream_raw_sync("httpx2"),
    "stream-sdk-sync": stream_sdk_sync,
}


# --- groups and rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str  # unique id, e.g. "sdk-async/serverless/c1"
    scenario: str
    kind: str
    label: str
    baseline: str | None = None  # the row it is compared with


@dataclass(frozen=True)
class Group:
    name: str
    sync: bool
    concurrency: int
    stream: bool
    rows: tuple[Row, ...]


MINIMAL = "the same raw code, minimal request (Authorization only)"


def _request_rows(c: int) -> tuple[Row, ...]:
    """Each SDK row next to the raw code of the library it runs on."""
    rows = []
    for kind in ("serverless", "dedicated"):
        raw = f"httpx2-async/{kind}/c{c}"
        rows.append(Row(raw, "httpx2-async", kind, f"raw httpx2.AsyncClient, {kind}"))
        rows.append(Row(f"sdk-async/{kind}/c{c}", "sdk-async", kind, f"AsyncChatClient (default: httpx2), {kind}", raw))
    raw2 = f"httpx2-async/serverless/c{c}"
    rows.append(Row(f"httpx2-async-minimal/serverless/c{c}", "httpx2-async-minimal", "serverless", MINIMAL, raw2))
    if c == 1:
        rows.append(
            Row(
                f"sdk-async-hook/serverless/c{c}",
                "sdk-async-hook",
                "serverless",
                "AsyncChatClient + one no-op hook",
                raw2,
            )
        )
    raw = f"aiohttp/serverless/c{c}"
    rows.append(Row(raw, "aiohttp", "serverless", "raw aiohttp.ClientSession"))
    rows.append(Row(f"aiohttp-minimal/serverless/c{c}", "aiohttp-minimal", "serverless", MINIMAL, raw))
    rows.append(
        Row(f"sdk-aiohttp/serverless/c{c}", "sdk-aiohttp", "serverless", 'AsyncChatClient, driver="aiohttp"', raw)
    )
    raw = f"httpx-async/serverless/c{c}"
    rows.append(Row(raw, "httpx-async", "serverless", "raw httpx.AsyncClient"))
    rows.append(
        Row(f"sdk-httpx/serverless/c{c}", "sdk-httpx", "serverless", "AsyncChatClient, caller's httpx client", raw)
    )
    rows.append(
        Row(
            f"httpx-aiohttp/serverless/c{c}",
            "httpx-aiohttp",
            "serverless",
            "raw httpx + httpx-aiohttp (reference)",
            raw,
        )
    )
    rows.append(
        Row(
            f"sdk-httpx-aiohttp/serverless/c{c}",
            "sdk-httpx-aiohttp",
            "serverless",
            "AsyncChatClient over httpx + httpx-aiohttp (reference)",
            raw,
        )
    )
    return tuple(rows)


def _stream_rows(c: int) -> tuple[Row, ...]:
    raw = f"stream-httpx2-async/c{c}"
    raw_aiohttp = f"stream-aiohttp/c{c}"
    return (
        Row(raw, "stream-httpx2-async", "serverless", "raw httpx2.AsyncClient, aiter_lines + json"),
        Row(f"stream-sdk-async/c{c}", "stream-sdk-async", "serverless", "AsyncChatClient.stream (httpx2)", raw),
        Row(raw_aiohttp, "stream-aiohttp", "serverless", "raw aiohttp, line iteration + json"),
        Row(
            f"stream-sdk-aiohttp/c{c}",
            "stream-sdk-aiohttp",
            "serverless",
            "AsyncChatClient.stream (aiohttp)",
            raw_aiohttp,
        ),
    )


def _sync_rows() -> tuple[Row, ...]:
    rows = []
    for kind in ("serverless", "dedicated"):
        raw = f"httpx2-sync/{kind}/c1"
        rows.append(Row(raw, "httpx2-sync", kind, f"raw httpx2.Client, {kind}"))
        rows.append(Row(f"sdk-sync/{kind}/c1", "sdk-sync", kind, f"ChatClient (default: httpx2), {kind}", raw))
    rows.append(
        Row(
            "httpx2-sync-minimal/serverless/c1",
            "httpx2-sync-minimal",
            "serverless",
            MINIMAL,
            "httpx2-sync/serverless/c1",
        )
    )
    rows.append(
        Row(
            "sdk-sync-hook/serverless/c1",
            "sdk-sync-hook",
            "serverless",
            "ChatClient + one no-op hook",
            "httpx2-sync/serverless/c1",
        )
    )
    rows.append(Row("httpx-sync/serverless/c1", "httpx-sync", "serverless", "raw httpx.Client"))
    rows.append(
        Row(
            "sdk-sync-httpx/serverless/c1",
            "sdk-sync-httpx",
            "serverless",
            "ChatClient, caller's httpx client",
            "httpx-sync/serverless/c1",
        )
    )
    return tuple(rows)


GROUPS = [
    Group("async-c1", False, 1, False, _request_rows(1)),
    Group("async-c64", False, 64, False, _request_rows(64)),
    Group("sync-c1", True, 1, False, _sync_rows()),
    Group("stream-async-c1", False, 1, True, _stream_rows(1)),
    Group("stream-async-c64", False, 64, True, _stream_rows(64)),
    Group(
        "stream-sync-c1",
        True,
        1,
        True,
        (
            Row("stream-httpx2-sync/c1", "stream-httpx2-sync", "serverless", "raw httpx2.Client, iter_lines + json"),
            Row("stream-sdk-sync/c1", "stream-sdk-sync", "serverless", "ChatClient.stream", "stream-httpx2-sync/c1"),
        ),
    ),
]


@dataclass(frozen=True)
class Target:
    name: str
    row: str
    baseline: str
    limit: float | None  # None: reported, not judged


TARGETS = [
    Target(
        "AsyncChatClient / raw httpx2, serverless, C=1", "sdk-async/serverless/c1", "httpx2-async/serverless/c1", 1.05
    ),
    Target("AsyncChatClient / raw httpx2, dedicated, C=1", "sdk-async/dedicated/c1", "httpx2-async/dedicated/c1", 1.05),
    Target(
        "AsyncChatClient / raw httpx2, serverless, C=64",
        "sdk-async/serverless/c64",
        "httpx2-async/serverless/c64",
        1.05,
    ),
    Target(
        "AsyncChatClient / raw httpx2, dedicated, C=64", "sdk-async/dedicated/c64", "httpx2-async/dedicated/c64", 1.05
    ),
    Target("ChatClient / raw httpx2, serverless", "sdk-sync/serverless/c1", "httpx2-sync/serverless/c1", 1.05),
    Target("ChatClient / raw httpx2, dedicated", "sdk-sync/dedicated/c1", "httpx2-sync/dedicated/c1", 1.05),
    Target("async stream per chunk / raw httpx2, C=1", "stream-sdk-async/c1", "stream-httpx2-async/c1", 1.15),
    Target("sync stream per chunk / raw httpx2", "stream-sdk-sync/c1", "stream-httpx2-sync/c1", 1.15),
    Target("aiohttp driver / raw aiohttp, C=1", "sdk-aiohttp/serverless/c1", "aiohttp/serverless/c1", 1.15),
    Target("aiohttp driver / raw aiohttp, C=64", "sdk-aiohttp/serverless/c64", "aiohttp/serverless/c64", 1.25),
    Target(
        "httpx driver (caller's client) / raw httpx, async",
        "sdk-httpx/serverless/c1",
        "httpx-async/serverless/c1",
        1.05,
    ),
    Target(
        "httpx driver (caller's client) / raw httpx, sync",
        "sdk-sync-httpx/serverless/c1",
        "httpx-sync/serverless/c1",
        1.05,
    ),
    Target("import azml_chat / import httpx2", "import/azml_chat", "import/httpx2", 1.35),
    Target("from azml_chat import ChatClient / import httpx2", "import/ChatClient", "import/httpx2", 1.35),
    Target("... and the first client's httpx2 / import httpx2", "import/ChatClient+httpx2", "import/httpx2", None),
    Target("async: one no-op hook / no hook, C=1", "sdk-async-hook/serverless/c1", "sdk-async/serverless/c1", None),
    Target("sync: one no-op hook / no hook", "sdk-sync-hook/serverless/c1", "sdk-sync/serverless/c1", None),
    Target(
        "httpx driver (caller's client) / raw httpx, async, C=64",
        "sdk-httpx/serverless/c64",
        "httpx-async/serverless/c64",
        None,
    ),
    Target("aiohttp driver stream per chunk / raw aiohttp, C=1", "stream-sdk-aiohttp/c1", "stream-aiohttp/c1", None),
    Target(
        "AsyncChatClient / minimal raw httpx2, serverless, C=1",
        "sdk-async/serverless/c1",
        "httpx2-async-minimal/serverless/c1",
        None,
    ),
    Target(
        "AsyncChatClient / minimal raw httpx2, serverless, C=64",
        "sdk-async/serverless/c64",
        "httpx2-async-minimal/serverless/c64",
        None,
    ),
    Target(
        "ChatClient / minimal raw httpx2, serverless",
        "sdk-sync/serverless/c1",
        "httpx2-sync-minimal/serverless/c1",
        None,
    ),
    Target(
        "aiohttp driver / minimal raw aiohttp, C=1", "sdk-aiohttp/serverless/c1", "aiohttp-minimal/serverless/c1", None
    ),
    Target(
        "aiohttp driver / minimal raw aiohttp, C=64",
        "sdk-aiohttp/serverless/c64",
        "aiohttp-minimal/serverless/c64",
        None,
    ),
]


# --- the worker: one group, in a fresh process ------------------------------------------------


def _blocks(total: int, blocks: int, concurrency: int, per_task: int) -> list[int]:
    """Split ``total`` requests into at most ``blocks`` equal blocks, each a multiple of ``concurrency``
    with at least ``per_task`` requests per task (so ramping up and down stays a small part of a block)."""
    count = max(1, min(blocks, total // (concurrency * per_task)))
    return [max(total // count // concurrency, 1) * concurrency] * count


async def _async_group(group: Group, base: str, sizes: list[int], warmup: int) -> dict[str, list[list[float]]]:
    async def batch(one: AsyncOne, count: int) -> int:
        share = count // group.concurrency

        async def worker() -> int:
            units = 0
            for _ in range(share):
                units += await one()
            return units

        return sum(await asyncio.gather(*(worker() for _ in range(group.concurrency))))

    async with contextlib.AsyncExitStack() as stack:
        ones = {}
        for row in group.rows:
            try:
                ones[row.key] = await stack.enter_async_context(SCENARIOS[row.scenario](Job(base, row.kind)))
            except ImportError as exc:  # e.g. httpx-aiohttp not installed: the row stays empty
                print(f"{row.key}: skipped ({exc})", file=sys.stderr)
                continue
            await batch(ones[row.key], warmup)
        blocks: dict[str, list[list[float]]] = {key: [] for key in ones}  # [cpu, wall, units, requests]
        keys = list(ones)
        for number, size in enumerate(sizes):
            turn = number % len(keys)
            for key in keys[turn:] + keys[:turn]:
                cpu, wall = _cpu(), time.perf_counter()
                units = await batch(ones[key], size)
                blocks[key].append([_cpu() - cpu, time.perf_counter() - wall, units, size])
    return blocks


def _sync_group(group: Group, base: str, sizes: list[int], warmup: int) -> dict[str, list[list[float]]]:
    with contextlib.ExitStack() as stack:
        ones = {}
        for row in group.rows:
            ones[row.key] = stack.enter_context(SCENARIOS[row.scenario](Job(base, row.kind)))
            for _ in range(warmup):
                ones[row.key]()
        blocks: dict[str, list[list[float]]] = {key: [] for key in ones}
        keys = list(ones)
        for number, size in enumerate(sizes):
            turn = number % len(keys)
            for key in keys[turn:] + keys[:turn]:
                one = ones[key]
                cpu, wall = _cpu(), time.perf_counter()
                units = sum(one() for _ in range(size))
                blocks[key].append([_cpu() - cpu, time.perf_counter() - wall, units, size])
    return blocks


def worker_main(args: argparse.Namespace) -> None:
    group = next(g for g in GROUPS if g.name == args.worker)
    sizes = _blocks(args.requests, args.blocks, group.concurrency, 1 if group.stream else 4)
    warmup = max(args.requests // 10, group.concurrency * 2)
    if group.sync:
        blocks = _sync_group(group, args.base, sizes, warmup)
    else:
        blocks = asyncio.run(_async_group(group, args.base, sizes, warmup))
    print(json.dumps(blocks))


# --- the orchestrator --------------------------------------------------------------------------

#: Import statements timed, by row key (each one's sample i runs right after the one before).
#: ``import azml_chat`` loads names on first use; ``ChatClient`` is what a first line costs,
#: and httpx2 itself loads when the first client is made.
IMPORTS = {
    "import/httpx2": "import httpx2",
    "import/azml_chat": "import azml_chat",
    "import/ChatClient": "from azml_chat import ChatClient",
    "import/ChatClient+httpx2": "from azml_chat import ChatClient; import httpx2",
    "import/httpx": "import httpx",
}
IMPORT_BASELINE = "import/httpx2"

# Run by ``python -c`` in a fresh interpreter: nothing but the interpreter's own start-up is loaded.
IMPORT_PROBE = """
import resource, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
c, w = cpu(), time.perf_counter()
{statement}
print(cpu() - c, time.perf_counter() - w)
"""


def _pin(cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def _import_env(cache: str) -> dict[str, str]:
    """Bytecode cached, as in any installed package (this tree may run with PYTHONDONTWRITEBYTECODE)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def _measure_import(statement: str, client_cpu: int | None, env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall seconds of an import ``statement`` in a fresh interpreter (start-up itself excluded)."""
    command = [*_pin(client_cpu), sys.executable, "-c", IMPORT_PROBE.format(statement=statement)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{statement} failed:\n{done.stderr}")
    cpu, wall = done.stdout.split()
    return float(cpu), float(wall)


def _start_server(chunks: int, server_cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    command = [*_pin(server_cpu), sys.executable, str(HERE / "server.py"), "--chunks", str(chunks)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit(f"the benchmark server did not start: {line!r}")
    return server, f"http://127.0.0.1:{int(line.split()[1])}"


def _run_worker(argv: list[str], client_cpu: int | None) -> dict[str, list[list[float]]]:
    command = [*_pin(client_cpu), sys.executable, str(Path(__file__).resolve()), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {' '.join(argv)} failed:\n{done.stderr}")
    if done.stderr:
        print(done.stderr.strip(), file=sys.stderr)
    result: dict[str, list[list[float]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in (
        "azml-chat",
        "httpx2",
        "httpcore2",
        "httpx",
        "httpcore",
        "h11",
        "aiohttp",
        "httpx-aiohttp",
        "anyio",
        "attrs",
        "orjson",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "-"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "taskset": shutil.which("taskset") is not None,
        "versions": versions,
    }


class Results:
    """Per row, one sample per block: CPU seconds per unit (request or chunk) and requests per second.

    The samples of the rows of a group line up: sample i of every row comes from the same
    cycle of blocks (same round), run back to back. For imports, sample i of ``httpx2`` and
    of ``azml_chat`` are two fresh interpreters started one after the other.
    """

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {}
        self.rate: dict[str, list[float]] = {}

    def add(self, key: str, cpu: float, rate: float) -> None:
        self.cpu.setdefault(key, []).append(cpu)
        self.rate.setdefault(key, []).append(rate)

    def ratio(self, row: str, baseline: str) -> float | None:
        """The median of the sample-by-sample ratios (each pair ran back to back)."""
        pairs = zip(self.cpu.get(row, []), self.cpu.get(baseline, []), strict=False)
        ratios = [a / b for a, b in pairs if b > 0]
        return statistics.median(ratios) if ratios else None


def orchestrate(args: argparse.Namespace) -> int:
    wanted = tuple(args.only.split(",")) if args.only else ()
    groups = [g for g in GROUPS if not wanted or g.name.startswith(wanted)]
    cpus = os.cpu_count() or 1
    server_cpu, client_cpu = (cpus - 1, 0) if cpus > 1 else (None, None)
    results = Results()
    started = time.perf_counter()
    server, base = _start_server(args.chunks, server_cpu)
    chunks_per_stream = args.chunks + 2  # the role chunk, the content deltas, the finish chunk
    try:
        with tempfile.TemporaryDirectory(prefix="azml-bench-pyc-") as cache:
            env = _import_env(cache)
            do_imports = not wanted or "import".startswith(wanted)
            if do_imports:
                for statement in IMPORTS.values():  # write the bytecode cache first
                    _measure_import(statement, client_cpu, env)
            for number in range(args.rounds):
                order = groups if number % 2 == 0 else groups[::-1]
                for group in order:
                    requests = args.stream_requests if group.stream else args.requests
                    if group.concurrency > 1:
                        requests = max(int(requests * args.c64_factor), group.concurrency * 2)
                    argv = ["--worker", group.name, "--base", base, "--requests", str(requests)]
                    blocks = _run_worker([*argv, "--blocks", str(args.blocks)], client_cpu)
                    for key, samples in blocks.items():
                        for cpu, wall, units, sent in samples:
                            if group.stream and units != sent * chunks_per_stream:
                                raise SystemExit(f"{key}: {units} chunks for {sent} streams, not {chunks_per_stream}")
                            results.add(key, cpu / units, sent / wall)
                if do_imports:
                    for _ in range(args.import_repeats):
                        for key, statement in IMPORTS.items():
                            cpu, wall = _measure_import(statement, client_cpu, env)
                            results.add(key, cpu, wall)
                print(f"round {number + 1}/{args.rounds} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    elapsed = time.perf_counter() - started
    table, verdicts = _table(groups, results, args, elapsed)
    print(table)
    report = {
        "machine": _machine(),
        "settings": {
            key: getattr(args, key)
            for key in ("quick", "rounds", "requests", "stream_requests", "chunks", "c64_factor", "blocks")
        },
        "elapsed_seconds": round(elapsed, 1),
        "rows": {
            key: {
                "cpu_us_per_unit_by_block": [round(value * 1e6, 2) for value in values],
                "median_cpu_us": round(statistics.median(values) * 1e6, 2),
                "median_per_second": round(statistics.median(results.rate[key]), 1),
            }
            for key, values in results.cpu.items()
        },
        "targets": verdicts,
        "table": table,
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"bench-{'quick-' if args.quick else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    for path in (RESULTS / name, RESULTS / ("latest-quick.json" if args.quick else "latest.json")):
        path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / name} ({elapsed:.0f}s)", file=sys.stderr)
    missed = [verdict for verdict in verdicts if verdict["pass"] is False]
    return 1 if args.check and missed else 0


def _table(
    groups: list[Group], results: Results, args: argparse.Namespace, elapsed: float
) -> tuple[str, list[dict[str, Any]]]:
    def median_cpu(key: str, scale: float = 1e6, digits: int = 1) -> str:
        values = results.cpu.get(key)
        return f"{statistics.median(values) * scale:,.{digits}f}" if values else "-"

    def median_rate(key: str) -> str:
        values = results.rate.get(key)
        return f"{statistics.median(values):,.0f}" if values else "-"

    lines = [
        f"{args.rounds} round(s), {args.blocks} interleaved blocks each, {elapsed:.0f}s; per row and round: "
        f"{args.requests} requests at C=1 ({max(int(args.requests * args.c64_factor), 128)} at C=64), "
        f"{args.stream_requests} streams of {args.chunks + 2} chunks at C=1 "
        f"({max(int(args.stream_requests * args.c64_factor), 128)} at C=64). CPU = client user+sys per request "
        "(streams: per chunk), median over the blocks; ratio = median of the block-by-block ratios.",
        "",
        "| row | C | CPU µs | per second | ratio | compared with |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for group in groups:
        for row in group.rows:
            ratio = results.ratio(row.key, row.baseline) if row.baseline else None
            lines.append(
                f"| {row.label} `{row.key}` | {group.concurrency} | {median_cpu(row.key)} | "
                f"{median_rate(row.key)} | {f'{ratio:.2f}x' if ratio is not None else ''} | "
                f"{f'`{row.baseline}`' if row.baseline else ''} |"
            )
    for key, statement in IMPORTS.items():
        if key not in results.cpu:
            continue
        ratio = results.ratio(key, IMPORT_BASELINE) if key != IMPORT_BASELINE else None
        lines.append(
            f"| `{statement}`, fresh interpreter `{key}` | - | {median_cpu(key)} | - | "
            f"{f'{ratio:.2f}x' if ratio is not None else ''} | {f'`{IMPORT_BASELINE}`' if ratio is not None else ''} |"
        )
    lines += ["", "| target | ratio | limit | result |", "|---|---:|---:|---|"]
    verdicts = []
    for target in TARGETS:
        ratio = results.ratio(target.row, target.baseline)
        passed = None if ratio is None or target.limit is None else ratio <= target.limit
        verdicts.append({"target": target.name, "ratio": ratio, "limit": target.limit, "pass": passed})
        if ratio is None:
            verdict = "not run"
        elif target.limit is None:
            verdict = "reported"
        else:
            verdict = "PASS" if passed else "FAIL"
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        limit = "-" if target.limit is None else f"≤ {target.limit:.2f}x"
        lines.append(f"| {target.name} | {shown} | {limit} | {verdict} |")
    return "\n".join(lines), verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description="azml_chat overhead benchmark (see docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test, not a measurement")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--rounds", type=int, help="rounds (fresh worker processes per group); default 3")
    parser.add_argument("--requests", type=int, help="requests per row and round at C=1; default 2000")
    parser.add_argument("--stream-requests", type=int, help="streams per row and round at C=1; default 100")
    parser.add_argument("--c64-factor", type=float, help="request multiplier at C=64; default 0.64")
    parser.add_argument("--blocks", type=int, help="interleaved blocks per row and round; default 8")
    parser.add_argument("--import-repeats", type=int, help="import measurements per module and round; default 5")
    parser.add_argument("--chunks", type=int, default=64, help="content deltas per stream (default 64)")
    parser.add_argument("--only", default="", help="comma-separated group name prefixes (e.g. async-c1,import)")
    parser.add_argument("--worker", choices=[g.name for g in GROUPS], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    defaults: dict[str, Any] = (
        {"rounds": 1, "requests": 64, "stream_requests": 4, "c64_factor": 2.0, "blocks": 1, "import_repeats": 1}
        if args.quick
        else {
            "rounds": 3,
            "requests": 2000,
            "stream_requests": 100,
            "c64_factor": 0.64,
            "blocks": 8,
            "import_repeats": 5,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.c64_factor = float(args.c64_factor)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
