"""Helpers of the command-line tests: run ``azml-chat`` as a subprocess, or under a pseudo-terminal.

Both run ``python -m azml_chat.cli`` from the repository root with ``PYTHONPATH`` set to it,
so the code under test is this checkout's, and with no ``AZUREML_*`` variable but those given.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[=>])")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a command run: this one without AZUREML_* variables, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("AZUREML_")}
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


def run_cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``azml-chat ARGS`` to the end; stdin is ``stdin`` (or empty, never a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "azml_chat.cli", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cli_env(**env),
        check=False,
    )


class Terminal:
    """``azml-chat ARGS`` on a pseudo-terminal, as a person at a keyboard runs it (Ctrl-C is ``\\x03``)."""

    def __init__(self, *args: str, **env: str) -> None:
        argv = [sys.executable, "-m", "azml_chat.cli", *args]
        environment = cli_env(TERM="dumb", **env)
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes the command, with the terminal as its controlling tty
            try:
                os.chdir(ROOT)
                os.execve(sys.executable, argv, environment)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.raw = b""
        self.seen = 0  #: where in ``screen`` the next ``expect`` starts looking
        self.status: int | None = None

    @property
    def screen(self) -> str:
        """Everything the terminal showed so far, without escape sequences and carriage returns."""
        return _ESCAPES.sub("", self.raw.decode(errors="replace")).replace("\r", "")

    def _read(self, timeout: float) -> bool:
        """Read what the terminal has within ``timeout``; False once it is closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the command ended and closed the terminal
            return False
        self.raw += data
        return bool(data)

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Wait until the screen shows ``text`` after what earlier calls matched; returns the
        output between (AssertionError with the screen if ``text`` does not come)."""
        deadline = time.monotonic() + timeout
        while (found := self.screen.find(text, self.seen)) < 0:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r}; screen:\n{self.screen}"
            assert self._read(min(remaining, 0.5)), f"the command ended before {text!r}; screen:\n{self.screen}"
        before, self.seen = self.screen[self.seen : found], found + len(text)
        return before

    def expect_reading(self, timeout: float = 30.0) -> None:
        """Wait until the command sits blocked reading the terminal (its main thread asleep in
        ``select``/``poll``, per Linux's ``/proc/PID/wchan``; elsewhere this waits for nothing).

        CPython's readline loop checks for signals only when ``select()`` is interrupted, so
        a Ctrl-C typed in the microseconds between two keystrokes' processing is noticed only
        at the next key. A person never types that fast; a test does, so it waits for this.
        """
        wchan = Path(f"/proc/{self.pid}/wchan")
        deadline = time.monotonic() + timeout
        while wchan.exists():
            state = wchan.read_text()
            if "poll" in state or "select" in state:
                return
            assert time.monotonic() < deadline, f"the command never waited for input (in {state!r})"
            self._read(0.005)

    def type(self, text: str) -> None:
        """Type ``text`` (a newline is Enter, ``"\\x03"`` Ctrl-C, ``"\\x04"`` Ctrl-D)."""
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 30.0) -> int:
        """Read the rest of the output until the command exits; its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._read(0.05):
                time.sleep(0.01)  # the terminal is closed; the process is about to be reaped
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while select.select([self.fd], [], [], 0)[0] and self._read(0):
                    pass  # what it wrote just before it ended
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        self.close()
        raise AssertionError(f"the command did not end; screen:\n{self.screen}")

    def close(self) -> None:
        """Kill the command if it still runs and release the terminal (again: nothing to do)."""
        if self.fd < 0:
            return
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                pass
        os.close(self.fd)
        self.fd = -1
