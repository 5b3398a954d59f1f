"""The one JSON codec: compact UTF-8 out, bytes or text in.

orjson does the usual work: it encodes a request body in a tenth of the instructions the
standard library's C encoder needs (~3k rather than ~24k for a short chat) and decodes a
reply in less than half (~14k rather than ~32k). Wherever orjson would part from
``json``, the standard library's result or error stands:

- :func:`dumps`: orjson writes NaN and infinities as ``null`` where ``json`` refuses
  them, so output holding ``null`` is made again by ``json`` (rare in a request). What
  orjson will not write (integer dict keys, integers beyond 64 bits, lone surrogates,
  dataclass and datetime values, very deep nesting) goes to ``json`` too.
- :func:`loads`: what orjson refuses (NaN, a byte-order mark, not JSON at all) ``json``
  decides, wording the error. orjson reads an integer beyond 64 bits as a float, which
  no service writes into a reply's envelope; JSON a model wrote (tool arguments,
  structured output, the text of a ``/score`` reply) goes through :func:`loads_exact`.

Two kinds of value orjson writes where ``json`` would refuse them: an enum member (as its
value) and a ``uuid.UUID`` (as its canonical string).
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from .errors import InvalidRequestError

# Dataclass and datetime values are left to json (which refuses them), as they were before orjson.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

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
    """Decode JSON a service wrote (a reply, a stream event, an error body), as ``json.loads``
    does, but with orjson (see the module docstring for the one difference)."""
    try:
        return orjson.loads(data)
    except ValueError:  # NaN, a BOM, not UTF-8 or not JSON: json decides (and words the error)
        return loads_exact(data)


def loads_exact(data: str | bytes | bytearray) -> Any:
    """Decode JSON exactly as ``json.loads`` does (integers of any size stay integers).

    Bytes take a fast path as UTF-8 (``json.loads`` first sniffs for UTF-16/32, which costs
    ~2 µs); only what fails there is handed to ``json.loads``.
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
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: something orjson does not write; json decides
        pass
    else:
        if b"null" not in data:  # orjson writes NaN and infinities as null, which json refuses
            return data
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
