"""Another module with its own Get, Put and Ok (the same names and fields as
samename_a's), and a Stats record of its own: version 2 of the store."""

from __future__ import annotations

import attrs

from arrowloop import statemachine


@attrs.frozen
class Get:
    """Read a key."""

    key: str


@attrs.frozen
class Put:
    """Add to a key."""

    key: str
    value: int


@attrs.frozen
class Ok:
    """The value of the key."""

    value: int


@statemachine(init={})
def store(msg: Get | Put, state: dict[str, int]) -> tuple[dict[str, int], Ok]:
    """Version 2: a put adds to the value."""
    match msg:
        case Get(key=k):
            return state, Ok(state.get(k, 0))
        case Put(key=k, value=v):
            total = state.get(k, 0) + v
            return {**state, k: total}, Ok(total)


@statemachine(init=0)
def same_as_last(msg: Get | Put, last: int) -> tuple[int, bool]:
    """Whether this message equals Get("x") (compared by fields, whichever class)."""
    return last, msg == Get("x")
