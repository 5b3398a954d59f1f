"""Crash-safe, resumable batch jobs on JSONL files in the OpenAI Batch API format.

Input lines are OpenAI batch requests::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [...], "max_tokens": 100}}

or plain ``{"messages": [...], ...parameters}`` lines (``custom_id`` optional: the line
number, ``line-7``, is the id then). Output lines are OpenAI batch results::

    {"id": "batch_req_...", "custom_id": "r1",
     "response": {"status_code": 200, "request_id": "...", "body": {chat.completion}},
     "error": null}

so a job moves between OpenAI / Azure OpenAI batch and an Azure ML endpoint unchanged.
A failed row has ``"error": {"type", "code", "message", "status_code", "request_id"}``
(and ``response`` with the error body when the endpoint answered).

Why it survives ``kill -9``: each result is one ``os.write`` of a whole line to a file
opened with ``O_APPEND``, so the line is in the operating system's hands the moment it is
written (no buffer of ours to lose); a kill in the middle of a long line leaves a line
without its newline, which the next run cuts off and redoes. On start, the ids already
in the output (and errors file) are skipped, so no row is ever written twice. Those ids
are kept as 128-bit digests in two sorted arrays (16 bytes a row), and the input is
streamed twice (a checking pass, then the run), so memory stays small for any size.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import uuid
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs

from .._wire import tool_call_to_wire, usage_to_wire
from ..config import ChatParams
from ..errors import APIStatusError, InvalidRequestError
from .runner import BatchRequest, BatchResult, BatchStatus, BatchSummary, run_batch

if TYPE_CHECKING:
    from ..client import AsyncChatClient
    from ..messages import ChatResponse
    from .controller import AIMDController

__all__ = ["JobPlan", "JsonlJob", "completion_body", "parse_request_line", "result_line", "run_job"]

CHAT_URLS = ("/v1/chat/completions", "/chat/completions")
_MAX_PROBLEMS = 5
#: Keys of a request body that are ``chat()`` parameters; the call's own controls are not body keys.
_BODY_PARAMS = frozenset(ChatParams.__annotations__) - {
    "extra_body",
    "extra_headers",
    "extra_query",
    "timeout",
    "max_retries",
}
_LOW = (1 << 64) - 1


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest(), "big")


class _DigestSet:
    """An immutable set of 128-bit digests in 16 bytes each (two sorted arrays of halves)."""

    def __init__(self, digests: list[int]) -> None:
        digests.sort()  # in place: the caller's list is scratch, and a copy would double the peak
        self._high = array("Q")
        self._low = array("Q")
        previous = None
        for value in digests:
            if value != previous:
                self._high.append(value >> 64)
                self._low.append(value & _LOW)
                previous = value

    def __len__(self) -> int:
        return len(self._high)

    def __contains__(self, value: int) -> bool:
        high, low = value >> 64, value & _LOW
        position = bisect.bisect_left(self._high, high)
        while position < len(self._high) and self._high[position] == high:
            if self._low[position] == low:
                return True
            position += 1
        return False


def parse_request_line(
    obj: Any, line_number: int, *, model: str | None = None, keep_model: bool = False
) -> BatchRequest:
    """One decoded input line as a :class:`BatchRequest`; :class:`InvalidRequestError` says what is wrong.

    The body's ``model`` names an OpenAI model, not an Azure ML deployment, so it is dropped
    unless ``keep_model``; ``model`` (when given) is sent with every row instead.
    """
    where = f"line {line_number}"
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    row_id = obj.get("custom_id", f"line-{line_number}")
    if not isinstance(row_id, str) or not row_id:
        raise InvalidRequestError(f"{where}: 'custom_id' must be a non-empty string, not {row_id!r:.60}")
    if "body" in obj or "url" in obj or "method" in obj:
        method, url, body = obj.get("method", "POST"), obj.get("url"), obj.get("body")
        if method != "POST":
            raise InvalidRequestError(f"{where}: 'method' must be \"POST\", not {method!r:.40}")
        if not isinstance(url, str) or not url.split("?")[0].endswith(CHAT_URLS):
            raise InvalidRequestError(f"{where}: 'url' must be \"/v1/chat/completions\", not {url!r:.60}")
        if not isinstance(body, dict):
            raise InvalidRequestError(f"{where}: 'body' must be a JSON object with 'messages'")
        params = dict(body)
    else:
        params = {key: value for key, value in obj.items() if key != "custom_id"}
    messages = params.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(f"{where}: 'messages' must be a non-empty list of messages")
    if params.get("stream"):
        raise InvalidRequestError(f'{where}: batch rows cannot stream; remove "stream": true')
    params.pop("stream", None)
    if not keep_model:
        params.pop("model", None)
    if model is not None:
        params["model"] = model
    return BatchRequest(messages, _split_extra_body(params), row_id)


def _split_extra_body(body: dict[str, Any]) -> dict[str, Any]:
    """Body keys ``chat()`` does not name (vendor knobs such as ``top_k``) travel in ``extra_body``."""
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in _BODY_PARAMS:
            params[key] = value
        elif key == "extra_body" and isinstance(value, dict):
            extra.update(value)
        else:
            extra[key] = value
    if extra:
        params["extra_body"] = extra
    return params


def completion_body(response: ChatResponse) -> dict[str, Any]:
    """The reply as an OpenAI ``chat.completion`` object: as received when the endpoint sent one,
    else built from the parsed reply (dedicated ``/score`` endpoints)."""
    raw = response.raw
    if isinstance(raw, dict) and isinstance(raw.get("choices"), list):
        return raw
    message = response.message
    wire: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.tool_calls:
        wire["tool_calls"] = [tool_call_to_wire(call) for call in message.tool_calls]
    if message.reasoning_content is not None:
        wire["reasoning_content"] = message.reasoning_content
    return {
        "id": response.id or response.request_id,
        "object": "chat.completion",
        "model": response.model,
        "choices": [{"index": 0, "message": wire, "finish_reason": response.finish_reason}],
        "usage": usage_to_wire(response.usage),
    }


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else repr(value)
    return value


def result_line(result: BatchResult) -> dict[str, Any]:
    """One result as an OpenAI batch output line (a dict; the file holds it as one JSON line)."""
    line: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": result.id}
    if result.response is not None:
        response = result.response
        line["response"] = {"status_code": 200, "request_id": response.request_id, "body": completion_body(response)}
        line["error"] = None
        return line
    error = result.error
    assert error is not None
    status = error.status_code if isinstance(error, APIStatusError) else None
    line["response"] = (
        {"status_code": status, "request_id": error.request_id, "body": _json_safe(error.body)}
        if isinstance(error, APIStatusError)
        else None
    )
    line["error"] = {
        "type": type(error).__name__,
        "code": getattr(error, "code", None) or type(error).__name__,
        "message": str(error),
        "status_code": status,
        "request_id": error.request_id,
        "attempts": result.attempts,
    }
    return line


@attrs.frozen
class JobPlan:
    """What a job found on start: rows in the input, rows already done, rows to do."""

    total: int  #: request lines in the input
    already_done: int  #: of those, rows already in the output (or errors file)
    repaired: tuple[str, ...]  #: files whose partial last line (from a kill) was cut off

    @property
    def to_do(self) -> int:
        """Rows this run will send."""
        return self.total - self.already_done


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a file with their 1-based numbers, streamed."""
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                yield number, line


def _repair_and_collect(path: Path, digests: list[int]) -> bool:
    """Add the digests of the ``custom_id`` of every complete line; cut off a partial last line
    (and say so)."""
    if not path.exists():
        return False
    end_of_complete = 0
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                break  # written only in part when the last run was killed: redo that row
            end_of_complete += len(line)
            if not line.strip():
                continue
            try:
                custom_id = json.loads(line)["custom_id"]
            except (ValueError, KeyError, TypeError):
                raise InvalidRequestError(
                    f"{path}: line {number} is not a batch output line with a custom_id; "
                    "point --output at a file this command wrote, or remove the line"
                ) from None
            digests.append(_digest(str(custom_id)))
    repaired = path.stat().st_size != end_of_complete
    if repaired:
        with path.open("r+b") as file:
            file.truncate(end_of_complete)
    return repaired


class JsonlJob:
    """A batch job on files: ``scan()`` checks the input and finds what is done, ``pending()``
    streams the rows still to do, ``write(result)`` appends one result line.

    Failed rows go to ``errors_path`` when given, else to the output with the others.
    ``model`` / ``keep_model``: see :func:`parse_request_line`. Use as a context manager
    (or call :meth:`close`) to close the files.
    """

    def __init__(
        self,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        *,
        errors_path: str | os.PathLike[str] | None = None,
        model: str | None = None,
        keep_model: bool = False,
    ) -> None:
        self.input_path: Path = Path(input_path)
        self.output_path: Path = Path(output_path)
        self.errors_path = None if errors_path is None else Path(errors_path)
        if self.errors_path is not None and self.errors_path.resolve() == self.output_path.resolve():
            self.errors_path = None
        if self.input_path.resolve() in {self.output_path.resolve(), self.errors_path and self.errors_path.resolve()}:
            raise InvalidRequestError("the output must be another file than the input")
        self.model = model
        self.keep_model = keep_model
        self._done: _DigestSet | None = None
        self._files: dict[Path, int] = {}
        self.plan: JobPlan | None = None

    def __enter__(self) -> JsonlJob:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the output files."""
        files, self._files = self._files, {}
        for descriptor in files.values():
            os.close(descriptor)

    def _parse(self, number: int, line: bytes) -> BatchRequest:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InvalidRequestError(f"line {number}: not valid JSON ({exc})") from None
        return parse_request_line(obj, number, model=self.model, keep_model=self.keep_model)

    def scan(self) -> JobPlan:
        """Check every input line, cut off a partial last output line, and count what is done.

        Raises :class:`InvalidRequestError` (nothing sent) listing the first bad lines, or
        naming a ``custom_id`` used twice.
        """
        if not self.input_path.is_file():
            raise InvalidRequestError(f"input file not found: {self.input_path}")
        repaired: list[str] = []
        done: list[int] = []  # one list, dropped once sorted into the arrays: it is the peak of a resume
        for path in (self.output_path, self.errors_path):
            if path is not None and _repair_and_collect(path, done):
                repaired.append(str(path))
        self._done = _DigestSet(done)
        del done
        problems: list[str] = []
        bad = 0
        seen = array("Q")  # high halves only (8 bytes a row); equal halves are checked exactly below
        total = already = 0
        for number, line in _lines(self.input_path):
            try:
                request = self._parse(number, line)
            except InvalidRequestError as exc:
                bad += 1
                if len(problems) < _MAX_PROBLEMS:
                    problems.append(exc.message)
                continue
            assert request.id is not None
            digest = _digest(request.id)
            seen.append(digest >> 64)
            total += 1
            already += digest in self._done
        if bad:
            more = f" (and {bad - len(problems)} more)" if bad > len(problems) else ""
            raise InvalidRequestError(
                f"{self.input_path}: {bad} bad line(s), nothing was sent: " + "; ".join(problems) + more
            )
        ordered = sorted(seen)
        del seen
        candidates = {a for a, b in itertools.pairwise(ordered) if a == b}
        del ordered
        if candidates:
            self._check_duplicates(candidates)
        self.plan = JobPlan(total, already, tuple(repaired))
        return self.plan

    def _check_duplicates(self, candidates: set[int]) -> None:
        """Raise for ids used twice, among the rows whose digests' high halves are equal."""
        where: dict[str, list[int]] = {}
        for number, line in _lines(self.input_path):
            request = self._parse(number, line)
            assert request.id is not None
            if _digest(request.id) >> 64 in candidates:
                where.setdefault(request.id, []).append(number)
        twice = [(row_id, lines) for row_id, lines in where.items() if len(lines) > 1]
        if twice:
            shown = "; ".join(f"{row_id!r} on lines {', '.join(map(str, lines))}" for row_id, lines in twice[:5])
            raise InvalidRequestError(f"{self.input_path}: each custom_id must be unique, nothing was sent: {shown}")

    def pending(self) -> Iterator[BatchRequest]:
        """The input rows not yet in the output, streamed in file order (call :meth:`scan` first)."""
        if self._done is None:
            raise RuntimeError("call scan() before pending()")
        done = self._done
        for number, line in _lines(self.input_path):
            request = self._parse(number, line)
            assert request.id is not None
            if _digest(request.id) not in done:
                yield request

    def write(self, result: BatchResult) -> None:
        """Append the result's line and hand it to the operating system at once (one ``write``)."""
        path = self.errors_path if result.error is not None and self.errors_path is not None else self.output_path
        data = json.dumps(result_line(result), ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        descriptor = self._files.get(path)
        if descriptor is None:
            descriptor = self._files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]


async def run_job(
    client: AsyncChatClient,
    job: JsonlJob,
    *,
    concurrency: int | Literal["adaptive"] = "adaptive",
    max_requests_per_minute: float | None = None,
    max_tokens_per_minute: float | None = None,
    controller: AIMDController | None = None,
    max_attempts: int = 8,
    on_progress: Callable[[BatchStatus], None] | None = None,
    progress_interval: float = 0.25,
) -> BatchSummary:
    """Run a scanned :class:`JsonlJob` to the end: every pending row gets exactly one line.

    ``on_progress`` is called every ``progress_interval`` seconds and once at the end with a
    :class:`BatchStatus` (counts of this run). The other arguments are those of
    :func:`~azml_chat.batch.run_batch`.
    """
    if job.plan is None:
        job.scan()
    async with (
        run_batch(
            client,
            job.pending(),
            concurrency=concurrency,
            max_requests_per_minute=max_requests_per_minute,
            max_tokens_per_minute=max_tokens_per_minute,
            controller=controller,
            max_attempts=max_attempts,
        ) as run,
        anyio.create_task_group() as ticker,
    ):
        if on_progress is not None:

            async def tick() -> None:
                while True:
                    on_progress(run.status())
                    await anyio.sleep(progress_interval)

            ticker.start_soon(tick)
        async for result in run:
            job.write(result)
        ticker.cancel_scope.cancel()
    if on_progress is not None:
        on_progress(run.status())
    return run.summary
