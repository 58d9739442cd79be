"""The dead-letter sink: items a stage failed on, with their errors.

Bounded like everything else: the default sink keeps the most recent
``maxlen`` letters and counts the ones it had to drop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final, Protocol

import attrs

__all__ = ["DeadLetter", "DeadLetterSink", "DeadLetters", "DEFAULT_DEAD_LETTERS"]

DEFAULT_DEAD_LETTERS: Final = 1024


@attrs.frozen
class DeadLetter:
    """One failed item: where it failed, on which version, and why."""

    stage: str
    version: str
    item: Any
    error: BaseException = attrs.field(eq=False)
    at: float = attrs.field(factory=time.time, eq=False)

    @property
    def reason(self) -> str:
        """The error as one line of text."""
        return f"{type(self.error).__name__}: {self.error}"


class DeadLetterSink(Protocol):
    """Anything that accepts dead letters (must not block or raise)."""

    def put(self, letter: DeadLetter) -> None:
        """Record one dead letter."""


class DeadLetters:
    """The default sink: a bounded in-memory ring of the latest letters."""

    def __init__(self, maxlen: int = DEFAULT_DEAD_LETTERS) -> None:
        if type(maxlen) is not int or maxlen < 1:
            raise ValueError(f"expected maxlen >= 1, found {maxlen!r}")
        self._letters: deque[DeadLetter] = deque(maxlen=maxlen)
        self.total = 0
        self.dropped = 0

    def put(self, letter: DeadLetter) -> None:
        """Record ``letter``, dropping the oldest when full."""
        if len(self._letters) == self._letters.maxlen:
            self.dropped += 1
        self._letters.append(letter)
        self.total += 1

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(list(self._letters))

    def __len__(self) -> int:
        return len(self._letters)

    def clear(self) -> list[DeadLetter]:
        """Remove and return the letters held."""
        out = list(self._letters)
        self._letters.clear()
        return out
