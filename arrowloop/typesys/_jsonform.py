"""Specialised JSON readers and writers: ``from_json`` and ``validate`` +
``to_json`` made once per type.

A data port decodes every request and encodes every reply; walking the type
term with ``match`` for each value costs more than the rest of the request.
:func:`json_reader` and :func:`json_writer` give, once per type, a function
generated for that type (:mod:`arrowloop.typesys._jsongen`) that does only
its checks and conversions, and hands anything unusual to the reference
functions in ``_values.py``: results and error messages are exactly those
of :func:`from_json` and :func:`validate` / :func:`to_json`.
"""

from __future__ import annotations

from typing import Final

from arrowloop.typesys._jsongen import Coder, generate_reader, generate_writer
from arrowloop.typesys._repr import _epoch
from arrowloop.typesys._types import Type

__all__ = ["json_reader", "json_writer", "JSON_CACHE_SIZE"]

#: Most types whose reader and writer are kept.
JSON_CACHE_SIZE: Final = 256

# By kind, (type, binding epoch) -> function: the epoch because the
# functions hold record classes.
_made: dict[str, dict[tuple[Type, int], Coder]] = {"read": {}, "write": {}}
# The same by the type's id: callers ask per value (or per batch), so a hit
# here is an id() and a dict lookup, with no hashing of the type term. The
# entry holds the type, so its id is not reused while the entry lives.
_by_id: dict[str, dict[int, tuple[Type, int, Coder]]] = {"read": {}, "write": {}}


_readers_by_id: Final = _by_id["read"]
_writers_by_id: Final = _by_id["write"]


def _cached(kind: str, t: Type) -> Coder:
    by_id = _by_id[kind]
    epoch = _epoch[0]
    made = _made[kind]
    fn = made.get((t, epoch))
    if fn is None:
        fn = made[(t, epoch)] = generate_reader(t) if kind == "read" else generate_writer(t)
        if len(made) > JSON_CACHE_SIZE:
            del made[next(iter(made))]  # the oldest
    by_id[id(t)] = (t, epoch, fn)
    if len(by_id) > JSON_CACHE_SIZE:
        del by_id[next(iter(by_id))]
    return fn


def json_reader(t: Type) -> Coder:
    """A function ``(data, path) -> value`` equal to ``from_json(t, data, path)``.

    Made once per type (and class binding) and kept: callers may ask for it
    per value.

    Raises (the function):
        ValidationError: as :func:`from_json`.
    """
    got = _readers_by_id.get(id(t))  # the hit, without a call more
    if got is not None and got[0] is t and got[1] == _epoch[0]:
        return got[2]
    return _cached("read", t)


def json_writer(t: Type) -> Coder:
    """A function ``(value, path) -> data`` equal to ``validate(t, value, path)``
    followed by ``to_json(t, value)`` (made once per type, as :func:`json_reader`).

    Raises (the function):
        ValidationError: as :func:`validate` and :func:`to_json`.
    """
    got = _writers_by_id.get(id(t))
    if got is not None and got[0] is t and got[1] == _epoch[0]:
        return got[2]
    return _cached("write", t)
