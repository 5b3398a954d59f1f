"""Developer sessions. ``nox -l`` lists them; ``nox`` alone runs tests, lint and typecheck.

- ``tests``: the whole suite with branch coverage on the Python running nox.
- ``tests-3.11``, ``tests-3.12``, ``tests-3.13``: the same on every Python the classifiers list.
- ``tests-lowest``: the same with the lowest versions ``pyproject.toml`` allows for our direct
  dependencies (uv's ``--resolution lowest-direct``), on the lowest supported Python.
- ``lint`` (ruff), ``typecheck`` (mypy --strict), ``verifytypes`` (pyright's public-API
  completeness), ``docs`` (mkdocs --strict), ``twine`` (build, ``twine check --strict``,
  LICENSE in both archives), ``bench`` (docs/benchmarks.md), ``bench-instructions`` (the same
  comparison in instructions, under valgrind), ``bench-batch``.
"""

from __future__ import annotations

import glob
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
# uv creates environments and installs in seconds; plain venv + pip when uv is missing.
nox.options.default_venv_backend = "uv|venv"
# Never download an interpreter: the machines here reach package registries only.
nox.options.download_python = "never"

# Keep in step with the "Programming Language :: Python :: 3.x" classifiers.
PYTHONS = ["3.11", "3.12", "3.13"]
LOWEST_PYTHON = PYTHONS[0]
# The README's test command, which CI runs too.
PYTEST = ("python", "-m", "pytest", "--cov=azml_chat", "--cov-branch")


def _interpreter(version: str) -> str:
    """A path to Python ``version`` when pyenv has it installed but not activated.

    pyenv's ``python3.12`` shim fails unless 3.12 is selected, and nox's discovery does
    not look inside pyenv; anywhere else the bare version lets nox find the interpreter.
    """
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    return found[-1] if found else version


def _run_suite(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run(*PYTEST, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite with branch coverage (fails under 90%), on nox's own Python."""
    _run_suite(session)


def _tests_on(version: str) -> None:
    def run(session: nox.Session) -> None:
        _run_suite(session)

    run.__doc__ = f"The whole test suite on Python {version}."
    nox.session(python=_interpreter(version), name=f"tests-{version}")(run)


for _version in PYTHONS:
    _tests_on(_version)


# Prints the version of every direct requirement that got installed, for the session's log.
_PRINT_VERSIONS = """
import importlib.metadata as metadata, re
names = sorted({re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in metadata.requires("azml-chat") or []})
found = []
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
print("installed:", ", ".join(found))
"""


@nox.session(name="tests-lowest", python=_interpreter(LOWEST_PYTHON), venv_backend="uv")
def tests_lowest(session: nox.Session) -> None:
    """The suite with the lowest versions of our direct dependencies that pyproject allows."""
    # --upgrade: resolve afresh even in a reused venv; uv otherwise keeps a newer version that is
    # already installed (orjson came in newer through langsmith) and the floor goes untested.
    session.install("--resolution", "lowest-direct", "--upgrade", "-e", ".[test]")
    session.run("python", "-c", _PRINT_VERSIONS, silent=False)
    session.run(*PYTEST, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy", "azml_chat")


@nox.session
def verifytypes(session: nox.Session) -> None:
    """pyright's type completeness of the public API (every exported symbol fully typed)."""
    session.install("-e", ".[test]", "pyright>=1.1.380")
    session.run("pyright", "--verifytypes", "azml_chat", "--ignoreexternal")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; a broken reference or link fails the build."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp(), "site")))


@nox.session
def twine(session: nox.Session) -> None:
    """Build the sdist and wheel, run ``twine check --strict``, and check LICENSE is in both."""
    session.install("build>=1.2", "twine>=6.1")
    dist = Path(session.create_tmp(), "dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    archives = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *archives)
    for archive in archives:
        names = _archive_names(archive)
        if not any(name.endswith(("/LICENSE", "/licenses/LICENSE")) for name in names):
            session.error(f"{archive} has no LICENSE file")
        if not any(name.endswith("azml_chat/py.typed") for name in names):
            session.error(f"{archive} has no azml_chat/py.typed marker")
    session.log(f"LICENSE and py.typed found in {len(archives)} archives")


def _archive_names(archive: str) -> list[str]:
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as wheel:
            return wheel.namelist()
    with tarfile.open(archive) as sdist:
        return sdist.getnames()


@nox.session
def bench(session: nox.Session) -> None:
    """Client CPU per request against raw httpx2, aiohttp and httpx (``nox -s bench -- --quick``
    for a smoke run); see docs/benchmarks.md."""
    session.install("-e", ".[aiohttp,httpx]", "httpx-aiohttp")  # httpx-aiohttp: reference rows only
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(name="bench-instructions")
def bench_instructions(session: nox.Session) -> None:
    """Instructions per request under callgrind (needs valgrind): the deterministic companion
    of ``bench``; see docs/benchmarks.md."""
    session.install("-e", ".[aiohttp,httpx]")
    session.run("python", "benchmarks/instructions.py", *session.posargs)


@nox.session(name="bench-batch")
def bench_batch(session: nox.Session) -> None:
    """Batch goodput, memory and kill -9 figures (``nox -s bench-batch -- --quick`` for a smoke run)."""
    session.install("-e", ".[progress,aiohttp]", "matplotlib")  # matplotlib: the plot in docs/
    session.run("python", "benchmarks/batch.py", *session.posargs)
