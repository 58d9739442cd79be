"""Changing methods used inside expressions: ``x = stack.pop() + stack.pop()``,
``return d, d.pop(k, -1)``, ``if flags.pop(k, False):``.

Part of the Python front end. A change is a statement of its own in the
translation (it rebinds the name it changes, frontend/_mutation.py), so a
statement that calls ``xs.pop(...)`` or ``d.setdefault(...)`` inside an
expression is rewritten into statements first, keeping Python's order of
evaluation exactly::

    stack.append(stack.pop() + stack.pop())     %h1 = stack.pop()
                                                %h2 = stack.pop()
                                                stack.append(%h1 + %h2)

Each such call is taken out into a temporary (``%h<n>``, a name no Python
code can spell, whose sharing the front end follows like any other name's).
What Python evaluates before the call is taken out before it, into
temporaries too, so it sees the values it saw in Python (``len(xs) +
xs.pop()`` reads the length first). Names, fields of names and constants
evaluated before it are left where they are: in Python they are references,
and the list or dict they hold is read when the expression uses it, after
the change, which is what reading the rebound name gives (``return d,
d.pop(k)`` returns the dict without ``k``). Only calls that Python always
evaluates are taken out: not those in the right operand of ``and``/``or``,
a branch of a conditional expression, a comprehension or a lambda, which
stay refused with the advice to write them as statements.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Sequence

from arrowloop.frontend._env import READS_CACHE, assigned, place_root, reads

__all__ = ["hoist", "split_targets", "alias", "cannot_fail", "HOISTED_PREFIX"]

#: The prefix of the temporaries hoisting makes up.
HOISTED_PREFIX = "%h"

#: Statement fields whose expression Python evaluates first (and always).
_FIELDS: dict[type[ast.stmt], str] = {
    ast.Assign: "value",
    ast.AnnAssign: "value",
    ast.Return: "value",
    ast.If: "test",
    ast.Match: "subject",
    ast.For: "iter",
    ast.Assert: "test",
    ast.Raise: "exc",
}


class _Hoister:
    def __init__(self, is_change: Callable[[ast.Call], bool], fresh: Callable[[], str]) -> None:
        self.is_change = is_change
        self.fresh = fresh
        self.pre: list[ast.stmt] = []

    def kids(self, e: ast.AST) -> list[ast.expr]:
        """What Python always evaluates of ``e``, in order; of a change, the
        keys of its place and its arguments (the place itself is changed,
        not taken out)."""
        if isinstance(e, ast.Call) and self.is_change(e):
            assert isinstance(e.func, ast.Attribute)
            return [*_place_parts(e.func.value), *e.args, *(k.value for k in e.keywords)]
        return _always(e)

    def changes(self, e: ast.AST) -> bool:
        """Whether Python always evaluates a call to take out inside ``e``."""
        stack = [e]  # not recursive: a 500-term sum is 500 levels deep
        while stack:
            x = stack.pop()
            if isinstance(x, ast.Call) and self.is_change(x):
                return True
            stack.extend(_always(x))
        return False

    def take(self, e: ast.expr) -> ast.Name:
        """``e`` evaluated into a new temporary, as a statement before."""
        name = self.fresh()
        store = ast.copy_location(ast.Name(id=name, ctx=ast.Store()), e)
        self.pre.append(ast.copy_location(ast.Assign(targets=[store], value=e), e))
        return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), e)

    def parts(self, e: ast.expr) -> ast.expr:
        """``e`` with the calls inside its parts taken out (in order), and
        the parts evaluated before the last such call taken out too."""
        kids = self.kids(e)
        last = max((i for i, c in enumerate(kids) if self.changes(c)), default=-1)
        new: dict[int, ast.expr] = {}
        for i, c in enumerate(kids[: last + 1]):
            c2 = self.expr(c)
            if i < last and not _deferrable(c2):
                c2 = self.take(c2)
            new[id(c)] = c2
        out = _rebuild(e, new)
        assert isinstance(out, ast.expr)
        return out

    def expr(self, e: ast.expr) -> ast.expr:
        """``e`` with its calls to take out taken out."""
        if not self.changes(e):
            return e
        out = self.parts(e)
        if isinstance(out, ast.Call) and self.is_change(out):
            return self.take(out)
        return out


def _place_parts(node: ast.expr) -> list[ast.expr]:
    """The keys of the place ``node`` (``d[k].xs``, ``d.setdefault(k, v)``),
    in Python's order; ``[node]`` for a value that is no place."""
    match node:
        case ast.Name():
            return []
        case ast.Attribute(value=v):
            return _place_parts(v)
        case ast.Subscript(value=v, slice=k):
            return [*_place_parts(v), k]
        case ast.Call(func=ast.Attribute(value=v, attr="setdefault"), args=args, keywords=[]):
            return [*_place_parts(v), *args]
    return [node]


def cannot_fail(e: ast.expr) -> bool:
    """Whether evaluating ``e`` cannot raise: a constant, a name, a field of
    one, a tuple of such, and ``-a``, ``a + b``, ``a - b`` of such (numbers,
    strings and tuples, the types having been checked)."""
    match e:
        case ast.UnaryOp(op=ast.USub() | ast.UAdd(), operand=a):
            return cannot_fail(a)
        case ast.BinOp(left=a, op=ast.Add() | ast.Sub(), right=b):
            return cannot_fail(a) and cannot_fail(b)
    return _deferrable(e)


def _deferrable(e: ast.expr) -> bool:
    """Whether ``e`` may be evaluated after a later change of the same
    statement with the same result: a constant, or a name (or a field of
    one, or a display of such) whose list or dict Python reads only when
    the expression uses it."""
    match e:
        case ast.Constant() | ast.Name():
            return True
        case ast.Attribute(value=v):
            return _deferrable(v) and not isinstance(v, ast.Constant)
        case ast.Tuple(elts=elts) | ast.List(elts=elts):
            return all(_deferrable(x) for x in elts)
    return False


def _always(e: ast.AST) -> list[ast.expr]:
    """The sub-expressions Python always evaluates when it evaluates ``e``,
    in order (the others are left alone)."""
    match e:
        case ast.BoolOp(values=values):
            return [values[0]]
        case ast.IfExp(test=test):
            return [test]
        case ast.Compare(left=left, comparators=comps):
            return [left, comps[0]]
        case ast.Lambda() | ast.ListComp() | ast.SetComp() | ast.DictComp() | ast.GeneratorExp():
            return []
        case ast.Call(func=func, args=args, keywords=kws):
            head = [func.value] if isinstance(func, ast.Attribute) else [func]
            return [*head, *args, *(k.value for k in kws)]
        case ast.Dict(keys=keys, values=values):
            out: list[ast.expr] = []
            for k, v in zip(keys, values, strict=True):
                out += [v] if k is None else [k, v]
            return out
    return [c for c in ast.iter_child_nodes(e) if isinstance(c, ast.expr)]


def _rebuild(node: ast.AST, new: dict[int, ast.expr]) -> ast.AST:
    """``node`` with the nodes in ``new`` (by identity) replaced, copying
    only what changes."""
    if id(node) in new:
        return new[id(node)]
    if not new:
        return node
    fields: dict[str, object] = {}
    changed = False
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            items = [_rebuild(x, new) if isinstance(x, ast.AST) else x for x in value]
            changed |= any(a is not b for a, b in zip(items, value, strict=True))
            fields[name] = items
        elif isinstance(value, ast.AST):
            fields[name] = _rebuild(value, new)
            changed |= fields[name] is not value
        else:
            fields[name] = value
    if not changed:
        return node
    return ast.copy_location(type(node)(**fields), node)


def hoist(
    s: ast.stmt, is_change: Callable[[ast.Call], bool], fresh: Callable[[], str]
) -> list[ast.stmt] | None:
    """``s`` as statements that call the changing methods ``is_change``
    accepts only as statements of their own (``x = xs.pop()``), or ``None``
    when ``s`` has no such call inside an expression."""
    h = _Hoister(is_change, fresh)
    field = _FIELDS.get(type(s))
    value = getattr(s, field, None) if field is not None else None
    if isinstance(s, ast.Expr | ast.Assign) and isinstance(s.value, ast.Call):
        call = s.value
        top = isinstance(call.func, ast.Attribute) and (isinstance(s, ast.Expr) or is_change(call))
        if top and (isinstance(s, ast.Expr) or isinstance(s.targets[0], ast.Name)):
            # The call is the statement (xs.append(...), x = d.pop(k)): only
            # the keys of its place and its arguments may need taking out.
            h.is_change = lambda c: c is call or is_change(c)
            if not any(h.changes(c) for c in h.kids(call)):
                return None
            body = h.parts(call)
            return [*h.pre, _with(s, "value", body)]
    if isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name):
        # n += xs.pop(): Python reads n first, which the change leaves alone
        # (or, for n the list itself, reads its list after the change).
        field, value = "value", s.value
    if not isinstance(value, ast.expr) or not h.changes(value):
        return None
    assert field is not None
    new = h.expr(value)
    return [*h.pre, _with(s, field, new)]


def _with(s: ast.stmt, field: str, value: ast.expr) -> ast.stmt:
    """A copy of ``s`` with ``field`` set to ``value``."""
    return ast.copy_location(type(s)(**{**dict(ast.iter_fields(s)), field: value}), s)


def split_targets(s: ast.stmt, fresh: Callable[[], str]) -> list[ast.stmt] | None:
    """``xs[i] = xs[j] = v`` as ``%h = v``, ``xs[i] = %h``, ``xs[j] = %h``
    (Python evaluates the value once, then assigns the targets from left to
    right), or ``None`` for other statements."""
    if not isinstance(s, ast.Assign) or len(s.targets) < 2:
        return None
    if all(isinstance(t, ast.Name | ast.Tuple | ast.List) for t in s.targets):
        return None
    h = _Hoister(lambda c: False, fresh)
    value = h.take(s.value)
    return [
        *h.pre,
        *(ast.copy_location(ast.Assign(targets=[t], value=value), t) for t in s.targets),
    ]


def alias(
    s: ast.stmt,
    rest: Sequence[ast.stmt],
    read_after: frozenset[str],
    is_container: Callable[[ast.expr], bool],
    fresh: Callable[[], str],
) -> list[ast.stmt] | None:
    """``x = d.setdefault(k, [])`` (or ``x = d[k]``, ``x = r.items``) then
    ``rest``, with ``x`` read as the place it names, when ``rest`` changes
    the list or dict through ``x`` and reads ``d``; else ``None``.

    In Python ``x`` and ``d[k]`` are one list: a change through ``x`` shows
    in ``d``. The translation writes it as Python means it: ``rest`` with
    ``d[%h]`` for ``x`` (``%h`` the key, evaluated once, here), so a change
    through ``x`` changes ``d``'s entry. That is Python's meaning as long as
    the entry stays the list ``x`` names, so it is done only when ``rest``
    neither rebinds ``x`` nor rebinds or otherwise changes ``d``, and
    nothing after ``rest`` reads ``x`` (``read_after``, unless ``rest`` ends
    in ``return`` or ``raise``); ``is_container``
    says that ``x``'s value holds a list, dict or set and is a place.
    """
    match s:
        case ast.Assign(targets=[ast.Name(id=x)], value=value):
            pass
        case _:
            return None
    ends = [i for i, st in enumerate(rest) if isinstance(st, ast.Return | ast.Raise)]
    tail: Sequence[ast.stmt] = ()
    if ends:
        # Nothing after a return runs (the translation may put the code
        # after an if into a branch that returns), nor after the block.
        rest, tail, read_after = rest[: ends[0] + 1], rest[ends[0] + 1 :], frozenset()
    root = place_root(value)
    if root is None or root == x or isinstance(value, ast.Name) or x in read_after:
        return None
    changed = assigned(rest)
    if x not in changed or root in changed or _binds(rest, x):
        return None
    if root not in reads(rest) and root not in read_after:
        return None
    pre: list[ast.stmt] = []
    place = _frozen(value, pre, fresh)
    if place is None or not is_container(value):
        return None
    return [*pre, *(_substitute(st, x, place) for st in rest), *tail]


def _frozen(e: ast.expr, pre: list[ast.stmt], fresh: Callable[[], str]) -> ast.expr | None:
    """The place ``e`` with its keys evaluated once into temporaries (taken
    out into ``pre``, with the read or ``setdefault`` that Python makes
    when it binds the name); ``None`` for keys that might raise."""
    h = _Hoister(lambda c: False, fresh)
    out = _freeze(e, h)
    if out is None:
        return None
    if not (isinstance(e, ast.Call) or isinstance(out, ast.Attribute)):
        h.take(out)  # d[k] raises KeyError here, as in Python
    pre += h.pre
    return out


def _freeze(e: ast.expr, h: _Hoister) -> ast.expr | None:
    match e:
        case ast.Name():
            return e
        case ast.Attribute(value=v, attr=f):
            inner = _freeze(v, h)
            if inner is None:
                return None
            return ast.copy_location(ast.Attribute(inner, f, ast.Load()), e)
        case ast.Subscript(value=v, slice=k) if _deferrable(k) and not isinstance(k, ast.Tuple):
            inner = _freeze(v, h)
            if inner is None:
                return None
            key = k if isinstance(k, ast.Constant) else h.take(k)
            return ast.copy_location(ast.Subscript(inner, key, ast.Load()), e)
        case ast.Call(
            func=ast.Attribute(value=v, attr="setdefault"), args=[k, default], keywords=[]
        ) if _deferrable(k) and not isinstance(k, ast.Tuple):
            inner = _freeze(v, h)
            if inner is None:
                return None
            key = k if isinstance(k, ast.Constant) else h.take(k)
            call = ast.Call(ast.Attribute(inner, "setdefault", ast.Load()), [key, default], [])
            h.pre.append(ast.copy_location(ast.Expr(ast.copy_location(call, e)), e))
            return ast.copy_location(ast.Subscript(inner, key, ast.Load()), e)
    return None


def _binds(stmts: Sequence[ast.stmt], name: str) -> bool:
    """Whether ``stmts`` bind ``name`` (not only change what it holds)."""
    for st in stmts:
        for sub in ast.walk(st):
            if isinstance(sub, ast.Name) and sub.id == name and not isinstance(sub.ctx, ast.Load):
                return True
            if isinstance(sub, ast.MatchAs | ast.MatchStar) and sub.name == name:
                return True
            if isinstance(sub, ast.arg) and sub.arg == name:
                return True
    return False


class _Substitute(ast.NodeTransformer):
    def __init__(self, name: str, place: ast.expr) -> None:
        self.name = name
        self.place = place

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id != self.name:
            return node
        new = copy.deepcopy(self.place)
        for sub in ast.walk(new):
            ast.copy_location(sub, node)
        _set_ctx(new, node.ctx)
        return new


def _set_ctx(e: ast.expr, ctx: ast.expr_context) -> None:
    """Load for the inner parts of a place, ``ctx`` for the outermost."""
    for sub in ast.walk(e):
        if isinstance(sub, ast.Name | ast.Attribute | ast.Subscript):
            sub.ctx = ast.Load()
    if isinstance(e, ast.Name | ast.Attribute | ast.Subscript):
        e.ctx = ctx


def _substitute(s: ast.stmt, name: str, place: ast.expr) -> ast.stmt:
    """A copy of ``s`` reading ``place`` wherever it reads ``name``."""
    new = copy.deepcopy(s)
    for sub in ast.walk(new):
        sub.__dict__.pop(READS_CACHE, None)  # the copy reads other names
    out = _Substitute(name, place).visit(new)
    assert isinstance(out, ast.stmt)
    return out
