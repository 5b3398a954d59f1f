"""Streamed replies, with no I/O: :class:`StreamState` adds up chat-completion chunks.

Body bytes go in as they arrive (an incremental SSE decoder cuts them into events); chunks
for the user come out, and at the end the assembled :class:`~azml_chat.ChatResponse`.
Choices are kept per index, and a leading ``<think>...</think>`` in the content goes to
``reasoning_content`` whatever the chunking, as :func:`azml_chat._wire.split_think` does
for a whole reply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._json import loads
from ._sse import ServerSentEvent, SSEDecoder
from ._wire import error_of_payload, logprobs_from_wire, usage_from_wire
from .errors import ResponseFormatError, StreamError
from .messages import ChatResponse, Choice, Message, StreamChunk, ToolCall, ToolCallDelta, Usage

__all__ = ["StreamState"]


class _ThinkSplitter:
    """Moves a leading ``<think>...</think>`` of streamed content into reasoning, as
    :func:`~azml_chat._wire.split_think` does for a whole reply, whatever the chunking."""

    __slots__ = ("_pending", "_state")

    _OPEN = "<think>"
    _CLOSE = "</think>"

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> answer_start -> answer
        self._pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        """``(content, reasoning)`` to hand out now for ``text``."""
        if self._state == "answer":
            return text, ""
        self._pending += text
        if self._state == "start":
            stripped = self._pending.lstrip()
            if len(stripped) < len(self._OPEN) and self._OPEN.startswith(stripped):
                return "", ""  # could still become "<think>"
            if not stripped.startswith(self._OPEN):
                self._state, out, self._pending = "answer", self._pending, ""
                return out, ""
            self._state = "thinking"
            self._pending = stripped[len(self._OPEN) :]
        if self._state == "thinking":
            before, found, after = self._pending.partition(self._CLOSE)
            if not found:
                keep = next(
                    (n for n in range(len(self._CLOSE) - 1, 0, -1) if self._pending.endswith(self._CLOSE[:n])), 0
                )
                out = self._pending[: len(self._pending) - keep]
                self._pending = self._pending[len(self._pending) - keep :]
                return "", out
            self._state, self._pending = "answer_start", after
            content, _ = self.feed("")
            return content, before
        answer = self._pending.lstrip()  # answer_start: the answer's leading space is dropped
        if not answer:
            return "", ""
        self._state, self._pending = "answer", ""
        return answer, ""

    def flush(self) -> tuple[str, str]:
        """What is held back when the stream ends: ``(content, reasoning)``."""
        pending, self._pending = self._pending, ""
        if self._state == "thinking":
            return "", pending
        return ("", "") if self._state == "answer_start" else (pending, "")

    @classmethod
    def given_back(cls) -> _ThinkSplitter:
        """A splitter past any ``<think>``: text passes through."""
        splitter = cls()
        splitter._state = "answer"
        return splitter

    @property
    def unclosed(self) -> bool:
        """A ``<think>`` was opened and never closed."""
        return self._state == "thinking"


class _ChoiceState:
    __slots__ = ("calls", "content", "finish_reason", "logprobs", "reasoning", "saw_reasoning", "think")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]
        self.finish_reason: str | None = None
        self.think = _ThinkSplitter()
        self.saw_reasoning = False
        self.logprobs: list[Any] = []


class StreamState:
    """Adds up streamed chat-completion chunks into chunks for the user and a final reply.

    Choices are assembled per ``index``; chunks of choice 0 are handed out with
    ``index`` set on each chunk. A leading ``<think>...</think>`` in the content goes to
    ``reasoning_content``, as it does for ``chat()``.
    """

    def __init__(self, request_id: str | None, max_bytes: int | None = None) -> None:
        self.request_id = request_id
        self.done = False
        self.events = 0  #: events seen (comments and keep-alives excluded)
        self.received = 0  #: body bytes fed before ``[DONE]``
        self.after_done = 0  #: body bytes fed after ``[DONE]``
        self._max_bytes = max_bytes
        self._decoder = SSEDecoder()
        self._choices: dict[int, _ChoiceState] = {}
        self._usage: Usage | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._last: Any = None

    def feed(self, raw: bytes) -> Iterator[StreamChunk]:
        """Body bytes in, as they arrive; the chunks they complete out.

        After ``[DONE]`` the rest is only counted (:attr:`after_done`). More than
        ``max_bytes`` before ``[DONE]`` raises :class:`ResponseFormatError`.
        """
        for event in self.decode(raw):
            chunk = self.handle(event)
            if chunk is not None:
                yield chunk
            if self.done:
                return

    def decode(self, raw: bytes) -> list[ServerSentEvent]:
        """Body bytes in, as they arrive; the whole events they complete out (for :meth:`handle`).

        After ``[DONE]`` the rest is only counted (:attr:`after_done`). More than
        ``max_bytes`` before ``[DONE]`` raises :class:`ResponseFormatError`.
        """
        if self.done:
            self.after_done += len(raw)
            return []
        self.received += len(raw)
        if self._max_bytes is not None and self.received > self._max_bytes:
            raise ResponseFormatError(
                f"the reply is larger than max_response_bytes={self._max_bytes}", request_id=self.request_id
            )
        return list(self._decoder.feed(raw))

    def finish(self, elapsed: float, headers: Mapping[str, str] | None = None) -> ChatResponse:
        """The body ended: the assembled reply, or :class:`StreamError` if ``[DONE]`` never came."""
        if not self.done:
            if self.events == 0 and not self._decoder.pending:
                raise self._fail("the stream ended with no events received: the server sent an empty body")
            cut = " in the middle of an event" if self._decoder.pending else ""
            raise self._fail(f"the stream ended{cut} before [DONE]: the connection was closed early")
        return self.response(elapsed, headers)

    def _fail(self, message: str, body: Any = None) -> StreamError:
        return StreamError(message, request_id=self.request_id, body=body)

    def handle(self, event: ServerSentEvent) -> StreamChunk | None:
        """One event in; a chunk out, or ``None`` for events that carry nothing (other event types,
        empty keep-alives). ``[DONE]`` sets :attr:`done` and gives out any text still held back.
        Raises :class:`StreamError`."""
        data = event.data
        self.events += 1
        if event.event == "error":
            try:
                payload = loads(data)
            except ValueError:
                payload = data.decode("utf-8", "replace")
            found = error_of_payload(payload)
            raise self._fail(f"the stream reported an error: {found[0] if found else payload}", payload)
        if data == b"[DONE]":
            self.done = True
            return self._flush()
        if event.event != "message" or not data or data.isspace():
            return None
        try:
            payload = loads(data)
        except ValueError:
            raise self._fail(f"a stream event is not JSON: {data[:200]!r}") from None
        if not isinstance(payload, dict):
            raise self._fail(f"a stream event is not a JSON object: {data[:200]!r}")
        if payload.get("error"):  # some servers send "error": null in every chunk
            found = error_of_payload(payload)
            raise self._fail(f"the stream reported an error: {found[0] if found else payload}", payload)
        self._last = payload
        self._id = self._id or payload.get("id")
        self._model = self._model or payload.get("model")
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_from_wire(usage)
        choices = payload.get("choices")
        if not choices:
            return StreamChunk(usage=self._usage, raw=payload)
        if not isinstance(choices, list) or not all(isinstance(choice, dict) for choice in choices):
            raise self._fail(f"a stream chunk has malformed choices: {data[:200]!r}", payload)
        chunks = [self._add_choice(choice, payload, data, usage) for choice in choices]
        return next((chunk for chunk in chunks if chunk.index == 0), chunks[0])

    def _flush(self) -> StreamChunk | None:
        """At ``[DONE]``: text held back while it might have opened ``<think>``, as a last chunk."""
        first: StreamChunk | None = None
        for index, state in self._choices.items():
            if state.think.unclosed:  # never closed: not reasoning after all; the whole text is the answer
                _, pending = state.think.flush()
                content, reasoning = "<think>" + "".join(state.reasoning) + pending + "".join(state.content), ""
                state.content, state.reasoning, state.think = [], [], _ThinkSplitter.given_back()
            else:
                content, reasoning = state.think.flush()
            if not (content or reasoning):
                continue
            if content:
                state.content.append(content)
            if reasoning:
                state.reasoning.append(reasoning)
            if index == 0:
                first = StreamChunk(content, reasoning)
        return first

    def _add_choice(self, choice: dict[str, Any], payload: Any, data: bytes, usage: Any) -> StreamChunk:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise self._fail(f"a stream chunk has malformed choices: {data[:200]!r}", payload)
        index = choice.get("index")
        index = index if isinstance(index, int) else 0
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState()
        content = delta.get("content") or ""
        reasoning = delta.get("reasoning_content") or ""
        if reasoning:
            state.saw_reasoning = True
        if content and not state.saw_reasoning:
            content, thought = state.think.feed(content)
            reasoning += thought
        finish = choice.get("finish_reason")
        if finish and not state.saw_reasoning:  # the last chunk of a choice: nothing is held back after it
            tail, thought = state.think.flush()
            content += tail
            reasoning += thought
        if content:
            state.content.append(content)
        if reasoning:
            state.reasoning.append(reasoning)
        if finish:
            state.finish_reason = finish
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            state.logprobs.extend(logprobs["content"])
        deltas: tuple[ToolCallDelta, ...] = ()
        if delta.get("tool_calls"):
            items = delta["tool_calls"]
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise self._fail(f"a stream chunk has malformed tool calls: {data[:200]!r}", payload)
            deltas = tuple(self._add_tool_call(state, item) for item in items)
        return StreamChunk(content, reasoning, deltas, finish, self._usage if usage else None, payload, index)

    @staticmethod
    def _add_tool_call(state: _ChoiceState, item: Any) -> ToolCallDelta:
        calls = state.calls
        function = item.get("function") if isinstance(item.get("function"), dict) else {}
        index = item.get("index")
        if not isinstance(index, int):  # no index: a new id starts a call, else it continues the last one
            index = len(calls) if item.get("id") or not calls else max(calls)
        slot = calls.setdefault(index, [None, None, []])
        slot[0] = slot[0] or item.get("id")
        slot[1] = slot[1] or function.get("name")
        arguments = function.get("arguments") or ""
        slot[2].append(arguments)
        return ToolCallDelta(index, item.get("id"), function.get("name"), arguments)

    def _choice(self, index: int, state: _ChoiceState) -> Choice:
        tail, thought = state.think.flush()  # held back when the stream ended without [DONE]
        if tail:
            state.content.append(tail)
        if thought:
            state.reasoning.append(thought)
        calls = tuple(
            ToolCall(slot[0] or f"call_{number}", slot[1] or "", "".join(slot[2]))
            for number, slot in sorted(state.calls.items())
        )
        reasoning_text = "".join(state.reasoning)
        message = Message(
            "assistant",
            "".join(state.content) if state.content or not calls else None,
            tool_calls=calls,
            reasoning_content=(reasoning_text if state.saw_reasoning else reasoning_text.strip()) or None,
        )
        logprobs = logprobs_from_wire({"content": state.logprobs}) if state.logprobs else None
        return Choice(index, message, state.finish_reason, logprobs)

    def response(self, elapsed: float, headers: Mapping[str, str] | None = None) -> ChatResponse:
        """The whole reply, assembled from every chunk seen."""
        choices = tuple(self._choice(index, state) for index, state in sorted(self._choices.items()))
        if not choices:
            choices = (Choice(0, Message("assistant", "")),)
        first = choices[0]
        return ChatResponse(
            first.message,
            first.finish_reason,
            self._usage,
            self._model,
            self._id,
            self.request_id,
            elapsed,
            self._last,
            choices,
            headers,
        )
