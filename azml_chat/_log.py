"""The package logger's setup: silent by default, ``AZML_CHAT_LOG`` for quick diagnosis.

A library must not print unless the application asks, so the ``azml_chat`` logger gets a
``NullHandler`` (Python's logging HOWTO for libraries). ``AZML_CHAT_LOG=debug`` (or
``info``, ``warning``, ``error``), read once at import as ``OPENAI_LOG`` is, prints the
package's lines to stderr without touching the application's own logging setup.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LOG_ENV = "AZML_CHAT_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(value: str | None = None) -> logging.Handler | None:
    """Give the ``azml_chat`` logger its ``NullHandler`` and, when ``value`` (default: the
    ``AZML_CHAT_LOG`` environment variable) names a level, a stderr handler at that level.
    Returns the stderr handler, if one was added."""
    logger = logging.getLogger("azml_chat")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    setting = (os.environ.get(LOG_ENV, "") if value is None else value).strip().lower()
    if not setting:
        return None
    level = _LEVELS.get(setting)
    if level is None:
        warnings.warn(
            f"{LOG_ENV}={setting!r} is not one of {', '.join(_LEVELS)}: azml_chat logs nothing extra",
            stacklevel=2,
        )
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
