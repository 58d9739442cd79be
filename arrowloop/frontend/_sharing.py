"""Which names may share a list or dict, and how: the check that keeps
Python's sharing and arrowloop's value semantics from parting ways.

Part of the Python front end (see frontend/_mutation.py for the changes
themselves). Every assignment (and every change that stores a value into a
container) of a value that may hold lists or dicts records, over the whole
function, a link between the name it binds and each name the value may share
with, labelled with how:

- ``same``: the name may hold that name's very list or dict (``e = d``);
- ``part``: it may hold a list or dict inside it (``x = d[k]``, ``for x in
  xs``, ``top = d.get(k, [])``), ``part:i`` when it is the item ``i`` of a
  tuple parameter (``a, b = s``);
- ``holder``: it holds that name's list or dict inside it (``t = (xs, 1)``,
  ``d[k] = xs``), ``holder:i`` the other way round from ``part:i``;
- ``any``: anything else.

A change through a name (``root``) conflicts with each name linked to it
(through any chain of links) that is read later, except where no chain can
reach what the change changes:

- a change of ``root``'s own list or dict (``d[k] = v``, ``del d[k]``,
  ``xs.pop(0)``) does not change a list or dict *inside* it, so it leaves
  names linked only as ``part`` alone (``sides = s[key]`` then ``del
  s[key]``: ``sides`` keeps its dict, in Python too);
- two items of a tuple parameter at different places (``orders, shipments =
  s``) are different lists: a step's state and input are values, in which
  nothing is held twice (a stage never gives a step a state with one list
  at two places).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from arrowloop.compiler import mutable
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import Env, assigned, place_root
from arrowloop.frontend._patterns import Patterns
from arrowloop.typesys import ListT, MapT, SetT

__all__ = ["Sharing", "Change"]

T = TypeVar("T")

SAME, PART, HOLDER, ANY = "same", "part", "holder", "any"


@attrs.frozen
class Change:
    """A change of a name's list or dict, to check once the function is translated."""

    root: str
    node: ast.AST
    others: frozenset[str]  # names read after it, of types that hold lists or dicts
    top_only: bool  # whether only root's own list or dict changes (none inside it)


def _inverse(rel: str) -> str:
    if rel.startswith(PART):
        return HOLDER + rel[len(PART) :]
    if rel.startswith(HOLDER):
        return PART + rel[len(HOLDER) :]
    return rel


def compose(x: str, y: str) -> str | None:
    """How ``o`` relates to ``r`` when ``o`` relates to ``n`` as ``x`` and
    ``n`` to ``r`` as ``y``; ``None`` when they cannot share."""
    if x == SAME:
        return y
    if y == SAME:
        return x
    if x.startswith(PART) and y.startswith(HOLDER):
        # o and r are both inside n: different items of a tuple parameter
        # are different values; the same item is the same one.
        xi, yi = x[len(PART) :], y[len(HOLDER) :]
        if xi and yi:
            return None if xi != yi else SAME
        return ANY
    if x.startswith(PART) and y.startswith(PART):
        return PART
    if x.startswith(HOLDER) and y.startswith(HOLDER):
        return HOLDER
    return ANY


def _relative(how: str, srcs: dict[str, str]) -> dict[str, str]:
    """The sources of a value related as ``how`` to one with sources ``srcs``."""
    out: dict[str, str] = {}
    for n, r in srcs.items():
        c = compose(how, r)
        if c is not None:
            out[n] = c
    return out


def _join(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    out = dict(a)
    for n, r in b.items():
        out[n] = r if out.get(n, r) == r else ANY
    return out


class Sharing(Patterns):
    """The links between names and the check of changes against them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # name -> name -> (where the first link began, how it may share)
        self._shares: dict[str, dict[str, tuple[ast.AST, set[str]]]] = {}
        self._changes: list[Change] = []
        # the temporaries of expressions taken out of statements: their text
        self.hoisted: dict[str, str] = {}
        # names of the blocks around a loop body that hold lists or dicts but
        # are not in the body's env (it carries only what it reads or changes)
        self.outer_holders: frozenset[str] = frozenset()

    def loop_body(self, env: Env, carried: Sequence[str], translate: Callable[[], T]) -> T:
        """``translate()`` of a loop body whose env holds only ``carried`` of
        ``env``'s names: the others that hold lists or dicts stay known to the
        sharing check, so that ``for row in rows: row.append(x)`` with
        ``rows`` read later is seen as a change of ``rows``' items."""
        saved = self.outer_holders
        self.outer_holders = saved | {
            n for n in env.names() if n not in carried and mutable(env.type_of(n))
        }
        try:
            return translate()
        finally:
            self.outer_holders = saved

    def may_hold(self, name: str, env: Env) -> bool:
        """Whether ``name`` may hold a list or dict where ``env`` is in scope."""
        if env.find(name) is not None:
            return mutable(env.type_of(name))
        return name in self.outer_holders

    def mark(self) -> dict[str, Any]:
        """Also the changes and sharing noted so far."""
        return {
            **super().mark(),
            "changes": len(self._changes),
            "shares": {
                k: {o: (w, set(r)) for o, (w, r) in v.items()} for k, v in self._shares.items()
            },
        }

    def forget(self, mark: dict[str, Any]) -> None:
        super().forget(mark)
        del self._changes[mark["changes"] :]
        self._shares = mark["shares"]

    def note_sharing(
        self,
        name: str,
        value: ast.expr | None,
        node: ast.AST,
        env: Env,
        how: str = SAME,
    ) -> None:
        """``name`` now holds the value of ``value`` (``how`` is ``same``),
        a part of it (``part``, ``part:i`` for the item ``i`` of a tuple
        parameter), or holds it inside (``holder``): record which names it
        may share a list or dict with."""
        if value is None or name.startswith("$"):
            # Names the front end makes up (a loop's saved return value, an
            # assignment's evaluated value) are used once, where it decides.
            return
        for other, rel in self._sources(value, env).items():
            r = compose(how, rel)
            if r is None or other == name or other.startswith("$"):
                continue
            self._link(name, other, node, r)
            self._link(other, name, node, _inverse(r))

    def _link(self, a: str, b: str, node: ast.AST, rel: str) -> None:
        here = self._shares.setdefault(a, {})
        if b in here:
            here[b][1].add(rel)
        else:
            here[b] = (node, {rel})

    def note_unpacked(self, target: ast.expr, value: ast.expr, node: ast.AST, env: Env) -> None:
        """The names of the assignment target ``target`` (a name or a tuple of
        targets) now hold ``value`` or its items: :meth:`note_sharing` for each."""
        if isinstance(target, ast.Tuple | ast.List):
            for i, elt in enumerate(target.elts):
                how = self.tuple_part(value, i)
                for bound in assigned([elt]):
                    self.note_sharing(bound, value, node, env, how)
        else:
            for bound in assigned([target]):
                self.note_sharing(bound, value, node, env)

    def tuple_part(self, value: ast.expr, index: int) -> str:
        """How an unpacked item relates to ``value``: ``part:i`` when
        ``value`` is a tuple parameter the function never rebinds or
        changes, else ``part``."""
        tree = self.src.tree
        if (
            isinstance(value, ast.Name)
            and value.id in {a.arg for a in tree.args.args}
            and value.id not in assigned(tree.body)
        ):
            return f"{PART}:{index}"
        return PART

    def _sources(self, e: ast.expr, env: Env) -> dict[str, str]:
        """The names whose lists or dicts the value of ``e`` may share, and
        how the value relates to each."""
        match e:
            case ast.Name(id=n):
                i = env.find(n)
                return {n: SAME} if i is not None and mutable(env.slots[i].type) else {}
            case ast.Constant() | ast.Compare() | ast.BoolOp() | ast.JoinedStr():
                return {}
            case ast.UnaryOp(op=ast.Not()):
                return {}
            case ast.Call(func=ast.Name(id="len" | "str" | "int" | "float" | "bool" | "abs")):
                return {}
            case ast.Subscript(value=v) | ast.Attribute(value=v):
                if not self._may_hold(e, env):
                    return {}
                return self._within(self._sources(v, env))
            case ast.Call(func=ast.Attribute(value=v, attr="get" | "setdefault"), args=[_, d]):
                return _join(self._within(self._sources(v, env)), self._sources(d, env))
            case ast.IfExp(body=a, orelse=b):
                return _join(self._sources(a, env), self._sources(b, env))
            case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
                out: dict[str, str] = {}
                for x in elts:
                    inner = self._sources(x, env)
                    if isinstance(x, ast.Starred):
                        out = _join(out, dict.fromkeys(inner, ANY))
                    else:
                        out = _join(out, self._around(inner))
                return out
            case (
                ast.Call(func=ast.Name(id="list" | "dict" | "set"), args=[arg])
                | ast.Call(func=ast.Attribute(value=arg, attr="copy"), args=[])
            ):
                # A new container: it shares only the elements, if they hold any.
                if not self._elements_mutable(arg, env):
                    return {}
                return dict.fromkeys(self._sources(arg, env), ANY)
        out = {}
        for child in ast.iter_child_nodes(e):
            if isinstance(child, ast.expr):
                out = _join(out, dict.fromkeys(self._sources(child, env), ANY))
        return out

    @staticmethod
    def _within(srcs: dict[str, str]) -> dict[str, str]:
        """The sources of a part of a value with sources ``srcs``."""
        return _relative(PART, srcs)

    @staticmethod
    def _around(srcs: dict[str, str]) -> dict[str, str]:
        """The sources of a new value holding one with sources ``srcs``."""
        return _relative(HOLDER, srcs)

    def _may_hold(self, e: ast.expr, env: Env) -> bool:
        """Whether the value of ``e`` may hold a list or dict (``counts[w]``
        of a ``dict[str, int]`` does not)."""
        try:
            return mutable(self.expr(e, env).type)
        except FrontendError:
            return True  # reported where the value is translated

    def _elements_mutable(self, e: ast.expr, env: Env) -> bool:
        try:
            t = self.expr(e, env).type
        except FrontendError:
            return True  # reported where the value is translated
        if isinstance(t, SetT):
            return False  # set items are hashable, hence immutable
        elem = t.item if isinstance(t, ListT) else t.value if isinstance(t, MapT) else t
        return mutable(elem)

    def check_walk(self, s: ast.For, env: Env) -> None:
        """Refuse a loop whose body changes the list it walks (or the dict
        whose items or values it walks): Python's loop sees the change, the
        fold walks the list it had when it started."""
        walked = self._walked(s.iter, env)
        changed = assigned(s.body)
        for root in sorted(walked):
            names = {root, *(n for n, (_, rels) in self._linked(root).items() if rels != {PART})}
            for n in sorted(names & changed):
                self.fail(
                    s.iter,
                    f"the loop body changes {n}, which holds what the loop walks: in Python the "
                    f"loop sees the change (later items, or fewer), but a for loop walks the "
                    f"list it had when it started. Walk a copy (for x in list(xs):), or "
                    f"collect the changes and make them after the loop",
                    "a list the loop leaves alone",
                    n,
                )

    def _walked(self, e: ast.expr, env: Env) -> set[str]:
        """The names whose lists a loop over ``e`` walks as they change: a
        list itself, ``enumerate``/``zip``/``reversed`` of one, a dict's
        ``items()`` or ``values()`` (not ``list(xs)``, ``sorted(xs)``, nor a
        dict's or set's keys, where Python raises if the size changes)."""
        match e:
            case ast.Call(func=ast.Name(id="enumerate" | "zip" | "reversed"), args=args):
                return set().union(*(self._walked(a, env) for a in args))
            case ast.Call(func=ast.Attribute(value=d, attr="items" | "values"), args=[]):
                root = place_root(d)
                return {root} if root is not None else set()
            case ast.Name() | ast.Attribute() | ast.Subscript():
                root = place_root(e)
                try:
                    walks_list = isinstance(self.expr(e, env).type, ListT)
                except FrontendError:
                    return set()
                return {root} if root is not None and walks_list else set()
        return set()

    def _shown(self, name: str) -> str:
        """A name as a message shows it: a temporary of an expression taken
        out of a statement (frontend/_hoist.py) as that expression."""
        text = self.hoisted.get(name)
        return name if text is None else f"({text})"

    def _text(self, node: ast.AST) -> str:
        """A statement as written: temporaries of expressions taken out of
        it show as those expressions."""
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in self.hoisted for t in node.targets
        ):
            node = node.value
        text = ast.unparse(node).splitlines()[0]  # a loop or if: its first line
        for name in sorted(self.hoisted, key=len, reverse=True):
            text = text.replace(name, f"({self.hoisted[name]})")
        return text

    def note_change(self, change: Change) -> None:
        """Record a change for :meth:`check_changes`."""
        self._changes.append(change)

    def check_changes(self) -> None:
        """Refuse a change through a name while another name that may share
        what it changes is read later (see the module docstring)."""
        for c in self._changes:
            linked = self._linked(c.root)
            for other in sorted(c.others & set(linked)):
                where, rels = linked[other]
                if c.top_only and all(r.startswith(PART) for r in rels):
                    continue  # other holds a part of root, which the change leaves alone
                line = self.src.file_line(where)
                root, name = self._shown(c.root), self._shown(other)
                self.fail(
                    c.node,
                    f"{root} and {name} may be the same list or dict here (since line "
                    f"{line}: {self._text(where)[:60]}): in Python, changing it through "
                    f"{root} changes {name} too, and {name} is read later, but arrowloop "
                    f"values never share, so the two would compute different things. Make "
                    f"a copy where they begin to share (list(...), dict(...)), or change "
                    f"it through one name only",
                    "names that do not share",
                    f"{root} and {name}",
                )

    def _linked(self, root: str) -> dict[str, tuple[ast.AST, set[str]]]:
        """Every name that may share with ``root`` (directly or through
        others), with where the first link began and how it relates to
        ``root`` along each chain."""
        seen: dict[str, tuple[ast.AST, set[str]]] = {}
        visited: set[tuple[str, str]] = {(root, SAME)}
        stack: list[tuple[str, str]] = [(root, SAME)]
        while stack:
            n, rel_n = stack.pop()
            for other, (where, rels) in self._shares.get(n, {}).items():
                for r in rels:
                    # r is how n relates to other; other relates to root as:
                    rel = compose(_inverse(r), rel_n)
                    if rel is None or other == root or (other, rel) in visited:
                        continue  # back at root: that is root itself, seen already
                    visited.add((other, rel))
                    seen.setdefault(other, (where, set()))[1].add(rel)
                    stack.append((other, rel))
        return seen
