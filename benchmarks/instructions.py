"""Instructions per request under callgrind: the deterministic companion of ``run.py``.

Timed ratios move by about ±0.05 between runs on a shared machine; instruction counts do
not (they move by a few thousand with the hash seed, which is fixed here). Each row is
``(instructions of N requests - instructions of none) / N``, both counted in a fresh
interpreter under ``valgrind --tool=callgrind`` after the same warm-up, so start-up,
imports and warm-up cancel out. The scenarios are ``run.py``'s, against its server.
Needs valgrind. Rows run in parallel: a count does not depend on the machine's load.

    python benchmarks/instructions.py                 # the table in docs/benchmarks.md (~3 min on 2 cores)
    python benchmarks/instructions.py --requests 50   # quicker, a little rougher
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import run

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Count:
    label: str
    scenario: str
    kind: str = "serverless"
    concurrency: int = 1
    baseline: str | None = None  # the label of the row it is compared with


SAME = "raw httpx2 sync, same request"
ROWS = [
    Count(SAME, "httpx2-sync"),
    Count("raw httpx2 sync, minimal request", "httpx2-sync-minimal", baseline=SAME),
    Count("ChatClient", "sdk-sync", baseline=SAME),
    Count("raw httpx2 sync, dedicated", "httpx2-sync", "dedicated"),
    Count("ChatClient, dedicated", "sdk-sync", "dedicated", baseline="raw httpx2 sync, dedicated"),
    Count("raw httpx2 async", "httpx2-async"),
    Count("raw httpx2 async, minimal request", "httpx2-async-minimal", baseline="raw httpx2 async"),
    Count("AsyncChatClient", "sdk-async", baseline="raw httpx2 async"),
    Count("raw aiohttp", "aiohttp"),
    Count("raw aiohttp, minimal request", "aiohttp-minimal", baseline="raw aiohttp"),
    Count('driver="aiohttp"', "sdk-aiohttp", baseline="raw aiohttp"),
    Count("raw aiohttp, C=64", "aiohttp", concurrency=64),
    Count('driver="aiohttp", C=64', "sdk-aiohttp", concurrency=64, baseline="raw aiohttp, C=64"),
]


def worker(scenario: str, kind: str, concurrency: int, requests: int, base: str) -> None:
    """Warm up, then make ``requests`` requests (``concurrency`` at a time)."""
    made = run.SCENARIOS[scenario](run.Job(base, kind))  # a context manager giving one()
    warmup = max(3, 2 * concurrency)
    if hasattr(made, "__enter__"):  # a sync scenario
        with made as one:
            for _ in range(warmup + requests):
                one()
        return

    async def main() -> None:
        async with made as one:

            async def share(count: int) -> None:
                for _ in range(count):
                    await one()

            for total in (warmup, requests):
                await asyncio.gather(*(share(total // concurrency) for _ in range(concurrency)))

    asyncio.run(main())


def count(row: Count, requests: int, base: str) -> int:
    """Instructions the worker process executed for ``requests`` requests of ``row``."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(HERE / "instructions.py"),
        "--worker", row.scenario, row.kind, str(row.concurrency), str(requests), base,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{row.label}: the worker failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(row: Count, requests: int, base: str) -> float:
    requests -= requests % row.concurrency
    return (count(row, requests, base) - count(row, 0, base)) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests counted per row (default 200)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        scenario, kind, concurrency, requests, base = args.worker
        worker(scenario, kind, int(concurrency), int(requests), base)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: it counts the instructions")
    server, base = run._start_server(64, None)
    try:
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            futures = {row.label: pool.submit(per_request, row, args.requests, base) for row in ROWS}
            counts = {label: future.result() for label, future in futures.items()}
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.kill()
    print(f"Instructions per request (callgrind, {args.requests} requests against none, PYTHONHASHSEED=0):\n")
    print("| row | C | instructions | ratio | compared with |\n|---|---:|---:|---:|---|")
    for row in ROWS:
        ratio = f"{counts[row.label] / counts[row.baseline]:.3f}x" if row.baseline else ""
        print(
            f"| {row.label} | {row.concurrency} | {counts[row.label] / 1000:,.0f}k | {ratio} | {row.baseline or ''} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
