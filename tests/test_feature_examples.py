"""The streaming, tool, structured-output and Entra ID examples run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (
            "tool_round_trip.py",
            [
                "model asks: get_weather({'city': 'Oslo'})",
                "async answer: It is 4 degrees celsius in Oslo.",
                "sync answer: It is 4 degrees celsius in Oslo.",
            ],
        ),
        (
            "structured_output.py",
            [
                "async: Review(product='X200 kettle', sentiment=<Sentiment.MIXED: 'mixed'>, stars=4",
                "not structured: the reply is not valid JSON for Review",
                "sync: X200 kettle mixed 4 stars",
            ],
        ),
        (
            "streaming.py",
            [
                "Tell me a short story about a kettle.\n[finish_reason=stop usage=Usage(prompt_tokens=8",
                "stopped after 3 pieces",
                "sync reply: 'Hello from the sync client!'",
            ],
        ),
        (
            "entra_id.py",
            [
                "async: 20 replies, first: question 0",
                "sync: Hello with a token",
                "tokens issued: ['demo-token-1', 'demo-token-2']",
            ],
        ),
    ],
)
def test_example_runs(example: str, expected: list[str]) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("AZUREML_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example)], capture_output=True, text=True, timeout=60, env=clean, check=False
    )
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout
    assert result.stderr == ""
