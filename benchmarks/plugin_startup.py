"""What the azml-chat pytest plugin adds to pytest's start-up.

Runs ``pytest`` on a project of one trivial test, in fresh processes, with and without the
plugin, alternating the two so machine load hits both alike, and prints the medians:

- **isolated**: plugin autoloading off, so pytest loads only our plugin (``-p
  azml_chat.testing.pytest_plugin``) or nothing: the plugin's own cost;
- **installed**: every installed plugin autoloaded, with ``-p no:azml_chat`` or without:
  what a user of this environment pays for having azml-chat installed.

Usage: ``python benchmarks/plugin_startup.py [--runs 15]``; this checkout's ``azml_chat``
is the one measured (it goes first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(project: Path, args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one ``pytest`` run (it must pass)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def import_time(statement: str, runs: int, env: dict[str, str]) -> float:
    """Median wall seconds of ``python -c statement`` in a fresh process."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def compare(project: Path, runs: int, env: dict[str, str], without: list[str], with_: list[str]) -> tuple[float, float]:
    """Median seconds without and with the plugin, runs alternating."""
    times: dict[str, list[float]] = {"without": [], "with": []}
    run_pytest(project, without, env)  # warm the file cache and the .pyc files
    run_pytest(project, with_, env)
    for _ in range(runs):
        times["without"].append(run_pytest(project, without, env))
        times["with"].append(run_pytest(project, with_, env))
    return statistics.median(times["without"]), statistics.median(times["with"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each variant (default 15)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        # an ini of its own keeps pytest from finding another config (and pytest-asyncio quiet)
        (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        rows = [
            (
                "isolated (autoload off)",
                compare(
                    project,
                    args.runs,
                    {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                    [],
                    ["-p", "azml_chat.testing.pytest_plugin"],
                ),
            ),
            ("installed (autoload on)", compare(project, args.runs, env, ["-p", "no:azml_chat"], [])),
        ]
        imports = [
            (statement, import_time(statement, args.runs, env))
            for statement in (
                "import pytest",
                "import pytest, azml_chat",
                "import pytest, azml_chat.testing.pytest_plugin",
            )
        ]
    print(f"pytest start-up, median of {args.runs} runs each ({sys.version.split()[0]}):")
    print(f"{'':26} {'without':>9} {'with':>9} {'added':>9} {'ratio':>7}")
    for name, (without, with_) in rows:
        added = (with_ - without) * 1000
        print(f"{name:26} {without * 1000:7.0f}ms {with_ * 1000:7.0f}ms {added:7.0f}ms {with_ / without:7.3f}")
    print("where it goes (python -c):")
    base = imports[0][1]
    for statement, seconds in imports:
        print(f"  {statement:52} {seconds * 1000:6.0f}ms  (+{(seconds - base) * 1000:.0f}ms)")


if __name__ == "__main__":
    main()
