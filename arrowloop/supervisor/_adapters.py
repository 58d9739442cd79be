"""Adapters: serving clients of a stage's older versions.

Every applied code change of a stage adds an edge ``old version -> new
version`` with its input adapter (old input -> new input) and output
adapter (new output -> old output), either of which is the identity when
the types allow it. A request tagged with an old version is adapted in
along the path of edges to the running version, and its reply adapted out
along the same path backwards. Bounded: each stage keeps its latest
``limit`` edges. Part of layer 9 (the supervisor).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from arrowloop.typesys import Type

__all__ = ["Edge", "AdapterTable"]


@attrs.frozen
class Edge:
    """One applied change of a stage, as clients of the old version see it."""

    from_version: str
    to_version: str
    old_input: Type
    old_output: Type
    adapt_in: Callable[[Any], Any] | None
    adapt_out: Callable[[Any], Any] | None
    serves_in: bool
    serves_out: bool


class AdapterTable:
    """The edges of every stage (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._edges: dict[str, deque[Edge]] = {}

    def add(self, stage: str, edge: Edge) -> None:
        """Record an applied change of ``stage``."""
        self._edges.setdefault(stage, deque(maxlen=self._limit)).append(edge)

    def knows(self, stage: str, version: str) -> bool:
        """Whether ``version`` is a recorded former version of ``stage``."""
        return any(e.from_version == version for e in self._edges.get(stage, ()))

    def old_types(self, stage: str, version: str) -> tuple[Type, Type] | None:
        """The input and output types of a former version, if recorded."""
        for e in reversed(self._edges.get(stage, ())):
            if e.from_version == version:
                return e.old_input, e.old_output
        return None

    def path(self, stage: str, start: str, goal: str) -> list[Edge] | None:
        """The shortest chain of edges from ``start`` to ``goal`` (None if none).

        Breadth-first over at most ``limit`` edges, newest edges first so a
        version re-installed later is reached through its latest change.
        """
        if start == goal:
            return []
        edges = list(reversed(self._edges.get(stage, ())))
        seen = {start}
        frontier: list[tuple[str, list[Edge]]] = [(start, [])]
        while frontier:
            nxt: list[tuple[str, list[Edge]]] = []
            for at, trail in frontier:
                for e in edges:
                    if e.from_version == at and e.to_version not in seen:
                        chain = [*trail, e]
                        if e.to_version == goal:
                            return chain
                        seen.add(e.to_version)
                        nxt.append((e.to_version, chain))
            frontier = nxt
        return None
