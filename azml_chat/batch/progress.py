"""Progress of a batch job: a live bar on a terminal (rich), plain periodic lines elsewhere.

rich is optional (extra ``azml-chat[progress]``): without it, or when stderr is not a
terminal (CI logs, ``nohup``, a pipe), :class:`LogProgress` prints one line every
``interval`` seconds, which reads well in a log file where a redrawn bar would not.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from rich.progress import TaskID

    from .jobs import JobPlan
    from .runner import BatchStatus, BatchSummary

__all__ = ["LogProgress", "Progress", "RichProgress", "make_progress", "rich_available"]


def rich_available() -> bool:
    """Whether the optional ``rich`` package is installed."""
    return importlib.util.find_spec("rich") is not None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _rate_and_eta(plan: JobPlan, status: BatchStatus) -> tuple[float, float | None]:
    rate = status.done / status.elapsed if status.elapsed > 0 else 0.0
    left = plan.to_do - status.done
    return rate, (left / rate if rate > 0 else None)


class Progress(Protocol):
    """What a progress display does: shown at start, updated while running, closed with the summary."""

    def start(self, plan: JobPlan) -> None:
        """The job is about to run ``plan.to_do`` rows of ``plan.total``."""

    def update(self, status: BatchStatus) -> None:
        """Called often (every ~0.25 s); the display decides what to show and when."""

    def finish(self, summary: BatchSummary) -> None:
        """The job ended; show the final summary table."""


class LogProgress:
    """One plain line every ``interval`` seconds on ``stream``, and the summary as aligned text."""

    def __init__(
        self, stream: TextIO | None = None, *, interval: float = 10.0, prefix: str = "azml-chat batch"
    ) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.interval = interval
        self.prefix = prefix
        self._plan: JobPlan | None = None
        self._next = 0.0

    def start(self, plan: JobPlan) -> None:
        """Print what the job found on start."""
        self._plan = plan
        self._next = time.monotonic() + self.interval
        done = f", {plan.already_done} already in the output" if plan.already_done else ""
        repaired = "".join(f"; cut a partial last line off {path}" for path in plan.repaired)
        self._print(f"{plan.total} rows in the input{done}, {plan.to_do} to do{repaired}")

    def line(self, status: BatchStatus) -> str:
        """The progress line for ``status``."""
        assert self._plan is not None
        plan = self._plan
        rate, eta = _rate_and_eta(plan, status)
        finished = plan.already_done + status.done
        percent = 100.0 * finished / plan.total if plan.total else 100.0
        paused = f" | paused {status.paused_for:.1f}s" if status.paused_for > 0 else ""
        return (
            f"{finished}/{plan.total} rows ({percent:.1f}%) | {rate:.1f} rows/s | limit {status.limit}"
            f" | in flight {status.in_flight} | 429s {status.rate_limited} | failed {status.failed}"
            f" | ETA {_duration(eta)}{paused}"
        )

    def update(self, status: BatchStatus) -> None:
        """Print a line when ``interval`` seconds have passed since the last one."""
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self._print(self.line(status))

    def finish(self, summary: BatchSummary) -> None:
        """Print the summary as aligned text."""
        self._print("done")
        print(str(summary), file=self.stream, flush=True)

    def _print(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=self.stream, flush=True)


class RichProgress:
    """A live bar on a terminal: rows done/total, rate, limit, in flight, 429s, failed, ETA."""

    def __init__(
        self, stream: TextIO | None = None, *, force_terminal: bool | None = None, width: int | None = None
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.console: Console = Console(file=stream or sys.stderr, force_terminal=force_terminal, width=width)
        self._bar = Bar(
            TextColumn("[bold]batch"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} rows/s"),
            TextColumn("limit {task.fields[limit]}"),
            TextColumn("in flight {task.fields[in_flight]}"),
            TextColumn("429s {task.fields[rate_limited]}"),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task: TaskID | None = None
        self._plan: JobPlan | None = None

    def start(self, plan: JobPlan) -> None:
        """Show the bar, starting at the rows already done."""
        self._plan = plan
        if plan.already_done or plan.repaired:
            repaired = "".join(f"; cut a partial last line off {path}" for path in plan.repaired)
            self.console.print(f"resuming: {plan.already_done} of {plan.total} rows already done{repaired}")
        self._task = self._bar.add_task(
            "batch",
            total=plan.total,
            completed=plan.already_done,
            rate=0.0,
            limit=0,
            in_flight=0,
            rate_limited=0,
            failed=0,
        )
        self._bar.start()

    def update(self, status: BatchStatus) -> None:
        """Move the bar and the counters."""
        assert self._task is not None
        assert self._plan is not None
        rate, _ = _rate_and_eta(self._plan, status)
        self._bar.update(
            self._task,
            completed=self._plan.already_done + status.done,
            rate=rate,
            limit=status.limit,
            in_flight=status.in_flight,
            rate_limited=status.rate_limited,
            failed=status.failed,
        )

    def finish(self, summary: BatchSummary) -> None:
        """Stop the bar and print the summary table."""
        from rich.table import Table

        self._bar.stop()
        table = Table(title="batch summary", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value", justify="right")
        for label, value in summary.lines():
            table.add_row(label, value)
        self.console.print(table)


def make_progress(
    mode: Literal["auto", "bar", "log", "off"], stream: TextIO | None = None, *, interval: float = 10.0
) -> Progress | None:
    """The display for ``mode``: ``auto`` is a bar on a terminal when rich is installed, else lines."""
    stream = stream or sys.stderr
    if mode == "off":
        return None
    if mode == "bar" and not rich_available():
        raise ConfigurationError("a progress bar needs rich: pip install 'azml-chat[progress]' (or use --progress log)")
    if mode == "bar" or (mode == "auto" and stream.isatty() and rich_available()):
        return RichProgress(stream)
    return LogProgress(stream, interval=interval)
