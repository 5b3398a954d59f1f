"""Batch at scale: many chat requests against one endpoint, with adaptive concurrency.

- :func:`run_batch` / :func:`run_batch_sync`: an async (or sync) stream of
  :class:`BatchResult` as rows complete, and a :class:`BatchSummary` at the end;
- :class:`AIMDController`: the sans-IO controller deciding how many calls fly at once;
- :class:`JsonlJob` / :func:`run_job`: crash-safe, resumable jobs on OpenAI Batch API JSONL
  files (the ``azml-chat batch`` command);
- :mod:`azml_chat.batch.ray`: the same on Ray Data (extra ``azml-chat[ray]``).

Nothing here is imported by ``import azml_chat``.
"""

from .controller import AIMDController, Ticket
from .runner import (
    BatchRequest,
    BatchResult,
    BatchRun,
    BatchStatus,
    BatchSummary,
    RequestInput,
    SyncBatchRun,
    classify,
    run_batch,
    run_batch_sync,
)

__all__ = [
    "AIMDController",
    "BatchRequest",
    "BatchResult",
    "BatchRun",
    "BatchStatus",
    "BatchSummary",
    "RequestInput",
    "SyncBatchRun",
    "Ticket",
    "classify",
    "run_batch",
    "run_batch_sync",
]
