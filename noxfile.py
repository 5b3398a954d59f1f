"""Developer sessions: ``nox -s tests lint typecheck bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite with branch coverage (fails under 90%)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "--cov=azml_chat", "--cov-branch", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy", "azml_chat")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Client CPU per request against raw httpx2, aiohttp and httpx (``nox -s bench -- --quick``
    for a smoke run); see docs/benchmarks.md."""
    # httpx2 and httpx: the default library and a caller's; httpx-aiohttp: reference rows only
    session.install("-e", ".[aiohttp]", "httpx2", "httpx", "httpx-aiohttp")
    session.run("python", "benchmarks/run.py", *session.posargs)
