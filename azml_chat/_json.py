"""The one JSON codec: compact UTF-8 out (the encoder escapes a prompt once), bytes or text in."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidRequestError

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decode = json.JSONDecoder().decode


def loads(data: str | bytes | bytearray) -> Any:
    """Decode JSON text, as ``json.loads`` does.

    Bytes take a fast path as UTF-8 (``json.loads`` first sniffs for UTF-16/32, which costs
    ~2 µs: a lot per streamed chunk); only what fails there is handed to ``json.loads``.
    """
    if type(data) is bytes or isinstance(data, bytes | bytearray):  # exact bytes first: the cheap check
        try:
            return _decode(data.decode())
        except ValueError:  # not UTF-8 (UnicodeDecodeError), a BOM, or not JSON: json.loads decides
            return json.loads(data)
    return _decode(data)


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON; :class:`InvalidRequestError` if it cannot be."""
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"text contains a lone surrogate ({exc.object[exc.start : exc.end]!r} at position "
            f"{exc.start}), which is not valid Unicode: fix the string before sending it"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"request is not JSON-serializable: {exc}") from None
