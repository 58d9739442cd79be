"""The corpus of issue 13: stateful step functions written the way Python programmers write them.

Each module holds one style (bytewax mappers, faust agents, PyFlink process
functions, pykka/thespian actors, textbook machines, the seed's Haskell
examples, everyday stream operators), translated from its origin only in
shape: ``fn(msg, state) -> (state, output)``, annotated, returning the state.
Nothing here is decorated: ``tests/test_corpus.py`` compiles each entry,
runs those that compile against plain Python, and pins the refusals of the
others in ``EXPECTED_REFUSALS.txt`` (docs/python-subset.md, "The corpus").
"""

from __future__ import annotations

from tests.corpus import (
    actors,
    bytewax_style,
    faust_style,
    pyflink_style,
    seed_haskell,
    streaming,
    textbook,
)
from tests.corpus._entry import CorpusEntry, Style

__all__ = ["ENTRIES", "CorpusEntry", "Style"]

#: Every entry of the corpus, module by module.
ENTRIES: list[CorpusEntry] = [
    entry
    for module in (
        bytewax_style,
        faust_style,
        pyflink_style,
        actors,
        textbook,
        seed_haskell,
        streaming,
    )
    for entry in module.CORPUS.entries
]
