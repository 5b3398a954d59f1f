"""``azml-chat chat``: ask once (prompt from the arguments or stdin) or talk (``-i``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from .._wire import usage_to_wire
from ..client import ChatClient
from ..config import ChatParams
from ..errors import AzureMLChatError
from ..messages import ChatResponse
from .progress import StderrReport
from .settings import UsageError, add_endpoint_arguments, chat_params, open_client, parse_option

__all__ = ["Conversation", "add_arguments", "read_prompt", "run"]

EPILOG = """\
examples:
  azml-chat chat "What is Azure ML?"
  cat notes.md | azml-chat chat --system "Summarize in three bullets"
  azml-chat chat "Translate to French:" - < letter.txt
  azml-chat chat -i --system "Be terse" --save chat.jsonl
  azml-chat chat --model Llama-3.3-70B-Instruct -o temperature=0.2 -o top_k=40 "Hi"
  azml-chat chat -v --max-retries 5 --timeout 120 "a long question"
  azml-chat chat --local "try it without any Azure settings"

Without AZUREML_* settings (or with --local) the embedded local endpoint answers (it echoes);
any partial setting (a key but no URL, a misspelled AZUREML_ variable) is an error instead.
-o key=value sets a chat() parameter (temperature, top_p, max_tokens, stop, seed, ...) or,
for any other key, a model-specific body key; values are JSON (numbers, true/false, lists).

interactive commands: /system TEXT, /reset, /save FILE, /exit (or Ctrl-D)

exit status: 0 ok, 1 the request failed, 2 usage or settings error, 130 interrupted (Ctrl-C)
"""

COMMANDS_HELP = (
    "/system TEXT sets the system message (/system alone shows it), /reset forgets the conversation, "
    "/save FILE writes it as JSONL, /exit or Ctrl-D leaves"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``chat`` command's arguments to ``parser``."""
    parser.description = "Send a prompt and print the reply, or hold a conversation (-i)."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("prompt", nargs="*", help="the user message; '-' (or no prompt with piped input) reads stdin")
    parser.add_argument("-s", "--system", help="a system message sent first")
    parser.add_argument("-i", "--interactive", action="store_true", help="a multi-turn conversation with history")
    parser.add_argument("--save", metavar="FILE", help="-i: append every message to FILE as JSON lines")
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the reply as it arrives (default: on with -i, off otherwise)",
    )
    parser.add_argument("--json", action="store_true", help="print the whole response as JSON")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        type=parse_option,
        metavar="KEY=VALUE",
        help="a call parameter or model-specific body key (repeatable)",
    )
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("-v", "--verbose", action="store_true", help="request ids, timings, retries, usage on stderr")
    add_endpoint_arguments(parser)


def read_prompt(words: Sequence[str], stdin: TextIO, *, interactive: bool) -> str | None:
    """The prompt: the words, with stdin's text added where ``-`` is given, or stdin alone
    when no words are given and it is not a terminal. ``None``: none (only with ``-i``)."""
    read_stdin = "-" in words or (not words and not interactive and not stdin.isatty())
    text = " ".join(word for word in words if word != "-")
    if read_stdin:
        if interactive:
            raise UsageError("-i reads the conversation from the terminal: a prompt cannot come from stdin too")
        piped = stdin.read().rstrip()
        if not piped:
            raise UsageError("stdin was empty: nothing to send")
        text = f"{text}\n\n{piped}" if text else piped
    if text or interactive:
        return text or None
    raise UsageError("no prompt: give one as an argument, pipe it on stdin, or use -i for a conversation")


def response_json(response: ChatResponse) -> str:
    """The response as the ``--json`` output shows it."""
    return json.dumps(
        {
            "content": response.content,
            "reasoning_content": response.reasoning_content,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
            "finish_reason": response.finish_reason,
            "model": response.model,
            "id": response.id,
            "request_id": response.request_id,
            "elapsed": response.elapsed,
            "usage": usage_to_wire(response.usage),
        },
        ensure_ascii=False,
        indent=2,
    )


def ask(
    client: ChatClient, messages: list[dict[str, str]], params: ChatParams, *, stream: bool, echo: bool, verbose: bool
) -> ChatResponse:
    """One call; with ``echo`` the reply is printed (as it arrives when streaming), then a newline."""
    if stream:
        thinking = False  # reasoning printed on stderr that still needs its line ended
        with client.stream(messages, **params) as chunks:
            for chunk in chunks:
                if verbose and chunk.reasoning_content:
                    print(chunk.reasoning_content, end="", file=sys.stderr, flush=True)
                    thinking = True
                if thinking and chunk.content:
                    print(file=sys.stderr)
                    thinking = False
                if echo and chunk.content:
                    print(chunk.content, end="", flush=True)
            response = chunks.get_final_response()
        if thinking:
            print(file=sys.stderr)
    else:
        response = client.chat(messages, **params)
        if verbose and response.reasoning_content:
            print(response.reasoning_content, file=sys.stderr)
        if echo:
            print(response.content, end="")
    if echo:
        print()
        for call in response.tool_calls:
            print(f"[tool call {call.id}] {call.name}({call.arguments})")
    return response


class Conversation:
    """An interactive session: every turn is sent with the history before it."""

    def __init__(
        self,
        client: ChatClient,
        params: ChatParams,
        *,
        stream: bool,
        system: str | None,
        save_to: str | None,
        verbose: bool = False,
    ) -> None:
        self.client = client
        self.params = params
        self.stream = stream
        self.verbose = verbose
        self.system = system
        self.turns: list[dict[str, str]] = []
        try:
            self.transcript: TextIO | None = open(save_to, "a", encoding="utf-8") if save_to else None  # noqa: SIM115 - closed in run()
        except OSError as exc:
            raise UsageError(f"cannot write the transcript to {save_to}: {exc.strerror or exc}") from None
        if system:
            self._record({"role": "system", "content": system})

    def messages(self) -> list[dict[str, str]]:
        """What the next call sends before the new user turn."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns

    def _record(self, message: dict[str, str]) -> None:
        if self.transcript is not None:
            self.transcript.write(json.dumps(message, ensure_ascii=False) + "\n")
            self.transcript.flush()

    def run(self, first: str | None) -> int:
        """Talk until ``/exit`` or end of input (exit status 0)."""
        if sys.stdin.isatty():
            with contextlib.suppress(ImportError):  # Windows has no readline
                import readline  # noqa: F401 - line editing and history for input()
        print(f"azml-chat: interactive; {COMMANDS_HELP}", file=sys.stderr)
        try:
            line = first
            while True:
                if line is None:
                    try:
                        line = input("> ")
                    except EOFError:
                        print()
                        return 0
                text, line = line.strip(), None
                if text.startswith("/"):
                    if not self.command(text):
                        return 0
                elif text:
                    self.exchange(text)
        finally:
            if self.transcript is not None:
                self.transcript.close()

    def command(self, text: str) -> bool:
        """Run a ``/command``; False means leave."""
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.turns.clear()
            print("azml-chat: conversation forgotten (the system message stays)", file=sys.stderr)
        elif name == "/system" and argument:
            self.system = argument
            self._record({"role": "system", "content": argument})
            print("azml-chat: system message set", file=sys.stderr)
        elif name == "/system":
            print(f"azml-chat: system message: {self.system or '(none)'}", file=sys.stderr)
        elif name == "/save" and argument:
            try:
                with open(argument, "w", encoding="utf-8") as file:
                    file.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in self.messages())
            except OSError as exc:
                print(f"azml-chat: cannot write {argument}: {exc.strerror or exc}", file=sys.stderr)
            else:
                print(f"azml-chat: {len(self.messages())} messages written to {argument}", file=sys.stderr)
        else:
            print(f"azml-chat: unknown command {text!r}; {COMMANDS_HELP}", file=sys.stderr)
        return True

    def exchange(self, text: str) -> None:
        """Send one user turn with the history; a failure is reported and the turn dropped."""
        turn = {"role": "user", "content": text}
        try:
            reply = ask(
                self.client,
                [*self.messages(), turn],
                self.params,
                stream=self.stream,
                echo=True,
                verbose=self.verbose,
            )
        except AzureMLChatError as exc:
            print(f"azml-chat: {type(exc).__name__}: {exc} (the turn was not kept; try again)", file=sys.stderr)
            return
        answer = {"role": "assistant", "content": reply.content}
        self.turns += [turn, answer]
        self._record(turn)
        self._record(answer)


def run(args: argparse.Namespace) -> int:
    """Run ``azml-chat chat``; returns the exit status."""
    if args.interactive and args.json:
        raise UsageError("--json prints one response: it does not go with -i")
    if args.save and not args.interactive:
        raise UsageError("--save records a conversation: use it with -i")
    prompt = read_prompt(args.prompt, sys.stdin, interactive=args.interactive)
    params = chat_params(args.option, temperature=args.temperature, max_tokens=args.max_tokens)
    stream = args.interactive if args.stream is None else args.stream
    with open_client(args, [StderrReport(verbose=args.verbose)]) as client:
        if args.interactive:
            conversation = Conversation(
                client, params, stream=stream, system=args.system, save_to=args.save, verbose=args.verbose
            )
            return conversation.run(prompt)
        messages = [{"role": "system", "content": args.system}] if args.system else []
        messages.append({"role": "user", "content": prompt or ""})
        response = ask(client, messages, params, stream=stream, echo=not args.json, verbose=args.verbose)
        if args.json:
            print(response_json(response))
    return 0
