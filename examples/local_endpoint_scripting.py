"""Scripting the embedded endpoint: one-line faults, scripted replies, a capacity limit.

The same scripting serves ``azml-chat serve --fault ... --replies ... --capacity ...``.
Run it with ``python examples/local_endpoint_scripting.py``.
"""

from __future__ import annotations

import asyncio

from azml_chat import AsyncChatClient, ChatClient, RateLimitError, RetryPolicy
from azml_chat.testing import Fault, LocalEndpoint, ScriptedReply, replay_responder


def faults_and_replies() -> None:
    script = replay_responder(
        [
            ScriptedReply(content="first scripted reply"),
            ScriptedReply(content="second scripted reply", reasoning_content="I thought about it"),
        ]
    )
    with LocalEndpoint(responder=script) as endpoint:
        endpoint.add_fault(Fault.parse("429,retry-after-ms=10"))
        endpoint.add_fault(Fault.parse("424,model-status=503,reason=warming up"))
        quick = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
        with ChatClient(endpoint.url, api_key="test-key", retry_policy=quick) as client:
            reply = client.chat("hi")
            print(f"after a 429 and a 424: {reply.content!r} ({len(endpoint.requests)} attempts)")
            reply = client.chat("again")
            print(f"next: {reply.content!r}, reasoning {reply.reasoning_content!r}")


async def capacity() -> None:
    # 4 requests at a time, each taking half a second: 6 sent at once means 2 refused
    async with (
        LocalEndpoint(capacity=4, service_time=0.5) as endpoint,
        AsyncChatClient(endpoint.url, api_key="test-key", max_retries=0) as client,
    ):
        results = await asyncio.gather(*(client.chat(f"question {i}") for i in range(6)), return_exceptions=True)
        refused = sum(isinstance(result, RateLimitError) for result in results)
        print(f"6 at once against capacity 4: {6 - refused} answered, {refused} refused with 429")
        stats = endpoint.capacity_stats
        print(f"endpoint saw: {stats.admitted} admitted, {stats.rejected} refused, peak {stats.peak_in_flight}")


if __name__ == "__main__":
    faults_and_replies()
    asyncio.run(capacity())
