"""Batch jobs: score many rows with adaptive concurrency, then a resumable JSONL job.

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set it talks to Azure; otherwise it
starts the embedded local endpoint (which echoes) limited to 4 requests in flight, 20 ms
each, so you can watch the limit find the endpoint's capacity.

    python examples/batch_jobs.py
"""

from __future__ import annotations

import asyncio
import inspect
import json
import tempfile
from pathlib import Path
from typing import Any

from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient
from azml_chat.batch import BatchRequest, run_batch, run_batch_sync
from azml_chat.batch.jobs import JsonlJob, run_job
from azml_chat.testing import LocalEndpoint

#: The local endpoint's capacity model (4 in flight, 429 beyond), where this version has it.
LIMITS = {"capacity": 4, "service_time": 0.02} if "capacity" in inspect.signature(LocalEndpoint).parameters else {}
QUESTIONS = [f"Give one word that rhymes with number {i}." for i in range(60)]


async def score(settings: dict[str, Any]) -> None:
    # The batch owns retries (its controller must see every 429), so the client makes none.
    async with AsyncChatClient(**settings, max_retries=0) as client:
        rows = (BatchRequest(question, {"max_tokens": 16}, id=f"q{i}") for i, question in enumerate(QUESTIONS))
        async with run_batch(client, rows) as run:  # adaptive: starts at 2 in flight
            async for result in run:  # in completion order, each tagged with its id
                if not result.ok:
                    print(f"{result.id} failed after {result.attempts} calls: {result.error}")
    print(run.summary)


def score_sync(settings: dict[str, Any]) -> None:
    # From synchronous code: a factory, so the client lives on the batch's own event loop.
    with run_batch_sync(lambda: AsyncChatClient(**settings, max_retries=0), ["one", "two"], concurrency=2) as run:
        print(sorted(result.response.content for result in run if result.response is not None))


async def resumable_job(settings: dict[str, Any], folder: Path) -> None:
    source = folder / "requests.jsonl"  # the OpenAI Batch API format
    with source.open("w") as file:
        for i, question in enumerate(QUESTIONS):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}], "max_tokens": 16}
            file.write(
                json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            file.write("\n")
    output = folder / "results.jsonl"
    async with AsyncChatClient(**settings, max_retries=0) as client:
        with JsonlJob(source, output) as job:  # rerun after a crash: rows already written are skipped
            plan = job.scan()
            print(f"{plan.total} rows, {plan.already_done} already done")
            summary = await run_job(client, job)
    first = json.loads(output.read_text().splitlines()[0])
    status = first["response"]["status_code"]
    print(f"{summary.succeeded} results; first line: custom_id={first['custom_id']}, status={status}")
    print(f"the same from a shell: azml-chat batch {source} -o {output}")


if __name__ == "__main__":
    with endpoint_settings(**LIMITS) as settings, tempfile.TemporaryDirectory() as folder:
        asyncio.run(score(settings))
        score_sync(settings)
        asyncio.run(resumable_job(settings, Path(folder)))
