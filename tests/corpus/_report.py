"""Compiling the corpus, and the report and the pinned refusals made from it.

Part of the corpus of issue 13: ``compile_corpus`` decorates every entry
(catching the front end's refusals), ``pin_lines`` gives the lines of
EXPECTED_REFUSALS.txt (one per refused entry: its name and its first
refusal), ``report`` the human report: the acceptance rate, the refusal
reasons grouped and counted, and every refusal of every entry.
"""

from __future__ import annotations

import re
from collections import Counter

import attrs

import arrowloop
from arrowloop import FrontendError, PyMachine
from tests.corpus._entry import CorpusEntry


@attrs.frozen
class Compiled:
    """What the front end made of one entry: a machine, or its refusals (reasons)."""

    entry: CorpusEntry
    machine: PyMachine | None
    refusals: tuple[str, ...]
    internal: bool = False


def _stable(reason: str) -> str:
    """The first line of a reason, without the line numbers it may quote.

    A pinned reason must not change when a function above it in the corpus
    grows a line, so ``since line 342: ...`` is pinned as ``since line N: ...``.
    """
    first = reason.strip().splitlines()[0] if reason.strip() else "(no message)"
    return re.sub(r"\bline \d+", "line N", first)


def compile_entry(entry: CorpusEntry) -> Compiled:
    """Decorate ``entry.fn`` with ``statemachine(init=entry.init)``; refusals are recorded."""
    try:
        machine = arrowloop.statemachine(init=entry.init)(entry.fn)
    except FrontendError as err:
        return Compiled(entry, None, tuple(_stable(r.reason or str(r)) for r in err.refusals))
    except Exception as err:  # the front end must never fail this way: reported, not hidden
        return Compiled(entry, None, (f"internal error: {type(err).__name__}: {err}",), True)
    return Compiled(entry, machine, ())


def compile_corpus(entries: list[CorpusEntry]) -> list[Compiled]:
    """Every entry compiled, in corpus order."""
    return [compile_entry(e) for e in entries]


def pin_lines(results: list[Compiled]) -> list[str]:
    """The lines of EXPECTED_REFUSALS.txt: ``name: first refusal``, sorted by name."""
    return sorted(f"{r.entry.name}: {r.refusals[0]}" for r in results if r.machine is None)


#: Refusal reasons grouped into what the front end would need (pattern, group),
#: first match wins; a reason that matches none is its own group.
GROUPS: tuple[tuple[str, str], ...] = (
    (r"^internal error", "internal errors (bugs)"),
    (
        r"return annotation tuple\[.*\| None, Output\]",
        "optional state: return T where the state is T | None",
    ),
    (r"set\[", "set types"),
    (r"maps must have str keys", "dicts with non-str keys"),
    (r"a union's members are frozen attrs", "unions mixing records and scalars"),
    (r"^isinstance ", "isinstance"),
    (r"^the method \w+ of str", "more str methods (lstrip, isdigit, partition, ...)"),
    (r"^the method \w+ of ", "methods of the user's attrs classes"),
    (r"^f-strings", "f-strings"),
    (r"comprehensions|generator expressions", "comprehensions and generator expressions"),
    (r"^lambda", "lambda (key= of sorted/min/max)"),
    (
        r"^(sorted|round|ord|next|range|enumerate|zip|any|all|reversed|set|tuple) cannot be called",
        "builtins (sorted, round, ord, next, ...)",
    ),
    (r"^math\.\w+ cannot be called", "math functions"),
    (r"cannot be called here", "plain module-level helper functions"),
    (r"^(min|max) takes 2", "min/max of one iterable"),
    (r"^sum takes a list\[int\]", "sum of floats without a start"),
    (r"^slices", "slices"),
    (r"^'in' works on", "`in` on lists and tuples"),
    (r"bool condition", "truthiness (conditions that are not bool)"),
    (r"^while loops", "while loops"),
    (r"^(break|continue)", "break/continue in loops"),
    (r"^(raise|assert)", "raise/assert"),
    (r"cannot be used as a constant", "module-level dict/list constants"),
    (r"changes \w+: write it as a statement", "changing methods inside expressions (a.pop() + b)"),
    (r"list\.remove|list\.insert|item assignment", "list.remove/insert, chained assignment"),
    (r"may be the same list or dict", "aliasing between names"),
    (r"split\(\) without a separator", "str.split() without a separator"),
    (r"expected a value of type float, found int", "int where a float is expected"),
    (r"operator \*\*|bitwise", "** and bitwise operators"),
    (r"int\(\.\.\.\) of str|float\(\.\.\.\) of str", "int(str), float(str)"),
    (r"different types on different paths|found .* \| None", "narrowing of optionals"),
    (r"\.pop with 1 argument", "xs.pop(i)"),
    (
        r"cannot read \.\w+ of a value of the variant type \w+ \|",
        "fields of a union after isinstance",
    ),
    (r"cannot read \.value of", "enum .value"),
    (r"calling the class", "builtins (sorted, round, ord, next, ...)"),
    (
        r"expected a value of type int, found None",
        "d.pop(k, None) on a dict of non-optional values",
    ),
    (r"^'is' is only", "`is` on enum members"),
    (r"cannot tell the item type of \[\]", "an empty list's item type from later use"),
    (r"may be unbound here", "follows from another refusal (a name it would have bound)"),
    (r"^del xs\[i\]", "del xs[i]"),
    (r"expected a value of type str, found tuple", "a dict display with tuple keys"),
    (r"to unpack, found list", "unpacking a list"),
    (r"operator \* expected .* found str, int", "str * int"),
    (r"list to copy .* found dict", "list(d), the keys of a dict"),
)


def group_of(reason: str) -> str:
    """The group a refusal reason belongs to (GROUPS), or the reason's first clause."""
    for pattern, group in GROUPS:
        if re.search(pattern, reason):
            return group
    return reason.split(";")[0]


def report(results: list[Compiled]) -> str:
    """The report: acceptance overall and per style, reasons by count, then every refusal.

    A group's count is the number of entries with at least one refusal in
    it; "alone" counts the entries whose every refusal is in that group,
    i.e. which that work alone would let through (as far as the front end
    reports: a refused loop header hides what its body would add).
    """
    total = len(results)
    ok = sum(r.machine is not None for r in results)
    lines = [f"corpus acceptance: {ok}/{total} compiled ({100 * ok / total:.0f}%)", ""]
    styles: dict[str, list[Compiled]] = {}
    for r in results:
        styles.setdefault(r.entry.style, []).append(r)
    lines += [
        f"  {style:<14} {sum(r.machine is not None for r in rs):>3}/{len(rs)}"
        for style, rs in styles.items()
    ]
    affected: Counter[str] = Counter()
    alone: Counter[str] = Counter()
    for r in results:
        groups = {group_of(reason) for reason in r.refusals}
        affected.update(groups)
        if len(groups) == 1:
            alone.update(groups)
    lines += [
        "",
        "refusal groups (entries affected, entries blocked by it alone; a refused",
        "signature or loop header hides the body's refusals, so 'alone' is an upper bound):",
    ]
    lines += [f"  {n:>3} {alone[g]:>3}  {g}" for g, n in affected.most_common()]
    lines += ["", "refused entries:"]
    for r in results:
        if r.machine is None:
            lines.append(f"  {r.entry.name}")
            lines += [f"      {reason}" for reason in r.refusals]
    return "\n".join(lines) + "\n"
