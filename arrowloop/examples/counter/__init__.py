"""The counter example, written with the arrow combinators.

* v1: input ``ReadCount | IncrCount``, state ``int`` (starts at 0), output
  ``Count | Ack``.
* v2: adds ``ResetCount``; same state, the migration is the identity.
* v3: adds ``ToggleCount``; the state becomes ``(int, bool)`` (the bool says
  whether ``IncrCount`` counts down); the migration is ``n -> (n, False)``.

Every body has the same shape: ``distribute`` pairs the message's payload
with the state, then ``case`` picks the branch for the message, and each
branch maps ``(payload, state)`` to ``(new state, output)``.

This package's modules hold the same counter written in the Python subset,
one file per version, as the server and the CLI use them:
``arrowloop/examples/counter/v1.py`` (the first version), ``v2.py`` and ``v3.py``
(each with ``machine``, ``migrate`` from the version before, and ``inverse``
for rollback), and ``service.py`` (the supervised pipeline that
``python -m arrowloop serve arrowloop.examples.counter.service:pipeline`` serves).
It ships inside the package so that ``python -m arrowloop demo`` (and the
README's commands) work wherever arrowloop is installed; the dotted names
(``arrowloop.examples.counter.v2``) work from any directory.
"""

from __future__ import annotations

import attrs

from arrowloop.arrows import (
    Arrow,
    Loop,
    case,
    const,
    distribute,
    fanout,
    fst,
    id_,
    if_,
    inject,
    loop,
    make,
    prim,
    snd,
)

__all__ = [
    "ReadCount",
    "IncrCount",
    "ResetCount",
    "ToggleCount",
    "Count",
    "Ack",
    "InputV1",
    "InputV2",
    "InputV3",
    "Output",
    "count_reply",
    "ack",
    "plus_one",
    "minus_one",
    "counter_v1",
    "counter_v2",
    "counter_v3",
    "migrate_v1_v2",
    "migrate_v2_v3",
    "migrate_v3_v2",
]


@attrs.frozen
class ReadCount:
    """Ask for the current count."""


@attrs.frozen
class IncrCount:
    """Add one (or, in v3 when toggled, subtract one)."""


@attrs.frozen
class ResetCount:
    """Set the count to zero (v2 and later)."""


@attrs.frozen
class ToggleCount:
    """Flip the direction of IncrCount (v3)."""


@attrs.frozen
class Count:
    """The reply to ReadCount."""

    n: int


@attrs.frozen
class Ack:
    """The reply to every command."""


InputV1 = ReadCount | IncrCount
InputV2 = ReadCount | IncrCount | ResetCount
InputV3 = ReadCount | IncrCount | ResetCount | ToggleCount
Output = Count | Ack

#: ``int -> Output``: the reply to ReadCount.
count_reply: Arrow = make(Count) >> inject(Output, Count)
#: ``a -> Output``: the acknowledgement.
ack: Arrow = const(Ack(), Output)
#: ``int -> int``.
plus_one: Arrow = fanout(id_, const(1)) >> prim("add")
minus_one: Arrow = fanout(id_, const(1)) >> prim("sub")

# Branches of v1 and v2 see (payload, n).
_read_v1 = snd >> fanout(id_, count_reply)
_incr_v1 = snd >> fanout(plus_one, ack)
_reset_v2 = fanout(const(0), ack)

counter_v1: Loop = loop(
    distribute >> case({ReadCount: _read_v1, IncrCount: _incr_v1}),
    init=0,
    state=int,
)

counter_v2: Loop = loop(
    distribute >> case({ReadCount: _read_v1, IncrCount: _incr_v1, ResetCount: _reset_v2}),
    init=0,
    state=int,
)

# Branches of v3 see (payload, (n, down)).
_state3 = snd
_read_v3 = _state3 >> fanout(id_, fst >> count_reply)
_incr_v3 = _state3 >> fanout(
    fanout(if_(snd, fst >> minus_one, fst >> plus_one), snd),
    ack,
)
_reset_v3 = _state3 >> fanout(fanout(const(0), snd), ack)
_toggle_v3 = _state3 >> fanout(fanout(fst, snd >> prim("not")), ack)

counter_v3: Loop = loop(
    distribute
    >> case(
        {
            ReadCount: _read_v3,
            IncrCount: _incr_v3,
            ResetCount: _reset_v3,
            ToggleCount: _toggle_v3,
        }
    ),
    init=(0, False),
    state=tuple[int, bool],
)

#: v1 -> v2: the state type is unchanged.
migrate_v1_v2: Arrow = id_
#: v2 -> v3: ``n -> (n, False)``.
migrate_v2_v3: Arrow = fanout(id_, const(False))
#: v3 -> v2 (the inverse, for rollback): ``(n, down) -> n``.
migrate_v3_v2: Arrow = fst
