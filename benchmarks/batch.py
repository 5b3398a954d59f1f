"""Batch benchmark: adaptive concurrency against a capacity-limited endpoint, memory, kill -9.

Three measurements, each against the embedded endpoint (``LocalEndpoint``) started in its
own process (pinned to the last CPU when there are two or more; the client gets CPU 0):

1. **goodput**: an endpoint taking at most 8 requests in flight, 50 ms each (an ideal of
   160 requests/s, answering 429 beyond, with no ``retry-after``, as managed online
   endpoints do), 3,000 rows through ``run_batch`` in adaptive mode from a limit of 2, then
   with fixed limits of 2 and 64. Reports goodput (rows/s and % of ideal), the share of
   requests answered 429, and samples the limit and throughput every 100 ms for the plot.
2. **memory** / **resume**: ``azml-chat batch`` on a 1,000,000-row input file against
   ``benchmarks/server.py`` (fixed replies, no limit), peak RSS of the command's process
   (``wait4``'s ``ru_maxrss``); and the worst case, resuming with all rows but 1,000 done.
3. **kill -9**: ``azml-chat batch`` killed with SIGKILL at 20 random points and rerun each
   time, then run to the end: every custom_id must appear exactly once in the output.

    python benchmarks/batch.py                 # everything (about 10 minutes on 2 cores)
    python benchmarks/batch.py --quick         # a smoke run: small sizes, proves it works
    python benchmarks/batch.py --only goodput  # goodput, memory, resume or kill (comma-separated)

Needs the endpoint's capacity model (``LocalEndpoint(capacity=..., service_time=...)``).
Prints a markdown summary, writes JSON to ``benchmarks/results/batch-latest.json`` and the
plot to ``docs/batch-goodput.png`` (matplotlib) or ``docs/batch-goodput.svg`` (without it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS = ROOT / "docs"
API_KEY = "bench-key"
DRIVER = "httpx"  # --driver
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
sys.path.insert(0, str(ROOT))  # this checkout's azml_chat, in this process and (ENV) in the ones it starts


# --- the endpoint, in its own process --------------------------------------------------------


def serve(capacity: int | None, service_time: float) -> None:
    """Run a LocalEndpoint until stdin closes (the ``--serve`` mode of this script)."""
    import inspect

    from azml_chat.testing import LocalEndpoint

    if "capacity" not in inspect.signature(LocalEndpoint).parameters:
        print(
            "ERROR this azml_chat.testing has no capacity model (LocalEndpoint(capacity=, service_time=))", flush=True
        )
        return
    endpoint = LocalEndpoint(api_key=API_KEY, capacity=capacity, service_time=service_time)  # type: ignore[call-arg]
    with endpoint:
        print(f"URL {endpoint.url}", flush=True)
        sys.stdin.read()
        stats = endpoint.capacity_stats  # type: ignore[attr-defined]
        print(json.dumps({"admitted": stats.admitted, "rejected": stats.rejected, "peak": stats.peak_in_flight}))


@contextmanager
def endpoint_process(capacity: int | None, service_time: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """The URL of an endpoint in a child process; its capacity counters land in the dict on exit."""
    args = [sys.executable, __file__, "--serve", str(capacity or 0), str(service_time)]
    if (os.cpu_count() or 1) > 1:
        args = ["taskset", "-c", str((os.cpu_count() or 1) - 1), *args]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    assert process.stdout is not None
    assert process.stdin is not None
    line = process.stdout.readline()
    if not line.startswith("URL "):
        process.kill()
        raise RuntimeError(f"the endpoint did not start: {line!r}")
    stats: dict[str, Any] = {}
    try:
        yield line.split()[1], stats
    finally:
        process.stdin.close()
        rest = process.stdout.read().strip()
        process.wait(timeout=30)
        if rest:
            stats.update(json.loads(rest.splitlines()[-1]))


@contextmanager
def fast_server() -> Iterator[str]:
    """``benchmarks/server.py`` (fixed replies, no limit, tiny cost): the memory run measures the client."""
    args = [sys.executable, str(HERE / "server.py"), "--port", "0"]
    if (os.cpu_count() or 1) > 1:
        args = ["taskset", "-c", str((os.cpu_count() or 1) - 1), *args]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield f"http://127.0.0.1:{line.split()[1]}/v1/chat/completions"
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- 1. goodput --------------------------------------------------------------------------------


async def one_goodput_run(url: str, rows: int, concurrency: int | str, driver: str) -> dict[str, Any]:
    import anyio

    from azml_chat import AsyncChatClient
    from azml_chat.batch import run_batch

    requests = ({"id": str(i), "messages": f"row {i}", "max_tokens": 16} for i in range(rows))
    samples: list[tuple[float, int, int, int]] = []
    async with AsyncChatClient(url, api_key=API_KEY, max_retries=0, timeout=30, driver=driver) as client:  # type: ignore[arg-type]
        async with run_batch(client, requests, concurrency=concurrency) as run:  # type: ignore[arg-type]
            started = time.monotonic()

            async def sample() -> None:
                while True:
                    status = run.status()
                    samples.append((time.monotonic() - started, status.limit, status.done, status.rate_limited))
                    await anyio.sleep(0.1)

            async with anyio.create_task_group() as sampler:
                sampler.start_soon(sample)
                failed = sum([not result.ok async for result in run])
                sampler.cancel_scope.cancel()
        summary = run.summary
    return {
        "concurrency": concurrency,
        "rows": rows,
        "failed": failed,
        "wall_time": summary.wall_time,
        "goodput": summary.rows_per_second,
        "attempts": summary.attempts,
        "rate_limited": summary.rate_limited,
        "share_429": summary.rate_limited / summary.attempts,
        "final_limit": summary.final_limit,
        "latency_p50": summary.latency_p50,
        "samples": samples,
    }


def goodput(quick: bool, driver: str) -> dict[str, Any]:
    import anyio

    capacity, service_time = 8, 0.05
    ideal = capacity / service_time
    rows = 300 if quick else 3000
    runs = []
    # fixed 8 is the oracle: the endpoint's capacity, known in advance, which no real client knows
    for concurrency in ("adaptive", 2, 64, 8):
        with endpoint_process(capacity, service_time) as (url, server):
            result = anyio.run(one_goodput_run, url, rows, concurrency, driver)
        result["server"] = server
        result["percent_of_ideal"] = 100 * result["goodput"] / ideal
        runs.append(result)
        print(
            f"  {concurrency!s:>8}: {result['goodput']:.1f} rows/s ({result['percent_of_ideal']:.1f}% of {ideal:.0f}), "
            f"429s {100 * result['share_429']:.2f}% of {result['attempts']} requests, {result['wall_time']:.1f} s",
            flush=True,
        )
    return {"capacity": capacity, "service_time": service_time, "ideal": ideal, "driver": driver, "runs": runs}


# --- 2. memory ---------------------------------------------------------------------------------


def write_input(path: Path, rows: int) -> None:
    with path.open("w") as file:
        for i in range(rows):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Summarise item {i}."}]}
            line = {"custom_id": f"item-{i:07d}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            file.write(json.dumps(line) + "\n")


def batch_command(source: Path, output: Path, url: str, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "azml_chat.cli", "batch", str(source), "-o", str(output)]
    return [*args, "--url", url, "--api-key", API_KEY, "--progress", "log", "--driver", DRIVER, *extra]


def run_measured(args: list[str]) -> tuple[int, float, float]:
    """Run a command on CPU 0; returns (exit status, peak RSS in MB, seconds)."""
    if (os.cpu_count() or 1) > 1:
        args = ["taskset", "-c", "0", *args]
    started = time.monotonic()
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, time.monotonic() - started


def memory(quick: bool, folder: Path) -> dict[str, Any]:
    """Peak RSS of a whole run over the input."""
    rows = 20_000 if quick else 1_000_000
    source, output = folder / "million.jsonl", folder / "million-out.jsonl"
    write_input(source, rows)
    size = source.stat().st_size / 1e6
    print(f"  input: {rows} rows, {size:.0f} MB", flush=True)
    with fast_server() as url:
        code, peak, seconds = run_measured(batch_command(source, output, url, "--log-interval", "30"))
    lines = sum(1 for _ in output.open())
    print(f"  whole run: exit {code}, {lines} lines, peak RSS {peak:.0f} MB, {seconds:.0f} s", flush=True)
    return {
        "rows": rows,
        "input_mb": size,
        "exit": code,
        "output_lines": lines,
        "peak_rss_mb": peak,
        "seconds": seconds,
        "rows_per_second": rows / seconds,
    }


def resume(quick: bool, folder: Path) -> dict[str, Any]:
    """The worst case for memory: resuming with every row but 1,000 already in the output."""
    rows = 20_000 if quick else 1_000_000
    source, output = folder / "resume.jsonl", folder / "resume-out.jsonl"
    write_input(source, rows)
    write_input(folder / "one.jsonl", 1)
    with fast_server() as url:  # one real result line: the template of the rows already done
        run_measured(batch_command(folder / "one.jsonl", folder / "one-out.jsonl", url))
    template = json.loads((folder / "one-out.jsonl").read_text())
    with output.open("w") as file:
        for i in range(rows - 1000):
            file.write(json.dumps({**template, "custom_id": f"item-{i:07d}"}) + "\n")
    size = output.stat().st_size / 1e6
    with fast_server() as url:
        code, peak, seconds = run_measured(batch_command(source, output, url, "--log-interval", "30"))
    lines = sum(1 for _ in output.open())
    print(
        f"  resume with {rows - 1000} done ({size:.0f} MB): exit {code}, {lines} lines, peak RSS {peak:.0f} MB",
        flush=True,
    )
    return {"rows": rows, "done": rows - 1000, "output_mb": size, "exit": code, "lines": lines, "peak_rss_mb": peak,
            "seconds": seconds}  # fmt: skip


# --- 3. kill -9 and resume ---------------------------------------------------------------------


def kill_and_resume(quick: bool, folder: Path) -> dict[str, Any]:
    kills = 5 if quick else 20
    rows = 1000 if quick else 6000
    source, output = folder / "kill.jsonl", folder / "kill-out.jsonl"
    write_input(source, rows)
    chooser = random.Random(20261205)
    partial_lines = 0
    written: list[int] = []
    with endpoint_process(16, 0.01) as (url, _):
        args = batch_command(source, output, url)
        for _ in range(kills):
            process = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(chooser.uniform(0.5, 3.0))  # start-up (~1 s), scanning and sending all take part
            process.send_signal(signal.SIGKILL)
            process.wait()
            data = output.read_bytes() if output.exists() else b""
            partial_lines += bool(data) and not data.endswith(b"\n")
            written.append(data.count(b"\n"))
        final = subprocess.run(args, env=ENV, capture_output=True, text=True, check=False)
    counts: dict[str, int] = {}
    for line in output.read_text().splitlines():
        custom_id = json.loads(line)["custom_id"]
        counts[custom_id] = counts.get(custom_id, 0) + 1
    expected = {f"item-{i:07d}" for i in range(rows)}
    exactly_once = set(counts) == expected and all(count == 1 for count in counts.values())
    print(
        f"  {kills} kills (lines after each: {written}), {partial_lines} left a partial line; "
        f"final run exit {final.returncode}; every custom_id exactly once: {exactly_once}",
        flush=True,
    )
    return {
        "kills": kills,
        "rows": rows,
        "lines_after_each_kill": written,
        "partial_lines_repaired": partial_lines,
        "final_exit": final.returncode,
        "distinct_ids": len(counts),
        "duplicates": sum(count - 1 for count in counts.values()),
        "missing": len(expected - set(counts)),
        "exactly_once": exactly_once,
    }


# --- the plot ------------------------------------------------------------------------------------


def _series(run: dict[str, Any]) -> tuple[list[float], list[int], list[float]]:
    """Times, limits and throughput over the trailing second (100 ms bins are too noisy to read)."""
    samples = run["samples"]
    times, limits, rates = [], [], []
    start = 0
    for t, limit, done, _ in samples[1:]:
        while samples[start + 1][0] <= t - 1.0:
            start += 1
        t0, _, done0, _ = samples[start]
        times.append(t)
        limits.append(limit)
        rates.append((done - done0) / (t - t0))
    return times, limits, rates


def plot(results: dict[str, Any], path_stem: Path) -> Path:
    runs = results["runs"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_svg(results, path_stem.with_suffix(".svg"))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for run in runs:
        times, limits, rates = _series(run)
        label = f"{run['concurrency']}" if run["concurrency"] == "adaptive" else f"fixed {run['concurrency']}"
        label += " (oracle)" if run["concurrency"] == results["capacity"] else ""
        adaptive = run["concurrency"] == "adaptive"
        top.step(times, limits, where="post", label=label, linewidth=2 if adaptive else 1, zorder=3 if adaptive else 2)
        bottom.plot(times, rates, label=label, linewidth=2 if adaptive else 1, zorder=3 if adaptive else 2)
    top.axhline(results["capacity"], color="grey", linestyle=":", label="endpoint capacity")
    top.set_ylabel("in-flight limit")
    top.set_yscale("log", base=2)
    top.legend(loc="upper right")
    bottom.axhline(results["ideal"], color="grey", linestyle=":", label="ideal (160/s)")
    bottom.set_ylabel("rows/s (trailing second)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="lower right")
    figure.suptitle(f"azml_chat.batch against 8 requests in flight x 50 ms (3,000 rows, {results['driver']} driver)")
    figure.tight_layout()
    path = path_stem.with_suffix(".png")
    figure.savefig(path, dpi=110)
    return path


def _plot_svg(results: dict[str, Any], path: Path) -> Path:
    """The same plot as plain SVG polylines, for machines without matplotlib."""
    width, height, margin = 900, 600, 50
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    longest = max(run["wall_time"] for run in results["runs"])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">']
    panels = (("in-flight limit", 1, 70.0), ("rows/s", 2, 200.0))
    for title, which, top_value in panels:
        y0 = margin + (which - 1) * (height // 2)
        panel = height // 2 - 2 * margin
        parts.append(f'<text x="10" y="{y0 - 10}">{title}</text>')
        parts.append(
            f'<rect x="{margin}" y="{y0}" width="{width - 2 * margin}" height="{panel}" fill="none" stroke="#999"/>'
        )
        for colour, run in zip(colours, results["runs"], strict=False):
            times, limits, rates = _series(run)
            values = limits if which == 1 else rates
            xs = [margin + t / longest * (width - 2 * margin) for t in times]
            ys = [y0 + panel - min(v, top_value) / top_value * panel for v in values]
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
            parts.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
    for i, (colour, run) in enumerate(zip(colours, results["runs"], strict=False)):
        parts.append(f'<text x="{width - 200}" y="{20 + 15 * i}" fill="{colour}">{run["concurrency"]}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))
    return path


def markdown(results: dict[str, Any]) -> str:
    """The figures as the markdown tables of docs/benchmarks.md."""
    out: list[str] = []
    if "goodput" in results:
        good = results["goodput"]
        out += [
            f"| mode | rows/s | % of ideal ({good['ideal']:.0f}/s) | 429s (% of requests) | requests | wall time |",
            "|---|---|---|---|---|---|",
        ]
        for run in good["runs"]:
            name = "adaptive (from 2)" if run["concurrency"] == "adaptive" else f"fixed {run['concurrency']}"
            name += " (the oracle)" if run["concurrency"] == good["capacity"] else ""
            out.append(
                f"| {name} | {run['goodput']:.1f} | {run['percent_of_ideal']:.1f}% | {100 * run['share_429']:.2f}% "
                f"| {run['attempts']} | {run['wall_time']:.1f} s |"
            )
        out.append("")
    if "memory" in results or "resume" in results:
        out += ["| run | rows | peak RSS | time |", "|---|---|---|---|"]
    if "memory" in results:
        mem = results["memory"]
        out.append(
            f"| whole input ({mem['input_mb']:.0f} MB) | {mem['rows']:,} | {mem['peak_rss_mb']:.0f} MB "
            f"| {mem['seconds']:.0f} s ({mem['rows_per_second']:.0f} rows/s) |"
        )
    if "resume" in results:
        res = results["resume"]
        out.append(
            f"| resume, {res['done']:,} done ({res['output_mb']:.0f} MB output) | {res['rows']:,} "
            f"| {res['peak_rss_mb']:.0f} MB | {res['seconds']:.0f} s |"
        )
    if "memory" in results or "resume" in results:
        out.append("")
    if "kill" in results:
        kill = results["kill"]
        out += [
            f"{kill['kills']} kills of a {kill['rows']:,}-row job; output lines after each kill: "
            f"{', '.join(map(str, kill['lines_after_each_kill']))}; partial last lines repaired: "
            f"{kill['partial_lines_repaired']}; after the final run: {kill['distinct_ids']:,} distinct ids, "
            f"{kill['duplicates']} duplicates, {kill['missing']} missing.",
            "",
        ]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: proves every part runs")
    parser.add_argument(
        "--only", default="goodput,memory,resume,kill", help="comma-separated: goodput, memory, resume, kill"
    )
    parser.add_argument("--driver", choices=["httpx", "aiohttp"], default="httpx", help="the client's HTTP library")
    parser.add_argument("--plot", metavar="JSON", help="only draw the plot again from a results file")
    parser.add_argument("--serve", nargs=2, metavar=("CAPACITY", "SERVICE_TIME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]) or None, float(args.serve[1]))
        return 0
    if args.plot:
        saved = json.loads(Path(args.plot).read_text())
        print(plot(saved["goodput"], DOCS / f"batch-goodput-{saved['goodput']['driver']}"))
        return 0
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    global DRIVER
    DRIVER = args.driver
    wanted = set(args.only.split(","))
    results: dict[str, Any] = {"quick": args.quick, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if "goodput" in wanted:
            print("goodput: 8 in flight x 50 ms (ideal 160/s)", flush=True)
            results["goodput"] = goodput(args.quick, args.driver)
            name = f"batch-goodput-{args.driver}" + ("-quick" if args.quick else "")
            image = plot(results["goodput"], DOCS / name)
            print(f"  plot: {image.relative_to(ROOT)}", flush=True)
        if "memory" in wanted:
            print("memory: a 1,000,000-row input", flush=True)
            results["memory"] = memory(args.quick, folder)
        if "resume" in wanted:
            print("memory: resuming a 1,000,000-row input with all but 1,000 rows done", flush=True)
            results["resume"] = resume(args.quick, folder)
        if "kill" in wanted:
            print("kill -9 and resume", flush=True)
            results["kill"] = kill_and_resume(args.quick, folder)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch-latest.json").write_text(json.dumps(results, indent=2))
    print()
    print(markdown(results))
    ok = True
    if "goodput" in results:
        adaptive = results["goodput"]["runs"][0]
        ok &= adaptive["percent_of_ideal"] >= 90 and adaptive["share_429"] < 0.05
    if "memory" in results:
        ok &= results["memory"]["peak_rss_mb"] < 200
    if "resume" in results:
        ok &= results["resume"]["peak_rss_mb"] < 200 and results["resume"]["lines"] == results["resume"]["rows"]
    if "kill" in results:
        ok &= results["kill"]["exactly_once"]
    print("targets met" if ok else "a target was missed", flush=True)
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
