"""The package's own face: ``dir()`` lists the lazily loaded names and ``help()`` maps the API."""

from __future__ import annotations

import pydoc
import re

import azml_chat


def test_dir_lists_every_public_name_lazy_ones_too() -> None:
    names = dir(azml_chat)
    assert set(azml_chat.__all__) <= set(names)
    assert {"parse_structured", "tool_schema", "aexecute_tool_calls"} <= set(names)
    assert names == sorted(names)


def test_help_maps_every_public_name() -> None:
    text = pydoc.render_doc(azml_chat, renderer=pydoc.plaintext)
    assert "AsyncChatClient.from_env()" in text  # the quickstart is still first
    doc = azml_chat.__doc__ or ""
    missing = [name for name in azml_chat.__all__ if not re.search(rf"\b{re.escape(name)}\b", doc)]
    assert missing == []
    for submodule in ("azml_chat.structured", "azml_chat.tools", "azml_chat.testing", "azml_chat.langchain"):
        assert submodule in doc
