"""The simplifier: rewrites an arrow program into a smaller, equivalent one.

Layer 2 (arrows): a pure IR-to-IR rewrite, used on the output of the Python
front end (whose environment passing leaves many tuples that are built only
to be taken apart) and usable on any program. It runs before the checker and
the code generator and needs neither.

The laws it applies, bottom up until nothing changes:

* identity: ``id >> f = f = f >> id``; nested compositions are flattened;
  ``split(id, ..., id) = id``; ``fanout(proj(0, n), ..., proj(n-1, n)) = id``;
  ``map(id) = id``.
* projection of a tuple: ``fanout(f0, ..., fn) >> proj(i) = fi`` and
  ``split(f0, ..., fn) >> proj(i) = proj(i) >> fi``, when the other parts
  are *droppable*; ``const(v) >> proj(i)`` and ``const(r) >> get(f)`` fold.
* fusion: ``fanout(fs) >> split(gs) = fanout(f >> g, ...)``,
  ``split(fs) >> split(gs) = split(f >> g, ...)``, and a fanout feeding a
  fanout whose parts read it through projections becomes one fanout; a
  fanout whose parts all start with the same projection reads it once.
* constants and dead branches: ``f >> const(c) = const(c)`` for droppable
  ``f`` (likewise for building a record without fields); a tuple of
  projections feeding an ``if`` is copied into its three parts;
  ``if(const(b), t, e)`` is ``t`` or ``e``; an injection (or a constant of
  a variant) followed by a ``case`` is the matching branch.

A part is *droppable* when evaluating it can neither raise nor have an
effect: structure, constants, injections, field reads. Primitives are never
dropped (``x // 0`` raises even when its result is unused), nor are record
constructions and updates (they run the record class's validators). A law
that would reorder two parts that may raise is not applied, so a program
raises exactly when, and with the same error as, the original; and on a
well-typed program the result has the same type.
"""

from __future__ import annotations

from collections.abc import Callable

from arrowloop.arrows._nodes import (
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    Fanout,
    Fold,
    GetField,
    Id,
    If,
    Inject,
    Loop,
    MakeRecord,
    MapList,
    Proj,
    Split,
    While,
)
from arrowloop.typesys import BOOL, RecordT, TupleT, VariantT, tag_and_payload

__all__ = ["simplify", "simplify_loop", "map_children", "droppable", "MAX_PASSES"]

#: Upper bound on the bottom-up passes (each pass strictly shrinks or
#: flattens the program; real programs settle in a handful).
MAX_PASSES = 64


def map_children(node: Arrow, fn: Callable[[Arrow], Arrow]) -> Arrow:
    """``node`` with ``fn`` applied to each direct sub-program.

    Returns ``node`` itself when ``fn`` changed nothing, so sharing survives.
    Leaf nodes (and node classes without sub-programs) come back unchanged.
    """
    match node:
        case Compose(steps=parts) | Split(parts=parts) | Fanout(parts=parts):
            new = tuple(fn(p) for p in parts)
            if all(a is b for a, b in zip(new, parts, strict=True)):
                return node
            return type(node)(new)
        case Case(branches=branches):
            newb = tuple((tag, fn(b)) for tag, b in branches)
            if all(a[1] is b[1] for a, b in zip(newb, branches, strict=True)):
                return node
            return Case(newb)
        case If(cond=c, then=t, orelse=e):
            nc, nt, ne = fn(c), fn(t), fn(e)
            if nc is c and nt is t and ne is e:
                return node
            return If(nc, nt, ne)
        case MapList(fn=f):
            nf = fn(f)
            return node if nf is f else MapList(nf)
        case Fold(fn=f):
            nf = fn(f)
            return node if nf is f else Fold(nf)
        case While(cond=c, body=b):
            nc, nb = fn(c), fn(b)
            return node if nc is c and nb is b else While(nc, nb)
    return node


def droppable(node: Arrow) -> bool:
    """Whether evaluating ``node`` on a well-typed input never raises.

    Such a part can be removed when its result is unused without changing
    what the program does.
    """
    match node:
        case Id() | Proj() | Const() | Inject() | Distribute() | GetField():
            return True
        case Compose(steps=parts) | Split(parts=parts) | Fanout(parts=parts):
            return all(droppable(p) for p in parts)
        case If(cond=c, then=t, orelse=e):
            return droppable(c) and droppable(t) and droppable(e)
        case Case(branches=branches):
            return all(droppable(b) for _, b in branches)
        case MapList(fn=f) | Fold(fn=f):
            return droppable(f)
    return False


def _cheap(node: Arrow) -> bool:
    # Free to evaluate twice: the code generator turns these into names.
    match node:
        case Id() | Proj() | Const():
            return True
        case Compose(steps=parts) | Fanout(parts=parts):
            return all(_cheap(p) for p in parts)
    return False


def _compose(*steps: Arrow) -> Arrow:
    flat: list[Arrow] = []
    for s in steps:
        flat.extend(s.steps if isinstance(s, Compose) else (s,))
    flat = [s for s in flat if not isinstance(s, Id)]
    if not flat:
        return Id()
    return flat[0] if len(flat) == 1 else Compose(tuple(flat))


def _lead_proj(node: Arrow, n: int) -> tuple[int, tuple[Arrow, ...]] | None:
    """``(j, rest)`` when ``node`` is ``proj(j, n) >> rest``."""
    if isinstance(node, Proj) and node.arity == n:
        return node.index, ()
    if isinstance(node, Compose):
        head = node.steps[0]
        if isinstance(head, Proj) and head.arity == n:
            return head.index, node.steps[1:]
    return None


def _push_fanout(fs: tuple[Arrow, ...], gs: tuple[Arrow, ...]) -> Arrow | None:
    """``fanout(fs) >> fanout(gs)`` as one fanout, if that is exact and cheap."""
    n = len(fs)
    uses = [0] * n
    plan: list[tuple[int, tuple[Arrow, ...]] | Arrow] = []
    order: list[int] = []
    for g in gs:
        lead = _lead_proj(g, n)
        if lead is not None:
            uses[lead[0]] += 1
            order.append(lead[0])
            plan.append(lead)
        elif isinstance(g, Const):
            plan.append(g)
        else:
            uses = [u + 1 for u in uses]
            order.extend(range(n))
            plan.append(g)
    for j, f in enumerate(fs):
        if uses[j] == 0 and not droppable(f):
            return None
        if uses[j] >= 2 and not _cheap(f):
            return None
    risky_f = [j for j in order if not droppable(fs[j])]
    if risky_f != sorted(risky_f):
        return None
    rests = [p[1] for p in plan if isinstance(p, tuple)]
    others = [p for p in plan if not isinstance(p, tuple)]
    if risky_f and not all(droppable(_compose(*r)) for r in rests):
        return None
    if risky_f and not all(droppable(o) for o in others):
        return None
    parts = []
    for p in plan:
        if isinstance(p, tuple):
            parts.append(_compose(fs[p[0]], *p[1]))
        elif isinstance(p, Const):
            parts.append(p)
        else:
            parts.append(_compose(Fanout(fs), p))
    return Fanout(tuple(parts))


def _fuse(a: Arrow, b: Arrow) -> list[Arrow] | None:
    """A replacement for the adjacent steps ``a >> b``, or ``None``."""
    if isinstance(b, Const) and droppable(a):
        return [b]
    if isinstance(b, MakeRecord) and not b.record.fields and droppable(a):
        return [b]  # a record without fields ignores its input
    if isinstance(b, If) and isinstance(a, Fanout) and _cheap(a):
        # Copying a tuple of projections is free, and lets each branch fuse.
        return [If(_compose(a, b.cond), _compose(a, b.then), _compose(a, b.orelse))]
    if isinstance(b, Proj):
        if isinstance(a, Fanout | Split) and len(a.parts) == b.arity:
            others = [p for k, p in enumerate(a.parts) if k != b.index]
            if all(droppable(p) for p in others):
                part = a.parts[b.index]
                return [part] if isinstance(a, Fanout) else [b, part]
        if (
            isinstance(a, Const)
            and isinstance(a.type, TupleT)
            and len(a.type.items) == b.arity
            and isinstance(a.value, tuple)
            and len(a.value) == b.arity
        ):
            return [Const(a.type.items[b.index], a.value[b.index])]
    if (
        isinstance(b, Split)
        and isinstance(a, Fanout | Split)
        and len(a.parts) == len(b.parts)
        and (all(droppable(p) for p in a.parts) or all(droppable(p) for p in b.parts))
    ):
        fused = tuple(_compose(f, g) for f, g in zip(a.parts, b.parts, strict=True))
        return [Fanout(fused) if isinstance(a, Fanout) else Split(fused)]
    if isinstance(a, Fanout) and isinstance(b, Fanout):
        pushed = _push_fanout(a.parts, b.parts)
        return None if pushed is None else [pushed]
    if isinstance(b, GetField) and isinstance(a, Const) and isinstance(a.type, RecordT):
        ft = a.type.field_type(b.field)
        if ft is not None:
            return [Const(ft, getattr(a.value, b.field))]
    if isinstance(b, Case):
        branches = dict(b.branches)
        if isinstance(a, Inject) and a.tag in branches:
            return [branches[a.tag]]
        if isinstance(a, Const) and isinstance(a.type, VariantT):
            try:
                tag, payload = tag_and_payload(a.value)
            except TypeError:
                return None
            pt = a.type.payload(tag)
            if pt is not None and tag in branches:
                return [Const(pt, payload), branches[tag]]
    return None


def _simplify_compose(node: Compose) -> Arrow:
    steps: list[Arrow] = []
    for s in node.steps:
        steps.extend(s.steps if isinstance(s, Compose) else (s,))
    steps = [s for s in steps if not isinstance(s, Id)]
    changed = len(steps) != len(node.steps)
    i = 0
    while i + 1 < len(steps):
        repl = _fuse(steps[i], steps[i + 1])
        if repl is None:
            i += 1
            continue
        changed = True
        steps[i : i + 2] = [s for r in repl for s in (r.steps if isinstance(r, Compose) else (r,))]
        steps = [s for s in steps if not isinstance(s, Id)]
        i = max(i - 1, 0)
    return _compose(*steps) if changed else node


def _simplify_fanout(node: Fanout) -> Arrow:
    parts = node.parts
    n = len(parts)
    if all(isinstance(p, Proj) and p.index == k and p.arity == n for k, p in enumerate(parts)):
        return Id()
    heads = [p.steps[0] if isinstance(p, Compose) else None for p in parts]
    first = heads[0]
    if isinstance(first, Proj) and all(h == first for h in heads):
        rest = [_compose(*p.steps[1:]) for p in parts if isinstance(p, Compose)]
        return _compose(first, Fanout(tuple(rest)))
    return node


def _local(node: Arrow) -> Arrow:
    match node:
        case Compose():
            return _simplify_compose(node)
        case Fanout():
            return _simplify_fanout(node)
        case Split(parts=parts) if all(isinstance(p, Id) for p in parts):
            return Id()
        case If(cond=Const(type=t, value=v), then=then, orelse=orelse) if t == BOOL:
            return then if v is True else orelse
        case MapList(fn=Id()):
            return Id()
    return node


class _Pass:
    def __init__(self) -> None:
        self.memo: dict[int, tuple[Arrow, Arrow]] = {}
        self.changed = False

    def visit(self, node: Arrow) -> Arrow:
        hit = self.memo.get(id(node))
        if hit is not None:
            return hit[1]
        out = _local(map_children(node, self.visit))
        if out is not node:
            self.changed = True
        self.memo[id(node)] = (node, out)
        return out


def simplify(arrow: Arrow) -> Arrow:
    """An equivalent, usually smaller program (see the module docstring)."""
    for _ in range(MAX_PASSES):
        p = _Pass()
        arrow = p.visit(arrow)
        if not p.changed:
            break
    return arrow


def simplify_loop(loop: Loop) -> Loop:
    """``loop`` with its body simplified (state type and initial state kept)."""
    body = simplify(loop.body)
    return loop if body is loop.body else Loop(body, loop.state, loop.init)
