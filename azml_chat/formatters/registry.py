"""The formatter registry, keyed by model family."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import ConfigurationError
from ._base import ChatFormatter
from .hf import LlamaChatFormatter, MistralChatFormatter, PhiChatFormatter, TextGenerationFormatter
from .openai import OpenAIChatFormatter

__all__ = ["available_formatters", "family_for_model", "get_formatter", "register_formatter"]

FormatterFactory = Callable[[], ChatFormatter]

_lock = threading.Lock()
_registry: dict[str, FormatterFactory] = {}

_FAMILY_HINTS = (  # substring of a model name -> family, first match wins
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("phi", "phi"),
    ("llama", "llama"),
    ("gpt2", "text-generation"),
    ("gpt-2", "text-generation"),
    ("dolly", "text-generation"),
    ("falcon", "text-generation"),
)


def register_formatter(
    name: str,
    formatter: type[ChatFormatter] | ChatFormatter | FormatterFactory,
    *,
    aliases: tuple[str, ...] = (),
    replace: bool = False,
) -> None:
    """Register a formatter under a family name (and aliases).

    ``formatter`` is a :class:`ChatFormatter` subclass, an instance, or a factory.
    Registering an existing name raises :class:`ConfigurationError` unless ``replace=True``.
    """
    if isinstance(formatter, ChatFormatter):
        instance = formatter

        def factory() -> ChatFormatter:
            return instance
    elif callable(formatter):
        factory = formatter
    else:
        raise ConfigurationError(f"formatter for {name!r} must be a ChatFormatter subclass, instance or factory")
    keys = [key.lower() for key in (name, *aliases)]
    with _lock:
        taken = [key for key in keys if key in _registry]
        if taken and not replace:
            raise ConfigurationError(f"formatter name(s) {taken} already registered: pass replace=True")
        for key in keys:
            _registry[key] = factory


def available_formatters() -> list[str]:
    """Every registered family name and alias, sorted."""
    return sorted(_registry)


def get_formatter(spec: str | ChatFormatter | type[ChatFormatter]) -> ChatFormatter:
    """A formatter from a registered name, a :class:`ChatFormatter` subclass or an instance."""
    if isinstance(spec, ChatFormatter):
        return spec
    if isinstance(spec, type) and issubclass(spec, ChatFormatter):
        return spec()
    if isinstance(spec, str):
        factory = _registry.get(spec.strip().lower())
        if factory is None:
            raise ConfigurationError(
                f"unknown formatter {spec!r}: use one of {', '.join(available_formatters())}, "
                "or register your own with register_formatter()"
            )
        return factory()
    raise ConfigurationError(
        f"formatter must be a family name, a ChatFormatter subclass or instance, not {type(spec).__name__}"
    )


def family_for_model(model_name: str) -> str:
    """Guess the formatter family from a model name (e.g. from ``/info``); ``llama`` if unknown."""
    lowered = model_name.lower()
    return next((family for hint, family in _FAMILY_HINTS if hint in lowered), "llama")


register_formatter("openai", OpenAIChatFormatter, aliases=("chat-completions", "vllm", "serverless"))
register_formatter("llama", LlamaChatFormatter, aliases=("hf", "hf-chat", "llama2", "llama3", "huggingface"))
register_formatter("mistral", MistralChatFormatter, aliases=("mixtral",))
register_formatter("phi", PhiChatFormatter, aliases=("phi3", "phi-3"))
register_formatter("text-generation", TextGenerationFormatter, aliases=("gpt2", "dolly", "falcon", "oss", "hf-text"))
