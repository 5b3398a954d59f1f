"""``Frozen``: the base of the SDK's immutable value classes (messages, replies, settings).

These classes were ``@attrs.frozen``; importing attrs and generating each class's methods
cost about 15 ms, 80% of ``import azml_chat`` (see docs/benchmarks.md). A subclass lists
its fields in ``__slots__`` (and the same names, in order, in ``__match_args__``) and
stores them in a plain ``__init__`` with ``object.__setattr__``; this base adds what
attrs did: immutability, equality and hashing by value, a repr, pickling and copying,
and ``__replace__`` (``copy.replace`` on Python 3.13+).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

__all__ = ["Frozen"]


class Frozen:
    """An immutable value: compared, hashed and shown by its fields (``__match_args__``)."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    #: Fields left out of the repr (e.g. raw payloads).
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__.__qualname__, *self._values()))

    def __repr__(self) -> str:
        hidden = self._hidden
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__ if name not in hidden)
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._values())

    def __replace__(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like a new instance."""
        values = {name: getattr(self, name) for name in self.__match_args__}
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")
        return type(self)(**(values | changes))
