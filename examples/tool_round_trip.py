"""Tool calling: the model asks for a Python function, we run it and send the result back.

Parameters may be of any schema style (attrs classes, dataclasses, TypedDicts, pydantic
models, typing annotations): the arguments are checked and built into those types before the
function runs. ``tool_schema(fn, strict=True)`` asks for OpenAI's strict mode.

With AZUREML_ENDPOINT_URL / AZUREML_ENDPOINT_API_KEY set (a serverless endpoint of a model
that supports tools) it talks to Azure; otherwise a local endpoint plays a scripted model.

    python examples/tool_round_trip.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, Literal

from _endpoint import endpoint_settings

from azml_chat import AsyncChatClient, ChatClient, Message, aexecute_tool_calls, execute_tool_calls, tool_schema
from azml_chat.testing import ChatTurn, ScriptedReply


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """Current weather in a city.

    Args:
        city: The city name, e.g. "Oslo".
        unit: The temperature unit.
    """
    celsius = {"oslo": 4, "lisbon": 19}.get(city.lower(), 12)
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit}


@dataclasses.dataclass
class Booking:
    city: str
    nights: int = 1
    breakfast: bool = False


def book_hotel(booking: Booking, guests: list[str]) -> str:
    """Book a hotel room.

    Args:
        booking: Where and for how long.
        guests: The guests' names.
    """
    extra = " with breakfast" if booking.breakfast else ""
    return f"Booked {booking.nights} night(s) in {booking.city}{extra} for {', '.join(guests)}."


def scripted_model(turn: ChatTurn) -> str | ScriptedReply:
    """The local endpoint's stand-in for a real model: call the tool, then answer from its result."""
    last = turn.messages[-1]
    if last["role"] == "tool" and last["tool_call_id"] == "call_book":
        return last["content"]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        return f"It is {result['temperature']} degrees {result['unit']} in {result['city']}."
    if turn.params["tools"][0]["function"]["name"] == "book_hotel":
        # strict mode: every field is sent, null meaning "the default"
        arguments = {"booking": {"city": "Oslo", "nights": None, "breakfast": True}, "guests": ["Ann", "Bo"]}
        return ScriptedReply(
            tool_calls=[{"id": "call_book", "function": {"name": "book_hotel", "arguments": arguments}}]
        )
    call = {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    return ScriptedReply(tool_calls=[call])


async def main(settings: dict[str, Any]) -> None:
    messages: list[Any] = [Message.user("What's the weather in Oslo?")]
    async with AsyncChatClient(**settings) as client:
        reply = await client.chat(messages, tools=[get_weather], tool_choice="auto")
        while reply.tool_calls:  # the model may ask for tools more than once
            for call in reply.tool_calls:
                print(f"model asks: {call.name}({call.parsed_arguments()})")
            messages += [reply.message, *await aexecute_tool_calls(reply, [get_weather])]
            reply = await client.chat(messages, tools=[get_weather])
        print("async answer:", reply.content)

        booking_tool = tool_schema(book_hotel, strict=True)  # a dataclass parameter, strict schema
        messages = [Message.user("Book a room in Oslo with breakfast for Ann and Bo.")]
        reply = await client.chat(messages, tools=[booking_tool])
        messages += [reply.message, *await aexecute_tool_calls(reply, [book_hotel])]
        reply = await client.chat(messages, tools=[booking_tool])
        print("async booking:", reply.content)


def main_sync(settings: dict[str, Any]) -> None:
    messages: list[Any] = ["What's the weather in Oslo?"]
    with ChatClient(**settings) as client:
        reply = client.chat(messages, tools=[get_weather])
        if reply.tool_calls:
            messages += [reply.message, *execute_tool_calls(reply, [get_weather])]
            reply = client.chat(messages, tools=[get_weather])
        print("sync answer:", reply.content)


if __name__ == "__main__":
    with endpoint_settings(responder=scripted_model) as settings:
        asyncio.run(main(settings))
        main_sync(settings)
