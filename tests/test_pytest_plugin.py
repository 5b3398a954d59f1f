"""The pytest plugin: its fixtures, the async client under each runner, and its import cost."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from azml_chat import AsyncChatClient, ChatClient
from azml_chat.testing import Fault, LocalEndpoint

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "azml_chat" / "testing" / "pytest_plugin.py"


def test_ready_sync_client(azml_client: ChatClient, azml_endpoint: LocalEndpoint) -> None:
    assert azml_client.chat("sync ready").content == "sync ready"
    azml_endpoint.add_fault(Fault(503, headers={"retry-after-ms": "1"}))
    assert azml_client.chat("after a 503").content == "after a 503"  # retried quickly
    assert [r.path for r in azml_endpoint.requests] == ["/v1/chat/completions"] * 3
    assert azml_endpoint.requests[0].headers["authorization"] == "Bearer test-key"


@pytest.mark.asyncio
async def test_ready_async_client_on_pytest_asyncio(azml_async_client: AsyncChatClient) -> None:
    assert (await azml_async_client.chat("async ready")).content == "async ready"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_ready_async_client_on_anyio(azml_async_client: AsyncChatClient, anyio_backend: str) -> None:
    async with azml_async_client.stream("streamed ready") as stream:
        text = "".join([chunk.content or "" async for chunk in stream])
    assert text == "streamed ready"


def test_session_endpoint_serves(azml_session_endpoint: LocalEndpoint) -> None:
    with ChatClient(azml_session_endpoint.url, api_key="test-key") as client:
        assert client.chat("shared").content == "shared"


INNER_TESTS = """
import pytest

PORTS = []

def test_one(azml_session_endpoint, azml_endpoint):
    PORTS.append(azml_session_endpoint.port)
    assert azml_endpoint.port != azml_session_endpoint.port

def test_two(azml_session_endpoint):
    PORTS.append(azml_session_endpoint.port)
    assert PORTS[0] == PORTS[1]

async def test_async_client(azml_async_client):
    assert (await azml_async_client.chat("inner")).content == "inner"

@pytest.mark.anyio
async def test_async_client_anyio(azml_async_client):
    assert (await azml_async_client.chat("anyio inner")).content == "anyio inner"

def test_factory(azml_endpoint_factory):
    ep = azml_endpoint_factory(kind="foundry")
    assert ep.url.endswith("/models/chat/completions")
"""


@pytest.fixture
def inner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs import this worktree's azml_chat and load only the plugins named."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def run_inner(pytester: pytest.Pytester, *plugins: str) -> pytest.RunResult:
    """pytest in a subprocess on the files ``pytester`` made, with our plugin and ``plugins``."""
    args = ["-p", "azml_chat.testing.pytest_plugin"]
    for plugin in plugins:
        args += ["-p", plugin]
    return pytester.runpytest_subprocess(*args)


@pytest.mark.usefixtures("inner_env")
@pytest.mark.parametrize("asyncio_mode", ["auto", "strict"])
def test_fixtures_in_a_plain_project(pytester: pytest.Pytester, asyncio_mode: str) -> None:
    """A project that only installed azml-chat, with pytest-asyncio and anyio's plugin."""
    tests = INNER_TESTS
    if asyncio_mode == "strict":
        tests = tests.replace("async def test_async_client(", "@pytest.mark.asyncio\nasync def test_async_client(")
    else:  # auto mode hands every async fixture to pytest-asyncio's loop: anyio tests cannot share them
        tests = tests[: tests.index("@pytest.mark.anyio")] + tests[tests.index("def test_factory") :]
    pytester.makepyfile(test_inner=tests)
    pytester.makeini(f"[pytest]\nasyncio_mode = {asyncio_mode}\nasyncio_default_fixture_loop_scope = function\n")
    result = run_inner(pytester, "pytest_asyncio.plugin", "anyio.pytest_plugin")
    result.assert_outcomes(passed=6 if asyncio_mode == "strict" else 4)


@pytest.mark.usefixtures("inner_env")
def test_fixtures_with_anyio_only(pytester: pytest.Pytester) -> None:
    """Without pytest-asyncio the async client is a plain async fixture that anyio runs; a
    sync test asking for it gets pytest's own clear error."""
    pytester.makepyfile(
        test_inner="""
import pytest

@pytest.mark.anyio
async def test_async_client_anyio(azml_async_client):
    assert (await azml_async_client.chat("no pytest-asyncio")).content == "no pytest-asyncio"

def test_sync_test_cannot_use_it(azml_async_client):
    pass
"""
    )
    result = run_inner(pytester, "anyio.pytest_plugin")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 2  # asyncio and trio
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1
    result.stdout.fnmatch_lines(["*test_sync_test_cannot_use_it*"])


def test_plugin_imports_nothing_at_start() -> None:
    """Loading the plugin adds no module beyond its own package (no h11, anyio, the client...).

    (``azml_chat/__init__`` is imported first because Python imports a package before its
    modules; what it costs is the package's concern, measured by benchmarks/plugin_startup.py.)
    """
    code = textwrap.dedent(
        """
        import json, sys
        import azml_chat, pytest
        before = set(sys.modules)
        import azml_chat.testing.pytest_plugin
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    ).stdout
    assert json.loads(out) == ["azml_chat.testing", "azml_chat.testing.pytest_plugin"]
    # and the module's own top-level imports are pytest and the standard library only
    tree = ast.parse(PLUGIN.read_text())
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"__future__", "collections.abc", "typing", "pytest"}


def test_fixtures_are_documented() -> None:
    import azml_chat.testing.pytest_plugin as plugin

    doc = plugin.__doc__ or ""
    for name in ("azml_endpoint", "azml_endpoint_factory", "azml_session_endpoint", "azml_client", "azml_async_client"):
        assert f"``{name}``" in doc
