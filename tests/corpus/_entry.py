"""The corpus entry: a plain step function, its initial state and its messages.

Part of the corpus of issue 13 (tests/corpus/): the functions are kept plain,
never decorated at import, because most of them are outside the Python subset
today and a refusal at import would hide the rest; ``tests/test_corpus.py``
compiles each one and runs those that compile against plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st


@attrs.frozen
class CorpusEntry:
    """One step function ``fn(msg, state) -> (state, output)`` of the corpus.

    ``init`` is the initial state and ``messages`` a strategy for one message;
    ``style`` is the module's style (``bytewax``, ``faust``, ...). The entry's
    name, ``style.function``, is what EXPECTED_REFUSALS.txt pins.
    """

    fn: Callable[..., Any]
    init: Any
    messages: st.SearchStrategy[Any]
    style: str

    @property
    def name(self) -> str:
        """``style.function``: unique over the corpus, stable across line moves."""
        return f"{self.style}.{self.fn.__name__}"


class Style:
    """The entries of one module of the corpus, all of one style.

    Each module makes one (``CORPUS = Style("bytewax")``) and registers each
    function right after it (``CORPUS.add(fn, init, messages)``), so the module
    reads as the functions, each followed by its initial state and messages.
    """

    def __init__(self, style: str) -> None:
        self.style = style
        self.entries: list[CorpusEntry] = []

    def add(self, fn: Callable[..., Any], init: Any, messages: st.SearchStrategy[Any]) -> None:
        """Register ``fn`` with its initial state and a strategy for one message."""
        self.entries.append(CorpusEntry(fn, init, messages, self.style))
