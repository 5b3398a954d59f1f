"""mkdocs hook: draw the benchmark table of docs/benchmarks.md as bar charts.

The page stays plain Markdown that anyone can append to; at build time this hook reads the
first results table (the one whose header starts ``| row | C | CPU µs |``), and inserts one
inline SVG chart per group of rows (requests at C=1, requests at C=64, streamed chunks)
right before that table. A missing or reshaped table fails the build with a clear message,
so the chart cannot silently go stale.
"""

from __future__ import annotations

import html
import re
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "benchmarks.md"
_HEADER = re.compile(r"^\|\s*row\s*\|\s*C\s*\|\s*CPU µs\s*\|", re.MULTILINE)
_ROW_ID = re.compile(r"`([^`]+)`\s*$")

# Bar colours by what a row measures (the row id's first part), so the SDK's rows stand out.
_COLOURS = {
    "httpx": "#9e9e9e",  # raw httpx: the baseline
    "sdk": "#3f51b5",  # azml-chat over httpx
    "aiohttp": "#a5d6a7",  # raw aiohttp
    "sdk-aiohttp": "#2e7d32",  # azml-chat's aiohttp driver
    "httpx-aiohttp": "#ffb74d",  # raw httpx with the httpx-aiohttp transport
    "sdk-httpx-aiohttp": "#ef6c00",  # azml-chat over httpx + httpx-aiohttp
}


def _kind(row_id: str) -> str:
    head = row_id.split("/")[0].removeprefix("stream-")
    if head.startswith("sdk-httpx-aiohttp"):
        return "sdk-httpx-aiohttp"
    if head.startswith("sdk-aiohttp"):
        return "sdk-aiohttp"
    if head.startswith("sdk"):
        return "sdk"
    if head.startswith("httpx-aiohttp"):
        return "httpx-aiohttp"
    if head.startswith("aiohttp"):
        return "aiohttp"
    return "httpx"


def parse_rows(markdown: str) -> tuple[int, int, list[dict[str, Any]]]:
    """The results table's span in ``markdown`` and its rows (label, id, C, CPU µs, ratio)."""
    match = _HEADER.search(markdown)
    if match is None:
        raise PluginError(f"{PAGE}: no results table with the header '| row | C | CPU µs | ...' to chart")
    start = match.start()
    lines = markdown[start:].split("\n")
    table: list[str] = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    end = start + len("\n".join(table))
    rows: list[dict[str, Any]] = []
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[1].isdigit():
            continue  # import rows have "-" for C: they are not per-request costs
        row_id = _ROW_ID.search(cells[0])
        try:
            cpu = float(cells[2].replace(",", ""))
        except ValueError:
            raise PluginError(f"{PAGE}: CPU µs {cells[2]!r} of row {cells[0]!r} is not a number") from None
        rows.append(
            {
                "label": _ROW_ID.sub("", cells[0]).strip(),
                "id": row_id.group(1) if row_id else cells[0],
                "concurrency": int(cells[1]),
                "cpu": cpu,
                "ratio": cells[4],
            }
        )
    if not rows:
        raise PluginError(f"{PAGE}: the results table has no rows to chart")
    return start, end, rows


def bar_chart(title: str, rows: list[dict[str, Any]], unit: str) -> str:
    """A horizontal bar chart as inline SVG: one bar per row, its value and ratio at the end."""
    bar_height, gap, label_width, bar_width, value_width = 22, 6, 390, 330, 150
    width = label_width + bar_width + value_width
    height = 34 + len(rows) * (bar_height + gap)
    top = max(row["cpu"] for row in rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{html.escape(title)}" style="max-width:100%;height:auto;font-family:sans-serif">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="0" y="18" font-size="15" font-weight="bold" fill="currentColor">{html.escape(title)}</text>',
    ]
    for index, row in enumerate(rows):
        y = 30 + index * (bar_height + gap)
        length = max(1.0, bar_width * row["cpu"] / top)
        colour = _COLOURS[_kind(row["id"])]
        ratio = f" ({row['ratio']})" if row["ratio"] else ""
        parts += [
            f'<text x="{label_width - 8}" y="{y + 15}" font-size="12" text-anchor="end" fill="currentColor">'
            f"{html.escape(row['label'])}</text>",
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{colour}">'
            f"<title>{html.escape(row['id'])}: {row['cpu']:,.1f} {unit}{html.escape(ratio)}</title></rect>",
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}" font-size="12" fill="currentColor">'
            f"{row['cpu']:,.1f}{html.escape(ratio)}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def charts(rows: list[dict[str, Any]]) -> str:
    """The chart section: requests at each concurrency, then streams, each on its own scale."""
    groups: list[tuple[str, list[dict[str, Any]], str]] = []
    requests = [row for row in rows if not row["id"].startswith("stream-")]
    streams = [row for row in rows if row["id"].startswith("stream-")]
    for concurrency in sorted({row["concurrency"] for row in requests}):
        chosen = [row for row in requests if row["concurrency"] == concurrency]
        groups.append((f"Client CPU per request, {concurrency} concurrent (µs, lower is better)", chosen, "µs"))
    for concurrency in sorted({row["concurrency"] for row in streams}):
        chosen = [row for row in streams if row["concurrency"] == concurrency]
        groups.append((f"Client CPU per streamed chunk, {concurrency} concurrent (µs)", chosen, "µs"))
    figures = "\n\n".join(f"<div>{bar_chart(title, chosen, unit)}</div>" for title, chosen, unit in groups)
    legend = (
        "Grey: raw httpx (the baseline); blue: azml-chat on httpx; dark green: azml-chat's aiohttp "
        "driver; light green: raw aiohttp; orange: httpx with the httpx-aiohttp transport (dark: "
        "through azml-chat). The ratio in brackets compares a row with its baseline, as in the table."
    )
    return f"### Charts of the table below\n\n{figures}\n\n{legend}\n\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Insert the charts right before the first results table of the benchmark page."""
    if page.file.src_uri != PAGE:
        return markdown
    start, _end, rows = parse_rows(markdown)
    return markdown[:start] + charts(rows) + markdown[start:]
