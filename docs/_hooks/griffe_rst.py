"""Griffe extension: render the reStructuredText habits of our docstrings as Markdown.

The docstrings are written for ``help()`` and editors: ``:class:`Message``` roles and
``Example::`` literal blocks. mkdocstrings renders Markdown, so roles become inline code and
a literal block becomes a fenced Python block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|exc|mod|data|obj|const):`~?([^`]+)`")


def _literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        lead = line.rstrip()[:-2].rstrip()
        if lead:
            out.append(lead + ":")
        i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
        out += ["", "```python", *(b[indent:] for b in block), "```", ""]
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """Roles to inline code, ``::`` literal blocks to fenced Python blocks."""
    text = _ROLE.sub(lambda match: f"`{match.group(1)}`", text)
    return _literal_blocks(text)


class RstToMarkdown(griffe.Extension):
    """Rewrites each docstring once, when griffe creates its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
