"""What azml_chat costs on top of the HTTP client it wraps: CPU per request, client side.

Starts ``benchmarks/server.py`` in its own process (pinned to the last CPU with taskset
when it exists), then, for every row, runs a fresh worker process (pinned to CPU 0) that
warms up, sends a fixed number of requests at concurrency C and reports the CPU time
(user+sys, ``getrusage``) and wall time it took. Rows are interleaved round by round;
each figure is the median over the rounds, each ratio the median of the per-round
ratios. Import cost is measured in fresh interpreters the same way.

    python benchmarks/run.py            # full run (about 2 minutes on 2 cores)
    python benchmarks/run.py --quick    # CI smoke: checks that every row runs, not its speed
    python benchmarks/run.py --check    # exit 1 if a target is missed

Prints a markdown table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
RAW_HEADERS = {"authorization": f"Bearer {API_KEY}"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- workers: one scenario, run inside a fresh process -----------------------------------------


@dataclass
class Job:
    base: str  # http://127.0.0.1:PORT
    kind: str  # serverless | dedicated
    concurrency: int
    requests: int
    warmup: int

    @property
    def url(self) -> str:
        return self.base + ("/score" if self.kind == "dedicated" else "/v1/chat/completions")

    @property
    def body(self) -> dict[str, Any]:
        return DEDICATED_BODY if self.kind == "dedicated" else SERVERLESS_BODY


def _text_of(payload: Any, kind: str) -> str:
    text = payload["output"] if kind == "dedicated" else payload["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text
    return text


def _delta_of(data: bytes | str) -> int:
    """Parse one raw SSE data payload; 1 per chunk (0 for [DONE])."""
    if data == "[DONE]" or data == b"[DONE]":
        return 0
    chunk = json.loads(data)
    chunk["choices"][0]["delta"].get("content")
    return 1


async def _run_async(job: Job, one: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """Warm up, then run ``job.requests`` calls of ``one`` from ``job.concurrency`` tasks."""

    async def worker(count: int) -> int:
        units = 0
        for _ in range(count):
            units += await one()
        return units

    async def batch(total: int) -> int:
        share, extra = divmod(total, job.concurrency)
        counts = [share + (1 if i < extra else 0) for i in range(job.concurrency)]
        return sum(await asyncio.gather(*(worker(c) for c in counts if c)))

    await batch(job.warmup)
    cpu, wall = _cpu(), time.perf_counter()
    units = await batch(job.requests)
    return _cpu() - cpu, time.perf_counter() - wall, units


def _run_sync(job: Job, one: Callable[[], int]) -> tuple[float, float, int]:
    if job.concurrency != 1:
        raise SystemExit("sync rows run at concurrency 1 only")
    for _ in range(job.warmup):
        one()
    cpu, wall = _cpu(), time.perf_counter()
    units = sum(one() for _ in range(job.requests))
    return _cpu() - cpu, time.perf_counter() - wall, units


def _limits(job: Job) -> Any:
    import httpx

    return httpx.Limits(max_connections=max(100, job.concurrency), max_keepalive_connections=max(20, job.concurrency))


async def raw_httpx_async(job: Job) -> tuple[float, float, int]:
    import httpx

    async with httpx.AsyncClient(limits=_limits(job)) as http:

        async def one() -> int:
            response = await http.post(job.url, json=job.body, headers=RAW_HEADERS)
            response.raise_for_status()
            _text_of(json.loads(response.content), job.kind)
            return 1

        return await _run_async(job, one)


def raw_httpx_sync(job: Job) -> tuple[float, float, int]:
    import httpx

    with httpx.Client() as http:

        def one() -> int:
            response = http.post(job.url, json=job.body, headers=RAW_HEADERS)
            response.raise_for_status()
            _text_of(json.loads(response.content), job.kind)
            return 1

        return _run_sync(job, one)


async def raw_aiohttp(job: Job) -> tuple[float, float, int]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=max(100, job.concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(job.url, json=job.body, headers=RAW_HEADERS) as response:
                response.raise_for_status()
                _text_of(json.loads(await response.read()), job.kind)
            return 1

        return await _run_async(job, one)


def _httpx_aiohttp_client(job: Job) -> Any:
    import httpx
    import httpx_aiohttp

    return httpx_aiohttp.HttpxAiohttpClient(limits=_limits(job))


async def raw_httpx_aiohttp(job: Job) -> tuple[float, float, int]:
    async with _httpx_aiohttp_client(job) as http:

        async def one() -> int:
            response = await http.post(job.url, json=job.body, headers=RAW_HEADERS)
            response.raise_for_status()
            _text_of(json.loads(response.content), job.kind)
            return 1

        return await _run_async(job, one)


def _sdk_settings(job: Job) -> dict[str, Any]:
    return {"api_key": API_KEY}


async def _sdk_async(job: Job, **options: Any) -> tuple[float, float, int]:
    from azml_chat import AsyncChatClient

    async with AsyncChatClient(job.url, **_sdk_settings(job), **options) as client:

        async def one() -> int:
            reply = await client.chat(MESSAGES, **PARAMS)
            assert reply.content
            return 1

        return await _run_async(job, one)


async def sdk_httpx(job: Job) -> tuple[float, float, int]:
    import httpx

    async with httpx.AsyncClient(limits=_limits(job), timeout=50.0) as http:
        return await _sdk_async(job, http_client=http)


async def sdk_aiohttp(job: Job) -> tuple[float, float, int]:
    return await _sdk_async(job, driver="aiohttp")


async def sdk_httpx_aiohttp(job: Job) -> tuple[float, float, int]:
    async with _httpx_aiohttp_client(job) as http:
        return await _sdk_async(job, http_client=http)


def sdk_sync(job: Job) -> tuple[float, float, int]:
    from azml_chat import ChatClient

    with ChatClient(job.url, **_sdk_settings(job)) as client:

        def one() -> int:
            assert client.chat(MESSAGES, **PARAMS).content
            return 1

        return _run_sync(job, one)


async def stream_raw_httpx_async(job: Job) -> tuple[float, float, int]:
    import httpx

    async with httpx.AsyncClient(limits=_limits(job)) as http:

        async def one() -> int:
            units = 0
            async with http.stream("POST", job.url, json=STREAM_BODY, headers=RAW_HEADERS) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        units += _delta_of(line[6:])
            return units

        return await _run_async(job, one)


def stream_raw_httpx_sync(job: Job) -> tuple[float, float, int]:
    import httpx

    with httpx.Client() as http:

        def one() -> int:
            units = 0
            with http.stream("POST", job.url, json=STREAM_BODY, headers=RAW_HEADERS) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        units += _delta_of(line[6:])
            return units

        return _run_sync(job, one)


async def stream_raw_aiohttp(job: Job) -> tuple[float, float, int]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=max(100, job.concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            units = 0
            async with session.post(job.url, json=STREAM_BODY, headers=RAW_HEADERS) as response:
                response.raise_for_status()
                async for line in response.content:
                    if line.startswith(b"data: "):
                        units += _delta_of(line[6:].rstrip(b"\r\n"))
            return units

        return await _run_async(job, one)


async def _stream_sdk_async(job: Job, **options: Any) -> tuple[float, float, int]:
    from azml_chat import AsyncChatClient

    async with AsyncChatClient(job.url, **_sdk_settings(job), **options) as client:

        async def one() -> int:
            units = 0
            async with client.stream(MESSAGES, **PARAMS) as stream:
                async for chunk in stream:
                    chunk.content  # noqa: B018 - what a caller reads
                    units += 1
            return units

        return await _run_async(job, one)


async def stream_sdk_httpx(job: Job) -> tuple[float, float, int]:
    import httpx

    async with httpx.AsyncClient(limits=_limits(job), timeout=50.0) as http:
        return await _stream_sdk_async(job, http_client=http)


async def stream_sdk_aiohttp(job: Job) -> tuple[float, float, int]:
    return await _stream_sdk_async(job, driver="aiohttp")


def stream_sdk_sync(job: Job) -> tuple[float, float, int]:
    from azml_chat import ChatClient

    with ChatClient(job.url, **_sdk_settings(job)) as client:

        def one() -> int:
            units = 0
            with client.stream(MESSAGES, **PARAMS) as stream:
                for chunk in stream:
                    chunk.content  # noqa: B018
                    units += 1
            return units

        return _run_sync(job, one)


SCENARIOS: dict[str, Callable[[Job], Any]] = {
    "httpx-async": raw_httpx_async,
    "httpx-sync": raw_httpx_sync,
    "aiohttp": raw_aiohttp,
    "httpx-aiohttp": raw_httpx_aiohttp,
    "sdk-async": sdk_httpx,
    "sdk-async-aiohttp": sdk_aiohttp,
    "sdk-async-httpx-aiohttp": sdk_httpx_aiohttp,
    "sdk-sync": sdk_sync,
    "stream-httpx-async": stream_raw_httpx_async,
    "stream-httpx-sync": stream_raw_httpx_sync,
    "stream-aiohttp": stream_raw_aiohttp,
    "stream-sdk-async": stream_sdk_httpx,
    "stream-sdk-async-aiohttp": stream_sdk_aiohttp,
    "stream-sdk-sync": stream_sdk_sync,
}


def worker_main(args: argparse.Namespace) -> None:
    job = Job(args.base, args.kind, args.concurrency, args.requests, args.warmup)
    run = SCENARIOS[args.worker]
    result = run(job)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    cpu, wall, units = result
    print(json.dumps({"cpu": cpu, "wall": wall, "units": units, "requests": job.requests}))


# Run by ``python -c`` in a fresh interpreter: nothing but the interpreter's own start-up is loaded.
IMPORT_PROBE = """
import resource, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
c, w = cpu(), time.perf_counter()
import {module}
print(cpu() - c, time.perf_counter() - w)
"""


def _measure_import(module: str, client_cpu: int | None) -> tuple[float, float]:
    """CPU and wall seconds of ``import module`` in a fresh interpreter (start-up itself excluded)."""
    command = [*_pin(client_cpu), sys.executable, "-c", IMPORT_PROBE.format(module=module)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"import {module} failed:\n{done.stderr}")
    cpu, wall = done.stdout.split()
    return float(cpu), float(wall)


# --- the orchestrator --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str  # unique id in tables and JSON
    scenario: str
    kind: str
    concurrency: int
    stream: bool = False
    label: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    row: str
    baseline: str
    limit: float


def _rows() -> list[Row]:
    rows: list[Row] = []
    for c in (1, 64):
        for kind in ("serverless", "dedicated"):
            rows.append(Row(f"httpx-async/{kind}/c{c}", "httpx-async", kind, c, label=f"raw httpx.AsyncClient, {kind}"))
            rows.append(Row(f"sdk-async/{kind}/c{c}", "sdk-async", kind, c, label=f"AsyncChatClient (httpx), {kind}"))
            rows.append(
                Row(f"sdk-aiohttp/{kind}/c{c}", "sdk-async-aiohttp", kind, c, label=f"AsyncChatClient (aiohttp), {kind}")
            )
        rows.append(Row(f"aiohttp/serverless/c{c}", "aiohttp", "serverless", c, label="raw aiohttp (reference)"))
        rows.append(
            Row(
                f"httpx-aiohttp/serverless/c{c}",
                "httpx-aiohttp",
                "serverless",
                c,
                label="raw httpx + httpx-aiohttp transport",
            )
        )
        rows.append(
            Row(
                f"sdk-httpx-aiohttp/serverless/c{c}",
                "sdk-async-httpx-aiohttp",
                "serverless",
                c,
                label="AsyncChatClient (httpx + httpx-aiohttp)",
            )
        )
        rows.append(Row(f"stream-httpx-async/c{c}", "stream-httpx-async", "serverless", c, True, "raw httpx lines"))
        rows.append(Row(f"stream-sdk-async/c{c}", "stream-sdk-async", "serverless", c, True, "AsyncChatClient.stream"))
        rows.append(
            Row(f"stream-sdk-aiohttp/c{c}", "stream-sdk-async-aiohttp", "serverless", c, True, "stream (aiohttp)")
        )
        rows.append(Row(f"stream-aiohttp/c{c}", "stream-aiohttp", "serverless", c, True, "raw aiohttp lines"))
    for kind in ("serverless", "dedicated"):
        rows.append(Row(f"httpx-sync/{kind}/c1", "httpx-sync", kind, 1, label=f"raw httpx.Client, {kind}"))
        rows.append(Row(f"sdk-sync/{kind}/c1", "sdk-sync", kind, 1, label=f"ChatClient, {kind}"))
    rows.append(Row("stream-httpx-sync/c1", "stream-httpx-sync", "serverless", 1, True, "raw httpx lines (sync)"))
    rows.append(Row("stream-sdk-sync/c1", "stream-sdk-sync", "serverless", 1, True, "ChatClient.stream"))
    return rows


TARGETS = [
    Target("async serverless vs raw httpx, C=1", "sdk-async/serverless/c1", "httpx-async/serverless/c1", 1.10),
    Target("async dedicated vs raw httpx, C=1", "sdk-async/dedicated/c1", "httpx-async/dedicated/c1", 1.10),
    Target("sync serverless vs raw httpx, C=1", "sdk-sync/serverless/c1", "httpx-sync/serverless/c1", 1.10),
    Target("sync dedicated vs raw httpx, C=1", "sdk-sync/dedicated/c1", "httpx-sync/dedicated/c1", 1.10),
    Target("async stream per chunk vs raw httpx, C=1", "stream-sdk-async/c1", "stream-httpx-async/c1", 1.20),
    Target("sync stream per chunk vs raw httpx, C=1", "stream-sdk-sync/c1", "stream-httpx-sync/c1", 1.20),
    Target("import azml_chat vs import httpx", "import/azml_chat", "import/httpx", 1.25),
    Target("aiohttp driver serverless vs raw httpx, C=1", "sdk-aiohttp/serverless/c1", "httpx-async/serverless/c1", 0.50),
    Target("aiohttp driver dedicated vs raw httpx, C=1", "sdk-aiohttp/dedicated/c1", "httpx-async/dedicated/c1", 0.50),
    Target(
        "aiohttp driver serverless vs raw httpx, C=64", "sdk-aiohttp/serverless/c64", "httpx-async/serverless/c64", 0.20
    ),
    Target(
        "aiohttp driver dedicated vs raw httpx, C=64", "sdk-aiohttp/dedicated/c64", "httpx-async/dedicated/c64", 0.20
    ),
]

# Rows compared with a baseline in the table (row -> baseline), besides the targets.
COMPARE = {
    "sdk-async/serverless/c64": "httpx-async/serverless/c64",
    "sdk-async/dedicated/c64": "httpx-async/dedicated/c64",
    "stream-sdk-async/c64": "stream-httpx-async/c64",
    "aiohttp/serverless/c1": "httpx-async/serverless/c1",
    "aiohttp/serverless/c64": "httpx-async/serverless/c64",
    "httpx-aiohttp/serverless/c1": "httpx-async/serverless/c1",
    "httpx-aiohttp/serverless/c64": "httpx-async/serverless/c64",
    "sdk-httpx-aiohttp/serverless/c1": "httpx-async/serverless/c1",
    "sdk-httpx-aiohttp/serverless/c64": "httpx-async/serverless/c64",
    "sdk-aiohttp/serverless/c1": "aiohttp/serverless/c1",
    "sdk-aiohttp/serverless/c64": "aiohttp/serverless/c64",
    "stream-sdk-aiohttp/c1": "stream-httpx-async/c1",
    "stream-sdk-aiohttp/c64": "stream-httpx-async/c64",
    "stream-aiohttp/c1": "stream-httpx-async/c1",
    "stream-aiohttp/c64": "stream-httpx-async/c64",
}


@dataclass
class Measures:
    cpu: dict[str, list[float]] = field(default_factory=dict)  # key -> CPU seconds per unit, per round
    rate: dict[str, list[float]] = field(default_factory=dict)  # key -> requests/s per round


def _pin(cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def _start_server(chunks: int, server_cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    command = [*_pin(server_cpu), sys.executable, str(HERE / "server.py"), "--chunks", str(chunks)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit(f"the benchmark server did not start: {line!r}")
    return server, f"http://127.0.0.1:{int(line.split()[1])}"


def _run_worker(argv: list[str], client_cpu: int | None) -> dict[str, Any]:
    command = [*_pin(client_cpu), sys.executable, str(Path(__file__).resolve()), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {' '.join(argv)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ratio(measures: Measures, row: str, baseline: str) -> float | None:
    """Median over rounds of the per-round CPU ratio (rounds are interleaved, so pairs are close)."""
    pairs = zip(measures.cpu.get(row, []), measures.cpu.get(baseline, []), strict=False)
    ratios = [a / b for a, b in pairs if b > 0]
    return statistics.median(ratios) if ratios else None


def _machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("httpx", "httpcore", "aiohttp", "httpx_aiohttp", "attrs", "cattrs", "anyio"):
        try:
            from importlib.metadata import version

            versions[name] = version(name.replace("_", "-"))
        except Exception:
            versions[name] = "?"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "taskset": shutil.which("taskset") is not None,
        "versions": versions,
    }


def orchestrate(args: argparse.Namespace) -> int:
    rows = [row for row in _rows() if not args.only or row.key.startswith(tuple(args.only.split(",")))]
    cpus = os.cpu_count() or 1
    server_cpu = cpus - 1 if cpus > 1 else None
    client_cpu = 0 if cpus > 1 else None
    measures = Measures()
    started = time.perf_counter()
    server, base = _start_server(args.chunks, server_cpu)
    try:
        for round_number in range(args.rounds):
            order = rows if round_number % 2 == 0 else rows[::-1]  # interleave, alternating direction
            for row in order:
                requests = args.stream_requests if row.stream else args.requests
                if row.concurrency > 1:
                    requests *= args.c64_factor
                argv = [
                    "--worker",
                    row.scenario,
                    "--base",
                    base,
                    "--kind",
                    row.kind,
                    "--concurrency",
                    str(row.concurrency),
                    "--requests",
                    str(requests),
                    "--warmup",
                    str(max(requests // 10, row.concurrency * 2)),
                ]
                result = _run_worker(argv, client_cpu)
                if row.stream and result["units"] != requests * (args.chunks + 2):
                    raise SystemExit(f"{row.key}: expected {args.chunks + 2} chunks per stream, got {result}")
                measures.cpu.setdefault(row.key, []).append(result["cpu"] / result["units"])
                measures.rate.setdefault(row.key, []).append(result["requests"] / result["wall"])
            if not args.only or "import" in args.only:
                for _ in range(args.import_repeats):
                    for module in ("httpx", "azml_chat"):
                        cpu, wall = _measure_import(module, client_cpu)
                        measures.cpu.setdefault(f"import/{module}", []).append(cpu)
                        measures.rate.setdefault(f"import/{module}", []).append(wall)
            print(f"round {round_number + 1}/{args.rounds} done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    elapsed = time.perf_counter() - started
    table, verdicts = _table(rows, measures, args)
    print(table)
    report = {
        "machine": _machine(),
        "settings": {
            key: getattr(args, key)
            for key in ("quick", "rounds", "requests", "stream_requests", "chunks", "c64_factor", "import_repeats")
        },
        "elapsed_seconds": round(elapsed, 1),
        "rows": {
            key: {
                "cpu_us_per_unit": [v * 1e6 for v in values],
                "median_cpu_us": statistics.median(values) * 1e6,
                "median_rate": statistics.median(measures.rate[key]),
            }
            for key, values in measures.cpu.items()
        },
        "targets": verdicts,
        "table": table,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"bench-{'quick-' if args.quick else ''}{stamp}.json"
    for path in (RESULTS / name, RESULTS / ("latest-quick.json" if args.quick else "latest.json")):
        path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / name} ({elapsed:.0f}s)", file=sys.stderr)
    missed = [v for v in verdicts if v["pass"] is False]
    return 1 if args.check and missed else 0


def _table(rows: list[Row], measures: Measures, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    def cpu(key: str) -> str:
        values = measures.cpu.get(key)
        return f"{statistics.median(values) * 1e6:.1f}" if values else "-"

    def rate(key: str) -> str:
        values = measures.rate.get(key)
        return f"{statistics.median(values):,.0f}" if values else "-"

    lines = [
        f"Rounds: {args.rounds} (median); requests per row: {args.requests} "
        f"(x{args.c64_factor} at C=64), streams: {args.stream_requests} of {args.chunks + 2} chunks.",
        "",
        "| row | C | CPU µs / request (stream: / chunk) | requests/s | compared with | ratio |",
        "|---|---:|---:|---:|---|---:|",
    ]
    baselines = {t.row: t.baseline for t in TARGETS if not t.row.startswith("import/")} | COMPARE
    for row in rows:
        baseline = baselines.get(row.key)
        ratio = _ratio(measures, row.key, baseline) if baseline else None
        lines.append(
            f"| {row.label} (`{row.key}`) | {row.concurrency} | {cpu(row.key)} | {rate(row.key)} | "
            f"{'`' + baseline + '`' if baseline else ''} | {f'{ratio:.2f}x' if ratio is not None else ''} |"
        )
    if "import/httpx" in measures.cpu:
        for module in ("httpx", "azml_chat"):
            key = f"import/{module}"
            ratio = _ratio(measures, key, "import/httpx") if module != "httpx" else None
            lines.append(
                f"| import {module}, fresh interpreter (`{key}`) | - | "
                f"{statistics.median(measures.cpu[key]) * 1e6:,.0f} | - | "
                f"{'`import/httpx`' if ratio is not None else ''} | "
                f"{f'{ratio:.2f}x' if ratio is not None else ''} |"
            )
    lines += ["", "| target | ratio | limit | result |", "|---|---:|---:|---|"]
    verdicts = []
    for target in TARGETS:
        ratio = _ratio(measures, target.row, target.baseline)
        passed = None if ratio is None else ratio <= target.limit
        verdicts.append({"target": target.name, "ratio": ratio, "limit": target.limit, "pass": passed})
        result = "n/a" if passed is None else ("PASS" if passed else "FAIL")
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"| {target.name} | {shown} | ≤ {target.limit:.2f}x | {result} |")
    return "\n".join(lines), verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description="azml_chat overhead benchmark")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test, not a measurement")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per row at C=1")
    parser.add_argument("--stream-requests", type=int, default=None, help="streams per row at C=1")
    parser.add_argument("--chunks", type=int, default=64, help="content deltas per stream")
    parser.add_argument("--c64-factor", type=int, default=None, help="request multiplier at C=64")
    parser.add_argument("--import-repeats", type=int, default=None, help="import measurements per round")
    parser.add_argument("--only", default="", help="comma-separated prefixes of the row keys to run (and 'import')")
    # worker mode (internal)
    parser.add_argument("--worker", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="serverless", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    defaults = (
        {"rounds": 1, "requests": 100, "stream_requests": 10, "c64_factor": 2, "import_repeats": 1}
        if args.quick
        else {"rounds": 3, "requests": 2000, "stream_requests": 200, "c64_factor": 2, "import_repeats": 5}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
