"""The LangChain models behave like pydantic/LangChain objects (issue 13): ``copy.deepcopy``,
``model_copy()`` and ``pickle`` work before and after use, copies never share or reuse the
original's HTTP clients, closing and reopening leaks no finalizer or client, and each event
loop's async client is closed when that loop shuts down. Both model classes, real HTTP."""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from support import API_KEY, FAST_RETRIES

from azml_chat import APITimeoutError, ChatClient, ConfigurationError
from azml_chat.langchain import AzureMLChatOnlineEndpoint, AzureMLOnlineEndpoint
from azml_chat.testing import Fault, LocalEndpoint

MODELS = [AzureMLChatOnlineEndpoint, AzureMLOnlineEndpoint]
model_classes = pytest.mark.parametrize("model_class", MODELS, ids=["chat", "llm"])


def make(model_class: type[Any], endpoint: LocalEndpoint, **settings: Any) -> Any:
    return model_class(endpoint_url=endpoint.chat_url, endpoint_api_key=API_KEY, retry_policy=FAST_RETRIES, **settings)


def text(reply: Any) -> str:
    """The answer of either model class (an AIMessage or a string)."""
    return reply if isinstance(reply, str) else reply.content


def wait_until(condition: Callable[[], bool]) -> bool:
    """Wait for the endpoint's thread to see what the client did (not a timing assertion)."""
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


class LockedCredential:
    """An azure-identity-like credential holding a lock, as real ones do (so it cannot be copied)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def get_token(self, *scopes: str, **_kwargs: Any) -> Any:
        return types.SimpleNamespace(token=API_KEY, expires_on=time.time() + 3600)


# --- copies and pickles --------------------------------------------------------------------


@model_classes
def test_deepcopy_and_pickle_of_a_used_model_work_and_get_clients_of_their_own(
    model_class: type[Any], endpoint: LocalEndpoint
) -> None:
    model = make(model_class, endpoint, model_kwargs={"temperature": 0.5})
    assert text(model.invoke("before")) == "before"  # the lazily made client and its lock exist now
    copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model)), model.model_copy(deep=True)]
    model.close()
    for made in copies:
        assert type(made) is model_class
        assert made.model_kwargs == {"temperature": 0.5}
        assert made.model_kwargs is not model.model_kwargs
        assert made.endpoint_api_key.get_secret_value() == API_KEY
        assert text(made.invoke("after")) == "after"  # the original's client is closed: a copy has its own
        made.close()


@model_classes
def test_shallow_model_copy_does_not_share_the_http_client(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint)
    model.invoke("x")
    copied = model.model_copy()
    copied.invoke("y")
    copied.close()  # must not close the original's connections
    assert text(model.invoke("still works")) == "still works"
    assert text(copy.copy(model).invoke("copy.copy too")) == "copy.copy too"


@model_classes
def test_model_copy_with_update_uses_the_new_settings(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint, timeout=30, max_retries=0)
    model.invoke("made the client with a 30 s time-out")
    quick = model.model_copy(update={"timeout": 0.2})
    endpoint.add_fault(Fault(delay_before_headers=1.0))
    with pytest.raises(APITimeoutError):
        quick.invoke("x")
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as other:
        moved = model.model_copy(update={"endpoint_url": other.chat_url})
        moved.invoke("to the other endpoint")
        assert [request.json["messages"][-1]["content"] for request in other.requests] == ["to the other endpoint"]
        moved.close()
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        model.model_copy(update={"endpoint_url": "not a url"})


def test_model_copy_to_a_score_url_infers_the_endpoint_kind_again(endpoint: LocalEndpoint) -> None:
    model = make(AzureMLChatOnlineEndpoint, endpoint)
    assert model.endpoint_api_type == "serverless"  # inferred from the chat-completions URL
    moved = model.model_copy(update={"endpoint_url": endpoint.score_url})
    assert moved.endpoint_api_type == "dedicated"
    assert moved.invoke("to /score").content == "to /score"
    assert "input_data" in endpoint.requests[-1].json


@model_classes
def test_a_credential_is_shared_by_copies_not_copied(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    credential = LockedCredential()
    model = model_class(endpoint_url=endpoint.chat_url, credential=credential, retry_policy=FAST_RETRIES)
    model.invoke("x")
    copied = copy.deepcopy(model)
    assert copied.credential is credential
    assert text(copied.invoke("with the shared credential")) == "with the shared credential"


# --- closing, reopening, finalizers ----------------------------------------------------------


def live_clients(url: str) -> list[ChatClient]:
    gc.collect()
    return [obj for obj in gc.get_objects() if isinstance(obj, ChatClient) and obj.endpoint_url.startswith(url)]


def finalizers_of(model: Any) -> list[weakref.finalize[Any, Any]]:
    gc.collect()
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, weakref.finalize):
            info = obj.peek()
            if info is not None and info[0] is model:
                found.append(obj)
    return found


@model_classes
def test_closing_and_reopening_leaks_no_finalizer_or_client(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint)
    for _ in range(3):
        model.invoke("x")
        model.close()
    assert len(finalizers_of(model)) <= 1
    assert live_clients(endpoint.base_url) == []
    model.invoke("open again")
    assert len(live_clients(endpoint.base_url)) == 1
    assert wait_until(lambda: endpoint.open_connections == 1)


@model_classes
def test_a_dropped_model_closes_its_connections(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint)
    model.invoke("x")
    assert wait_until(lambda: endpoint.open_connections == 1)
    del model
    gc.collect()
    assert wait_until(lambda: endpoint.open_connections == 0)


# --- async clients and event loops ---------------------------------------------------------


@model_classes
def test_each_loops_async_client_is_closed_when_the_loop_ends(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint)
    assert text(asyncio.run(model.ainvoke("first loop"))) == "first loop"
    assert wait_until(lambda: endpoint.open_connections == 0), "the first loop's client was left open"
    assert text(asyncio.run(model.ainvoke("second loop"))) == "second loop"
    assert wait_until(lambda: endpoint.open_connections == 0)
    assert endpoint.total_connections == 2


@model_classes
def test_aclose_closes_the_running_loops_client(model_class: type[Any], endpoint: LocalEndpoint) -> None:
    model = make(model_class, endpoint)

    async def main() -> None:
        await model.ainvoke("a")
        await model.ainvoke("b")  # the same client: one connection
        assert endpoint.total_connections == 1
        await model.aclose()
        assert wait_until(lambda: endpoint.open_connections == 0)
        await model.ainvoke("c")  # a new client after aclose

    asyncio.run(main())
    assert endpoint.total_connections == 2


def test_a_loop_closed_without_shutting_down_is_forgotten(endpoint: LocalEndpoint) -> None:
    model = make(AzureMLChatOnlineEndpoint, endpoint)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(model.ainvoke("manual loop")).content == "manual loop"
    loop.close()  # without shutdown_asyncgens: nothing can close that client any more
    assert asyncio.run(model.ainvoke("next loop")).content == "next loop"
    assert model._clients.by_loop == {}


def test_loops_in_two_threads_each_get_their_own_client(endpoint: LocalEndpoint) -> None:
    model = make(AzureMLChatOnlineEndpoint, endpoint)
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def run(name: str) -> None:
        async def main() -> None:
            await model.ainvoke("warm up")
            barrier.wait(timeout=10)  # both loops hold their client at once
            answers.append((await model.ainvoke(name)).content)

        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == ["one", "two"]
    assert wait_until(lambda: endpoint.open_connections == 0)
