"""Versions of ``tests.nats_pipeline``'s stages that change types, for the
changes across segments (``tests/test_nats_across.py``): ``total_wide``
writes one more field and keeps a state of another type, ``check_wide``
reads it. A change of both alters the channel between the segments that run
them.
"""

from __future__ import annotations

from arrowloop import arrow, statemachine

#: The hash's modulus (as in tests.nats_pipeline).
M = 1000000007


@statemachine(init=(0, 0))
def total_wide(
    item: tuple[int, int], s: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The running sum, and ``k`` the items seen since this version runs."""
    x, n = item
    t, k = s
    return (t + x, k + 1), (x, n, t + x, k + 1)


@arrow
def widen(t: int) -> tuple[int, int]:
    """``total``'s state to ``total_wide``'s."""
    return (t, 0)


@arrow
def narrow(s: tuple[int, int]) -> int:
    """``total_wide``'s state back to ``total``'s (the inverse of ``widen``)."""
    t, _ = s
    return t


@arrow
def widen_badly(t: int) -> tuple[int, int]:
    """A migration that raises on the running state (a division by zero)."""
    return (t, 1 // (t - t))


@statemachine(init=7)
def check_wide(item: tuple[int, int, int, int], h: int) -> tuple[int, tuple[int, int, int, int]]:
    """The running hash, with ``k`` in it; writes what ``check`` wrote."""
    x, n, t, k = item
    h2 = (h * 31 + x * 7 + n * 3 + t + k) % M
    return h2, (x, n, t, h2)


@arrow
def rehash(h: int) -> int:
    """``check``'s state to ``check_wide``'s (the same)."""
    return h


@arrow
def rehash_badly(h: int) -> int:
    """A migration that raises on the running state."""
    return 1 // (h - h)


def model_wide(
    items: list[int], wide_from: int, wide_to: int | None = None
) -> list[tuple[int, int, int, int]]:
    """What the pipeline produces for ``items`` with ``total`` and ``check``
    changed to the wide versions before item ``wide_from + 1`` (and back
    before item ``wide_to + 1``)."""
    out: list[tuple[int, int, int, int]] = []
    t, h, k = 0, 7, 0
    for n, x in enumerate(items, 1):
        t += x
        if n > wide_from and (wide_to is None or n <= wide_to):
            k += 1
            h = (h * 31 + x * 7 + n * 3 + t + k) % M
        else:
            h = (h * 31 + x * 7 + n * 3 + t) % M
        out.append((x, n, t, h))
    return out


@statemachine(init=0)
def count_again(x: int, n: int) -> tuple[int, tuple[int, int]]:
    """``count`` written otherwise: another version, the same outputs."""
    m = n + 1
    return m, (x, m)


@statemachine(init=7)
def check_again(item: tuple[int, int, int], h: int) -> tuple[int, tuple[int, int, int, int]]:
    """``check`` written otherwise: another version, the same outputs."""
    x, n, t = item
    h2 = (h * 31 + x * 7 + n * 3 + t) % M
    return h2, (x, n, t, h2)


@arrow
def raises(t: int) -> int:
    """A migration that raises on the running state."""
    return 1 // (t - t)


@statemachine(init=0)
def count_pairs(item: tuple[int, int], n: int) -> tuple[int, tuple[int, int]]:
    """``count`` taking pairs: numbers their sums (the pipeline's input type changes)."""
    x, y = item
    return n + 1, (x + y, n + 1)
