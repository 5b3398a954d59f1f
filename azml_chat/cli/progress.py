"""What the command line says on stderr while a call runs: a notice when a retry waits, and
with ``-v`` the request, each attempt (status, request id, time) and the token usage.

It is a :class:`~azml_chat.hooks.ChatHooks`, so it sees what the client does without
adding anything to the client itself.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ..errors import APIStatusError, AzureMLChatError
from ..hooks import AttemptInfo, CallInfo, CallResult, ChatHooks

__all__ = ["StderrReport", "describe_error"]


def describe_error(error: AzureMLChatError | None) -> str:
    """A few words on why an attempt failed: ``HTTP 429 RateLimitError``, ``APITimeoutError``."""
    if error is None:
        return "no reply"
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code} {type(error).__name__}"
    return type(error).__name__


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class StderrReport(ChatHooks):
    """Writes retry notices (always) and, when ``verbose``, every call and attempt to ``stream``."""

    def __init__(self, *, verbose: bool = False, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream

    def _say(self, text: str) -> None:
        print(f"azml-chat: {text}", file=self.stream or sys.stderr, flush=True)

    def on_call_start(self, call: CallInfo) -> None:
        """With ``-v``: where the call goes."""
        if self.verbose:
            details = [f"route {call.route}"]
            details += [f"model {call.model}"] if call.model else []
            details += [f"deployment {call.deployment_name}"] if call.deployment_name else []
            self._say(f"{call.operation} {call.url} ({', '.join(details)}; client request id {call.client_request_id})")

    def on_attempt(self, attempt: AttemptInfo) -> None:
        """A retry notice when a wait follows; with ``-v`` every attempt."""
        request_id = f", request id {attempt.request_id}" if attempt.request_id else ""
        if attempt.retry_in is not None:
            self._say(
                f"attempt {attempt.attempt + 1} failed ({describe_error(attempt.error)}{request_id}); "
                f"retrying in {_seconds(attempt.retry_in)}"
            )
        elif self.verbose:
            outcome = f"HTTP {attempt.status_code}" if attempt.status_code is not None else "no reply"
            self._say(f"attempt {attempt.attempt + 1}: {outcome} in {attempt.elapsed:.3f} s{request_id}")

    def on_call_end(self, result: CallResult) -> None:
        """With ``-v``: how long the call took and the tokens it used."""
        if not self.verbose:
            return
        parts = [f"{result.elapsed:.3f} s", f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"]
        if result.time_to_first_chunk is not None:
            parts.append(f"first chunk after {result.time_to_first_chunk:.3f} s")
        response = result.response
        if response is not None and response.usage is not None:
            usage = response.usage
            parts.append(
                f"tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens}"
            )
        if response is not None and response.model:
            parts.append(f"model {response.model}")
        self._say(f"{'done' if result.error is None else 'failed'}: {', '.join(parts)}")
