"""Beyond one machine: the batch runner inside Ray Data (extra ``azml-chat[ray]``).

:class:`ChatBatchProcessor` is a callable class for ``ray.data.Dataset.map_batches``. Ray
makes one per worker (actor); each owns one ``AsyncChatClient`` on its own event loop
thread and one :class:`~azml_chat.batch.AIMDController`, kept across the batches it is
handed, so every worker learns the shared endpoint's capacity from its own 429s and
backs off with the others. Rows and results use the JSONL job columns, so the same
files work with ``azml-chat batch`` and with Ray::

    import ray
    from azml_chat.batch.ray import ChatBatchProcessor

    requests = ray.data.read_json("requests.jsonl")    # custom_id, method, url, body
    results = requests.map_batches(
        ChatBatchProcessor,
        fn_constructor_kwargs={"endpoint_url": url, "api_key": key},
        batch_size=256,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=4),
        num_cpus=0.5,                                  # waiting on HTTP: leave CPUs to the readers
    )
    results.write_json("results/")                     # id, custom_id, response, error

Write Parquet with ``json_columns=True``: ``response`` and ``error`` are then JSON text,
which keeps one column type whatever the replies hold. This module does not import Ray
itself; Ray imports it in its workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.from_thread

from ..errors import InvalidRequestError
from .controller import AIMDController
from .jobs import parse_request_line, result_line
from .runner import BatchRequest, BatchResult, run_batch

if TYPE_CHECKING:
    from ..client import AsyncChatClient

__all__ = ["OUTPUT_COLUMNS", "ChatBatchProcessor", "batch_rows"]

#: The columns :class:`ChatBatchProcessor` returns (those of an OpenAI batch output line).
OUTPUT_COLUMNS = ("id", "custom_id", "response", "error")


def _plain(value: Any) -> Any:
    """Python values from what Ray hands over (numpy arrays and scalars inside the rows)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return _plain(tolist()) if callable(tolist) and not isinstance(value, str | bytes) else value


def batch_rows(batch: Any) -> list[dict[str, Any]]:
    """The rows of a Ray batch: a ``pyarrow.Table``, a ``pandas.DataFrame`` or a dict of columns."""
    if hasattr(batch, "to_pylist"):  # pyarrow
        rows: Iterable[Any] = batch.to_pylist()
    elif hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        rows = batch.to_dict("records")
    elif isinstance(batch, Mapping):
        columns = {name: list(values) for name, values in batch.items()}
        count = len(next(iter(columns.values()))) if columns else 0
        rows = ({name: values[i] for name, values in columns.items()} for i in range(count))
    else:
        raise InvalidRequestError(f"a batch must be a pyarrow Table, a pandas DataFrame or a dict, not {type(batch)}")
    return [_plain(row) for row in rows]


class ChatBatchProcessor:
    """For ``Dataset.map_batches``: sends each row through one adaptive client per worker.

    ``endpoint_url`` / ``api_key`` and ``client_settings`` (other ``AsyncChatClient``
    keyword arguments) make the worker's client; it is made with ``max_retries=0`` since
    the batch retries. ``concurrency``, the budgets and ``max_attempts`` are those of
    :func:`~azml_chat.batch.run_batch`, per worker. Rows are OpenAI batch request lines or
    ``{"messages": ...}`` rows; ``model`` / ``keep_model`` as for ``azml-chat batch``.
    A bad row becomes an error row, like a failed call: the output has one row per input row.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        api_key: str | None = None,
        client_settings: Mapping[str, Any] | None = None,
        concurrency: int | Literal["adaptive"] = "adaptive",
        max_requests_per_minute: float | None = None,
        max_tokens_per_minute: float | None = None,
        max_attempts: int = 8,
        model: str | None = None,
        keep_model: bool = False,
        json_columns: bool = False,
    ) -> None:
        settings = {**dict(client_settings or {}), "max_retries": 0}
        if endpoint_url is not None:
            settings["endpoint_url"] = endpoint_url
        if api_key is not None:
            settings["api_key"] = api_key
        if concurrency == "adaptive":
            self.controller: AIMDController = AIMDController(
                max_requests_per_minute=max_requests_per_minute, max_tokens_per_minute=max_tokens_per_minute
            )
        else:
            self.controller = AIMDController(
                initial_limit=concurrency,
                max_limit=concurrency,
                adaptive=False,
                max_requests_per_minute=max_requests_per_minute,
                max_tokens_per_minute=max_tokens_per_minute,
            )
        self.max_attempts = max_attempts
        self.model = model
        self.keep_model = keep_model
        self.json_columns = json_columns
        self._portal_cm: Any = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._client: AsyncChatClient | None = None
        try:
            self._client = self._portal.call(_make_client, settings)
        except BaseException:
            self.close()
            raise

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        """Send the batch's rows; returns the columns ``id``, ``custom_id``, ``response``, ``error``."""
        if self._client is None:
            raise RuntimeError("this ChatBatchProcessor is closed")
        rows = batch_rows(batch)
        results: list[BatchResult | None] = [None] * len(rows)
        requests: list[BatchRequest] = []
        for index, row in enumerate(rows):
            try:
                requests.append(parse_request_line(row, index + 1, model=self.model, keep_model=self.keep_model))
            except InvalidRequestError as error:
                given = row.get("custom_id")
                row_id = given if isinstance(given, str) else f"line-{index + 1}"
                results[index] = BatchResult(row_id, index, None, error, 0, None)
        positions = [index for index, result in enumerate(results) if result is None]
        for result in self._portal.call(self._run, requests):
            results[positions[result.index]] = result
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for done in results:
            assert done is not None
            line = result_line(done)
            for name in OUTPUT_COLUMNS:
                value = line[name]
                columns[name].append(
                    json.dumps(value) if self.json_columns and name in ("response", "error") else value
                )
        return columns

    async def _run(self, requests: list[BatchRequest]) -> list[BatchResult]:
        assert self._client is not None
        async with run_batch(self._client, requests, controller=self.controller, max_attempts=self.max_attempts) as run:
            return [result async for result in run]

    def close(self) -> None:
        """Close the client and stop the worker's event loop thread."""
        portal_cm, self._portal_cm = self._portal_cm, None
        if portal_cm is None:
            return
        try:
            if self._client is not None:
                self._portal.call(self._client.aclose)
        finally:
            self._client = None
            portal_cm.__exit__(None, None, None)

    def __del__(self) -> None:
        if getattr(self, "_portal_cm", None) is not None:
            self.close()


async def _make_client(settings: dict[str, Any]) -> AsyncChatClient:
    from ..client import AsyncChatClient

    return AsyncChatClient(**settings)
