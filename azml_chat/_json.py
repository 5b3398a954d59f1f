"""The one JSON codec: compact UTF-8 out (the encoder escapes a prompt once), bytes or text in.

Both directions call the standard library's C scanner and encoder directly (``json.loads``
and ``json.dumps`` wrap them in Python code that costs ~0.7 µs a call: much per request,
more per streamed chunk). Results and errors are those of ``json.loads``/``json.dumps``.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidRequestError

_decoder = json.JSONDecoder()
_decode = _decoder.decode
# Shared, as json.loads shares its own (typeshed wrongly types the argument as a scanner).
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# No markers dict (the circular-reference check): a shared one is state between threads; a
# circular value hits the recursion limit instead, reported below as what it is.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
_encode: Callable[[Any, int], Iterable[str]] | None = (
    _make_encoder(None, _not_serializable, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _make_encoder is not None
    else None
)


def _decode_text(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # leading whitespace or no JSON value: the decoder decides (and words the error)
        return _decode(text)
    return value if end == len(text) else _decode(text)  # trailing whitespace or extra data: likewise


def loads(data: str | bytes | bytearray) -> Any:
    """Decode JSON text, as ``json.loads`` does.

    Bytes take a fast path as UTF-8 (``json.loads`` first sniffs for UTF-16/32, which costs
    ~2 µs: a lot per streamed chunk); only what fails there is handed to ``json.loads``.
    """
    if type(data) is bytes or isinstance(data, bytes | bytearray):  # exact bytes first: the cheap check
        try:
            return _decode_text(data.decode())
        except ValueError:  # not UTF-8 (UnicodeDecodeError), a BOM, or not JSON: json.loads decides
            return json.loads(data)
    return _decode_text(data)


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON; :class:`InvalidRequestError` if it cannot be."""
    try:
        text = "".join(_encode(value, 0)) if _encode is not None else _encoder.encode(value)
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"text contains a lone surrogate ({exc.object[exc.start : exc.end]!r} at position "
            f"{exc.start}), which is not valid Unicode: fix the string before sending it"
        ) from None
    except RecursionError:
        raise InvalidRequestError(
            "request is not JSON-serializable: it contains itself (a circular reference)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"request is not JSON-serializable: {exc}") from None
