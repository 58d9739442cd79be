"""More primitives of the standard library: ``math``, powers, repetition,
``partition``, ``strip(chars)`` and the other methods of ``str``,
``list.count``, ``list.index``, ``next(iter(x))``, ``int(s, base)``,
``hex``/``bin``/``oct`` and the ``repr`` of lists.

Part of layer 2 (arrows), beside :mod:`arrowloop.arrows._prims` (the
registry) and :mod:`arrowloop.arrows._strprims`; installed into the
process-wide registry when the package is imported. Each primitive calls
Python's own operation, so its results and exceptions are Python's, with
two kinds of exception, both raised as errors that fail the step:

* **size bounds**: ``a ** b`` of ints and ``s * n`` (repetition) compute in
  Python whatever they are asked, so a one-line program could ask for
  ``2 ** 10**12`` or ``"x" * 10**12`` and hold a server for hours. Here an
  int power whose result would have more than :data:`MAX_POW_BITS` bits
  and a repetition longer than :data:`MAX_REPEAT` items raise
  ``OverflowError`` instead (the limits are part of these primitives'
  meaning, hence of every version that names them);
* **types**: ``int ** negative int`` is a float in Python and a power of a
  negative number to a fractional exponent is a complex number; a program's
  types are fixed, so ``pow`` of ints raises ``ValueError`` on a negative
  exponent (write ``float(a) ** b``) and ``pow`` of floats raises
  ``ValueError`` where Python would give a complex.
"""

from __future__ import annotations

import builtins
import copy
import math
import operator
from typing import Any, Final

from arrowloop.arrows._prims import PRIMITIVES, Registry
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    MapT,
    TupleT,
    TVar,
    Type,
    values_equal,
)

__all__ = ["MAX_POW_BITS", "MAX_REPEAT", "install_math"]

#: The most bits an int power may have (``2 ** 65536`` is about 20,000 digits).
MAX_POW_BITS: Final = 1 << 16
#: The most items (characters of a str) a repetition ``s * n`` may make.
MAX_REPEAT: Final = 10_000_000

_A = TVar(0)
_K = TVar(1)
#: Values that hold no list, dict or set: repeated as they are.
_SHARABLE = (int, float, str, bool, type(None))


def _int_pow(a: int, b: int) -> int:
    if b < 0:
        if a == 0:
            raise ZeroDivisionError("0.0 cannot be raised to a negative power")  # Python's
        raise ValueError(
            f"{a} ** {b}: an int to a negative power is a float in Python, and this "
            "power was compiled as an int; write float(a) ** b"
        )
    if abs(a) > 1 and b * math.log2(abs(a)) > MAX_POW_BITS:
        raise OverflowError(
            f"{a} ** {b} has more than {MAX_POW_BITS} bits (the limit of pow on ints)"
        )
    result: int = a**b
    return result


def _float_pow(a: float, b: float) -> float:
    r = a**b
    if isinstance(r, complex):
        raise ValueError(
            f"{a!r} ** {b!r} is a complex number in Python (a negative base to a fractional "
            "power); arrowloop has no complex numbers"
        )
    return float(r)


def _repeat(xs: Any, n: int) -> Any:
    if n > 0 and len(xs) * n > MAX_REPEAT:
        raise OverflowError(
            f"repeating {len(xs)} items {n} times makes more than {MAX_REPEAT} (the limit of *)"
        )
    if isinstance(xs, list) and any(type(x) not in _SHARABLE for x in xs):
        # Values never share: each repetition of an item that may hold a
        # list or dict is a copy of it (Python's xs * n would repeat the one
        # object, which the front end refuses for that reason).
        return [copy.deepcopy(x) for _ in range(n) for x in xs]
    return xs * n


def _repeat_left(n: int, xs: Any) -> Any:
    return _repeat(xs, n)


def _lshift(a: int, b: int) -> int:
    if b >= 0 and a and a.bit_length() + b > MAX_POW_BITS:
        raise OverflowError(
            f"{a} << {b} has more than {MAX_POW_BITS} bits (the limit of << on ints)"
        )
    return a << b  # ValueError on a negative count, as Python


def _list_count(xs: list[Any], x: Any) -> int:
    # IEEE equality inside structures, like eq and list_has (docs/arrows.md, 5.3).
    return sum(1 for y in xs if values_equal(y, x))


def _first(xs: Any) -> Any:
    return next(iter(xs))  # StopIteration when empty, as Python's next(iter(xs))


def _first_or(xs: Any, default: Any) -> Any:
    return next(iter(xs), default)


def _unpack_check(xs: list[Any], n: int) -> list[Any]:
    # Python 3.11's messages (3.13 adds the count to the second): pinned,
    # so that a machine fails alike on every Python.
    if len(xs) < n:
        raise ValueError(f"not enough values to unpack (expected {n}, got {len(xs)})")
    if len(xs) > n:
        raise ValueError(f"too many values to unpack (expected {n})")
    return xs


def _list_index(xs: list[Any], x: Any) -> int:
    # IEEE equality inside structures, like list_has; Python's ValueError.
    for i, y in enumerate(xs):
        if values_equal(y, x):
            return i
    raise ValueError(f"{x!r} is not in list")


def _int_of_str_base(s: str, base: int) -> int:
    return int(s, base)


def _startswith_any(s: str, prefixes: list[str]) -> bool:
    return s.startswith(tuple(prefixes))


def _endswith_any(s: str, suffixes: list[str]) -> bool:
    return s.endswith(tuple(suffixes))


#: Methods of str taking no argument, by result type: registered under their
#: own names, each Python's method.
STR_NO_ARG: Final = {
    "capitalize": STR,
    "swapcase": STR,
    "casefold": STR,
    "isalnum": BOOL,
    "isupper": BOOL,
    "islower": BOOL,
    "isdecimal": BOOL,
    "isnumeric": BOOL,
    "isidentifier": BOOL,
    "isprintable": BOOL,
    "istitle": BOOL,
    "isascii": BOOL,
}
#: Methods of str taking one str, by result type.
STR_ONE_STR: Final = {
    "rfind": INT,
    "index": INT,
    "rindex": INT,
    "removeprefix": STR,
    "removesuffix": STR,
}
#: Methods of str taking a width (and optionally a fill character).
STR_WIDTH: Final = ("center", "ljust", "rjust")


def _install_str_methods(r: Registry) -> None:
    reg = r.register
    for m, out in STR_NO_ARG.items():
        reg(m, STR, out, getattr(str, m), doc=f"s.{m}()")
    for m, out in STR_ONE_STR.items():
        reg(m, TupleT((STR, STR)), out, getattr(str, m), doc=f"s.{m}(x)")
    for m in STR_WIDTH:
        reg(m, TupleT((STR, INT)), STR, getattr(str, m), doc=f"s.{m}(width[, fill])")
        reg(m, TupleT((STR, INT, STR)), STR, getattr(str, m))
    reg("zfill", TupleT((STR, INT)), STR, str.zfill, doc="s.zfill(width)")
    reg("splitlines", STR, ListT(STR), str.splitlines, result="fresh", doc="s.splitlines()")
    reg("rsplit", TupleT((STR, STR)), ListT(STR), str.rsplit, result="fresh", doc="s.rsplit(sep)")
    for m in ("split", "rsplit"):
        reg(m, TupleT((STR, STR, INT)), ListT(STR), getattr(str, m), result="fresh")
    reg("startswith_any", TupleT((STR, ListT(STR))), BOOL, _startswith_any)
    reg("endswith_any", TupleT((STR, ListT(STR))), BOOL, _endswith_any)
    reg("int_of_str_base", TupleT((STR, INT)), INT, _int_of_str_base, doc="int(s, base)")
    for m in ("hex", "bin", "oct"):
        reg(m, INT, STR, getattr(builtins, m), doc=f"{m}(n)")
    reg("is_integer", FLOAT, BOOL, float.is_integer, doc="x.is_integer()")
    reg("list_index", TupleT((ListT(_A), _A)), INT, _list_index, doc="xs.index(x)")


def install_math(r: Registry) -> None:
    """Register the primitives of this module in ``r``."""
    reg = r.register
    for a, b in ((FLOAT, FLOAT), (INT, FLOAT), (FLOAT, INT)):
        reg("pow", TupleT((a, b)), FLOAT, _float_pow, doc="a ** b")
    reg("pow", TupleT((INT, INT)), INT, _int_pow)
    for n in (INT, FLOAT):
        reg("math.sqrt", n, FLOAT, math.sqrt, doc="math.sqrt(x) (ValueError when x < 0)")
        reg("math.ceil", n, INT, math.ceil, doc="math.ceil(x): the smallest int >= x")
        reg("math.floor", n, INT, math.floor, doc="math.floor(x): the largest int <= x")
        reg("math.trunc", n, INT, math.trunc, doc="math.trunc(x): toward zero")
        reg("math.exp", n, FLOAT, math.exp, doc="math.exp(x)")
        reg("math.log", n, FLOAT, math.log, doc="math.log(x): natural (ValueError when x <= 0)")
        reg("math.log2", n, FLOAT, math.log2, doc="math.log2(x)")
        reg("math.log10", n, FLOAT, math.log10, doc="math.log10(x)")
    reg("math.isnan", FLOAT, BOOL, math.isnan, doc="math.isnan(x)")
    reg("math.isinf", FLOAT, BOOL, math.isinf, doc="math.isinf(x)")
    reg("math.isfinite", FLOAT, BOOL, math.isfinite, doc="math.isfinite(x)")
    pair = TupleT((INT, INT))
    reg("bit_and", pair, INT, operator.and_, template="({0} & {1})", doc="a & b of ints")
    reg("bit_or", pair, INT, operator.or_, template="({0} | {1})", doc="a | b of ints")
    reg("bit_xor", pair, INT, operator.xor, template="({0} ^ {1})", doc="a ^ b of ints")
    reg("rshift", pair, INT, operator.rshift, template="({0} >> {1})", doc="a >> b")
    reg("lshift", pair, INT, _lshift, doc="a << b (OverflowError past MAX_POW_BITS bits)")
    reg("invert", INT, INT, operator.invert, template="(~{0})", doc="~a")
    reg("repeat", TupleT((STR, INT)), STR, _repeat, doc="s * n (OverflowError past MAX_REPEAT)")
    reg("repeat", TupleT((INT, STR)), STR, _repeat_left)
    reg("repeat", TupleT((ListT(_A), INT)), ListT(_A), _repeat, result="fresh")
    reg("repeat", TupleT((INT, ListT(_A))), ListT(_A), _repeat_left, result="fresh")
    for m in ("strip", "lstrip", "rstrip"):
        reg(m, TupleT((STR, STR)), STR, getattr(str, m), doc=f"s.{m}(chars)")
    parts = TupleT((STR, STR, STR))
    reg("partition", TupleT((STR, STR)), parts, str.partition, doc="s.partition(sep)")
    reg("rpartition", TupleT((STR, STR)), parts, str.rpartition, doc="s.rpartition(sep)")
    reg(
        "map_of_items",
        ListT(TupleT((_K, _A))),
        MapT(_A, _K),
        dict,
        result="fresh",
        doc="dict(pairs), in the pairs' order (a later pair of a key replaces its value)",
    )
    reg(
        "unpack_check",
        TupleT((ListT(_A), INT)),
        ListT(_A),
        _unpack_check,
        result="same",
        doc="xs when it has n items, else Python's ValueError of a, b = xs",
    )
    reg("list_count", TupleT((ListT(_A), _A)), INT, _list_count, doc="xs.count(x)")
    collections: tuple[tuple[Type, Type], ...] = ((ListT(_A), _A), (MapT(_A, _K), _K), (STR, STR))
    for t, item in collections:
        reg("first", t, item, _first, result="element", doc="next(iter(x))")
        reg("first_or", TupleT((t, item)), item, _first_or)
    # Lists of scalars only: their repr is the same in every process (a set's
    # order, or a class's repr, need not be).
    for scalar in (INT, FLOAT, STR, BOOL):
        reg("repr", ListT(scalar), STR, repr)


install_math(PRIMITIVES)
_install_str_methods(PRIMITIVES)
