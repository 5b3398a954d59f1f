"""Structured output: ask for JSON shaped like a Python type and get an instance of it back.

Any common schema style works: attrs classes, dataclasses, TypedDicts, pydantic models (when
pydantic is installed) and plain annotations such as ``list[str]``. Where the type allows,
the request uses OpenAI's strict mode (every field required, optional ones nullable).

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set (a serverless endpoint of a model
that supports response_format) it talks to Azure; otherwise a local endpoint plays a model
that answers with JSON.

    python examples/structured_output.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
from typing import Any, NotRequired, TypedDict

import attrs
from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient, ChatClient, StructuredOutputError, parse_structured
from azml_chat.testing import ChatTurn

try:
    import pydantic
except ImportError:  # pydantic is optional; azml_chat never needs it
    pydantic = None  # type: ignore[assignment]


class Sentiment(enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    MIXED = "mixed"


@attrs.frozen
class Review:
    """What a customer review says."""

    product: str
    sentiment: Sentiment
    stars: int = attrs.field(metadata={"description": "1 to 5"})
    pros: list[str]
    cons: list[str]


@dataclasses.dataclass
class Reply:
    """A reply to the customer."""

    greeting: str
    body: str
    discount_percent: int = 0  # optional: in strict mode the model may send null for "the default"


class Ticket(TypedDict):
    """A support ticket."""

    title: str
    urgent: bool
    assignee: NotRequired[str]


REVIEW = "The X200 kettle boils fast and looks great, but the lid feels cheap. 4/5."
ANSWERS: dict[str, Any] = {  # what the local stand-in model answers, by schema name
    "Review": {
        "product": "X200 kettle",
        "sentiment": "mixed",
        "stars": 4,
        "pros": ["fast", "looks great"],
        "cons": ["cheap lid"],
    },
    "Reply": {"greeting": "Dear customer,", "body": "Thank you for the review.", "discount_percent": None},
    "Ticket": {"title": "Kettle lid feels cheap", "urgent": False, "assignee": None},
    "response": {"response": ["kettle", "lid", "speed"]},  # list[str], wrapped as strict mode needs
    "Verdict": {"keep": True, "reason": "fast and good-looking"},
}


def json_model(turn: ChatTurn) -> str:
    """The local stand-in for a model following response_format."""
    if turn.messages[-1]["content"].startswith("Just say"):
        return "Sure! It is a good kettle."  # not JSON: shows the error
    spec = turn.params["response_format"]["json_schema"]
    if spec["name"] == "Review":
        assert set(spec["schema"]["required"]) == {"product", "sentiment", "stars", "pros", "cons"}
    return json.dumps(ANSWERS[spec["name"]])


async def main(settings: dict[str, Any]) -> None:
    async with AsyncChatClient(**settings) as client:
        review = await client.chat_structured(
            [{"role": "system", "content": "Extract the review as JSON."}, REVIEW], Review, temperature=0
        )
        print("async:", review)
        reply = await client.chat_structured(["Write a short reply to this review.", REVIEW], Reply)
        print("dataclass:", reply)  # discount_percent came back null: the default 0 is used
        ticket = await client.chat_structured(["File a ticket for this review.", REVIEW], Ticket)
        print("TypedDict:", ticket)  # a dict with the declared keys; the null assignee is left out
        keywords = await client.chat_structured(["Three keywords for this review.", REVIEW], list[str])
        print("list[str]:", keywords)
        if pydantic is not None:

            class Verdict(pydantic.BaseModel):
                keep: bool
                reason: str = pydantic.Field(description="one short sentence")

            print("pydantic:", await client.chat_structured(["Keep selling the X200?", REVIEW], Verdict))
        try:
            await client.chat_structured("Just say something nice about the kettle.", Review)
        except StructuredOutputError as exc:
            print("not structured:", exc.message, "| reply was:", repr(exc.text))


def main_sync(settings: dict[str, Any]) -> None:
    with ChatClient(**settings) as client:
        reply = client.chat(REVIEW, response_format=Review)  # a class becomes a json_schema response format
        review = parse_structured(reply, Review)
        print("sync:", review.product, review.sentiment.value, f"{review.stars} stars", "| usage:", reply.usage)


if __name__ == "__main__":
    with endpoint_settings(responder=json_model) as settings:
        asyncio.run(main(settings))
        main_sync(settings)
