"""A key-value store whose messages are called Get, Put and Ok (see samename_b)."""

from __future__ import annotations

import attrs

from arrowloop import statemachine


@attrs.frozen
class Get:
    """Read a key."""

    key: str


@attrs.frozen
class Put:
    """Write a key."""

    key: str
    value: int


@attrs.frozen
class Ok:
    """The value of the key."""

    value: int


@statemachine(init={})
def store(msg: Get | Put, state: dict[str, int]) -> tuple[dict[str, int], Ok]:
    """Version 1: a put replaces the value."""
    match msg:
        case Get(key=k):
            return state, Ok(state.get(k, 0))
        case Put(key=k, value=v):
            return {**state, k: v}, Ok(v)
