"""Structured output: ask for JSON shaped like an attrs class and get an instance back.

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set (a serverless endpoint of a model
that supports response_format) it talks to Azure; otherwise a local endpoint plays a model
that answers with JSON.

    python examples/structured_output.py
"""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any

import attrs
from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient, ChatClient, StructuredOutputError, parse_structured
from azml_chat.testing import ChatTurn


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


REVIEW = "The X200 kettle boils fast and looks great, but the lid feels cheap. 4/5."


def json_model(turn: ChatTurn) -> str:
    """The local stand-in for a model following response_format."""
    if turn.messages[-1]["content"].startswith("Just say"):
        return "Sure! It is a good kettle."  # not JSON: shows the error
    schema = turn.params["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"product", "sentiment", "stars", "pros", "cons"}
    answer = {"product": "X200 kettle", "sentiment": "mixed", "stars": 4, "pros": ["fast", "looks great"]}
    return json.dumps({**answer, "cons": ["cheap lid"]})


async def main(settings: dict[str, Any]) -> None:
    async with AsyncChatClient(**settings) as client:
        review = await client.chat_structured(
            [{"role": "system", "content": "Extract the review as JSON."}, REVIEW], Review, temperature=0
        )
        print("async:", review)
        try:
            await client.chat_structured("Just say something nice about the kettle.", Review)
        except StructuredOutputError as exc:
            print("not structured:", exc.message, "| reply was:", repr(exc.text))


def main_sync(settings: dict[str, Any]) -> None:
    with ChatClient(**settings) as client:
        reply = client.chat(REVIEW, response_format=Review)  # an attrs class becomes a json_schema
        review = parse_structured(reply, Review)
        print("sync:", review.product, review.sentiment.value, f"{review.stars} stars", "| usage:", reply.usage)


if __name__ == "__main__":
    with endpoint_settings(responder=json_model) as settings:
        asyncio.run(main(settings))
        main_sync(settings)
