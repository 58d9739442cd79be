"""Statements that change a list or dict in place: ``d[k] = v``, ``d[k] += 1``,
``del d[k]``, ``xs.append(x)``, ``x = d.pop(k)``, ``state.counts[k] = v``, ...

Part of the Python front end. Arrowloop values do not share: a change of
``d`` is translated as ``d = <d with the change>`` (value semantics), and
the compiler makes that change in place where no one can tell
(compiler/_ownership.py). Python's lists and dicts do share: after
``a = b``, changing ``a`` changes ``b``. The two agree as long as no other
name that is still used later may refer to the object being changed, so
that is checked: every assignment (and every change that stores a value
into a container) of a value that may hold lists or dicts records which
names it may share with, over the whole function, and a change through one
name while a name that may share with it is read later is refused, saying
why and what to write instead. The check runs when the whole function has
been translated, so sharing set up later in a loop body counts too.

A *place* is a name followed by field reads, dict keys and list indexes
(``state.groups[key][0]``); ``d.setdefault(k, default)`` is a key that
holds ``default`` when absent. Changing a place rebuilds its name.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence

import attrs

from arrowloop.arrows import Arrow, Const, GetField, Id, If, Proj, Registry, SetField
from arrowloop.compiler import mutable
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import CHANGING_METHODS, Env, Val, empty_container, tuple_of
from arrowloop.frontend._exprs import int_literal
from arrowloop.frontend._flow import Exit
from arrowloop.frontend._hoist import HOISTED_PREFIX, alias, cannot_fail, hoist, split_targets
from arrowloop.frontend._sharing import HOLDER, PART, Change, Sharing
from arrowloop.frontend._source import Source
from arrowloop.frontend._typing import show
from arrowloop.typesys import INT, STR, ListT, MapT, OptionT, RecordT, SetT, TupleT, Type, UnitT

__all__ = ["Mutations"]


@attrs.frozen
class _Acc:
    """One step into a place: a field, a dict key (with the default of
    ``setdefault``), a dict key read with ``get`` (a change of the default,
    when the key is absent, is lost), a list index, or a constant tuple
    index."""

    kind: str  # "field" | "key" | "get" | "index" | "item"
    node: ast.AST
    field: str = ""
    key: ast.expr | None = None
    default: ast.expr | None = None
    item: int = 0


@attrs.frozen
class _Leaf:
    """The new value at the end of a place, from the current one (``reads``:
    whether it uses the current one)."""

    make: Callable[[Val], Val]
    reads: bool

    def __call__(self, cur: Val) -> Val:
        return self.make(cur)


def _lift(v: Val) -> Val:
    """``v`` (an arrow from the environment) over ``(env, x)``."""
    return Val(Proj(0, 2) >> v.arrow, v.type)


_METHODS = CHANGING_METHODS
#: The set methods that change their set, and the primitive of each.
_SET_METHODS: dict[str, str] = {
    "add": "set_add",
    "discard": "set_discard",
    "remove": "set_remove",
}


class Mutations(Sharing):
    """In-place changes of lists and dicts, on top of :class:`Sharing`."""

    def __init__(self, src: Source, registry: Registry, local_names: set[str]) -> None:
        super().__init__(src, registry, local_names)
        self._node: ast.AST = src.tree

    # -- statements ------------------------------------------------------------

    def rewrite(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> list[ast.stmt] | None:
        """``s`` and ``rest`` written again, or ``None``: ``s`` as several
        statements when it changes a list or dict inside an expression (``x
        = xs.pop() + 1``) or assigns one value to items (``xs[i] = xs[j] =
        v``); ``x = d.setdefault(k, [])`` with ``x`` read as ``d[k]`` in
        ``rest`` when ``rest`` changes it (frontend/_hoist.py)."""

        def fresh() -> str:
            return f"{HOISTED_PREFIX}{self.new_key()}"

        split = hoist(s, lambda call: self._hoistable(call, env), fresh) or split_targets(s, fresh)
        if split is not None:
            for st in split:
                match st:
                    case ast.Assign(targets=[ast.Name(id=n)], value=v) if n.startswith(
                        HOISTED_PREFIX
                    ):
                        self.hoisted[n] = ast.unparse(v)
            return [*split, *rest]
        return alias(s, rest, exit.needs | exit.after, lambda e: self._holds(e, env), fresh)

    def _holds(self, e: ast.expr, env: Env) -> bool:
        """Whether the place ``e`` holds a list, dict or set."""
        if not self._is_place(e, env):
            return False
        try:
            return isinstance(self._read(e, env).type, ListT | MapT | SetT)
        except FrontendError:
            return False

    def _hoistable(self, call: ast.Call, env: Env) -> bool:
        """Whether ``call`` is ``xs.pop(...)`` or ``d.setdefault(...)`` on a
        place holding a list or dict (a method with a value)."""
        match call.func:
            case ast.Attribute(value=recv, attr="pop" | "setdefault") if self._is_place(recv, env):
                try:
                    return isinstance(self._read(recv, env).type, ListT | MapT)
                except FrontendError:
                    return False
        return False

    def mutation(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> tuple[Arrow, Env] | None:
        """The translation of ``s`` if it changes a list or dict in place
        (or rebinds a name to a popped value), else ``None``."""
        match s:
            case ast.Assign(targets=[ast.Subscript() as target], value=value):
                return self._set(s, target, value, None, rest, env, exit)
            case ast.AugAssign(target=ast.Subscript() as target, op=op, value=value):
                return self._set(s, target, value, op, rest, env, exit)
            case ast.AugAssign(target=ast.Name(id=n) as target, op=ast.Add(), value=value) if (
                env.find(n) is not None and isinstance(env.type_of(n), ListT)
            ):
                # xs += ys extends xs in place in Python (others sharing it see it)
                call = ast.copy_location(
                    ast.Call(ast.Attribute(target, "extend", ast.Load()), [value], []), s
                )
                return self._method(s, call, target, "extend", None, rest, env, exit)
            case ast.Delete(targets=targets):
                arrow, cur = None, env
                for t in targets:
                    if not isinstance(t, ast.Subscript):
                        return None
                    a, cur = self._delete(s, t, rest, cur, exit)
                    arrow = a if arrow is None else arrow >> a
                return (arrow, cur) if arrow is not None else None
            case ast.Expr(value=ast.Call(func=ast.Attribute(value=recv, attr=m)) as call) if (
                m in _METHODS
                and self._is_place(recv, env)
                and (m not in _SET_METHODS or self._is_set(recv, env, m))
            ):
                return self._method(s, call, recv, m, None, rest, env, exit)
            case ast.Assign(
                targets=[ast.Name(id=name)],
                value=ast.Call(
                    func=ast.Attribute(value=recv, attr="pop" | "setdefault" as m)
                ) as call,
            ) if self._is_place(recv, env):
                return self._method(s, call, recv, m, name, rest, env, exit)
        return None

    def _is_set(self, node: ast.expr, env: Env, m: str) -> bool:
        """Whether ``node`` is a set (or a list, for ``remove``):
        ``add``/``discard``/``remove`` on anything else (a record's own
        method) is left to the translation of calls."""
        try:
            t = self._read(node, env).type
        except FrontendError:
            return False
        return isinstance(t, SetT) or (m == "remove" and isinstance(t, ListT))

    def _is_place(self, node: ast.expr, env: Env) -> bool:
        base = node
        while True:
            match base:
                case ast.Attribute(value=v) | ast.Subscript(value=v):
                    base = v
                case ast.Call(func=ast.Attribute(value=v, attr="setdefault")):
                    base = v
                case ast.Call(func=ast.Attribute(value=v, attr="get"), args=[_, d]):
                    # d.get(k, set()).discard(x): the entry, or a new value
                    if self._sources(d, env):
                        return False  # a default that Python would change
                    base = v
                case ast.Name(id=n):
                    return env.find(n) is not None and n not in env.unbound
                case _:
                    return False

    def _place(self, node: ast.expr) -> tuple[ast.Name, list[_Acc]]:
        """The root name and the steps of the place ``node``."""
        steps: list[_Acc] = []
        while True:
            match node:
                case ast.Name():
                    steps.reverse()
                    return node, steps
                case ast.Attribute(value=v, attr=f):
                    steps.append(_Acc("field", node, field=f))
                    node = v
                case ast.Subscript(value=v, slice=k):
                    if isinstance(k, ast.Slice):
                        self.fail(node, "slices cannot be changed in place; build a new list")
                    steps.append(_Acc("key", node, key=k))
                    node = v
                case ast.Call(func=ast.Attribute(value=v, attr="get"), args=[k, d]):
                    steps.append(_Acc("get", node, key=k, default=d))
                    node = v
                case ast.Call(func=ast.Attribute(value=v, attr="setdefault"), args=args):
                    if len(args) != 2 or node.keywords:
                        self.fail(node, "d.setdefault takes a key and a default here")
                    steps.append(_Acc("key", node, key=args[0], default=args[1]))
                    node = v
                case _:
                    self.fail(node, "expected a name, a field, a dict key or a list index")

    # -- places -------------------------------------------------------------------
    #
    # A change is an arrow ``(env, x) -> x'`` over the value ``x`` at each level
    # of the place, ``env`` travelling along for the keys and the new value. A
    # dict entry that is changed further (``d[k].append(v)``, ``d[a][b] = v``)
    # is *taken* out of its dict (``map_take``) and put back changed, so the
    # entry is the only reference to it and can be changed in place too.

    def _update(self, t: Type, steps: list[_Acc], leaf: _Leaf, env: Env) -> Arrow:
        """``(env, x: t) -> x`` with the place ``steps`` replaced by ``leaf``
        of its current value."""
        cur = Val(Proj(1, 2), t)
        if not steps:
            return self.coerce(leaf(cur), t, self._node).arrow
        st, rest = steps[0], steps[1:]
        if st.kind == "field":
            if not isinstance(t, RecordT) or t.field_type(st.field) is None:
                self.mismatch(st.node, f"a record with a field {st.field}", t)
            ft = t.field_type(st.field)
            assert ft is not None
            inner = tuple_of([Proj(0, 2), Proj(1, 2) >> GetField(st.field)])
            new = inner >> self._update(ft, rest, leaf, env)
            return tuple_of([Proj(1, 2), new]) >> SetField(st.field)
        assert st.key is not None
        if st.kind == "get":
            return self._update_get(t, st, rest, leaf, env)
        if isinstance(t, TupleT) and st.default is None:
            n = len(t.items)
            k = int_literal(st.key)
            if k is None or not -n <= k < n:
                self.fail(st.node, f"a tuple of {n} items is indexed with a constant here")
            k %= n
            parts: list[Arrow] = [Proj(1, 2) >> Proj(j, n) for j in range(n)]
            inner = tuple_of([Proj(0, 2), Proj(1, 2) >> Proj(k, n)])
            parts[k] = inner >> self._update(t.items[k], rest, leaf, env)
            return tuple_of(parts)
        if isinstance(t, ListT) and st.default is None:
            i = _lift(self.expr(st.key, env, INT))
            got = self.prim("item", [cur, i], st.node, "xs[i]")
            new = tuple_of([Proj(0, 2), got.arrow]) >> self._update(t.item, rest, leaf, env)
            return self.prim("list_set", [cur, i, Val(new, t.item)], st.node, "xs[i] = v").arrow
        if not isinstance(t, MapT):
            self.mismatch(st.node, "a record, dict, list or tuple to change a part of", t)
        key = _lift(self.expr(st.key, env, t.key))
        default = None if st.default is None else _lift(self.expr(st.default, env, t.value))
        if mutable(t.value) and (rest or leaf.reads):
            # Take the entry out, change it, put it back.
            if default is None:
                taken = self.prim("map_take", [cur, key], st.node, "d[k]")
            else:
                taken = self.prim("map_take_or", [cur, key, default], st.node, "d.setdefault")
            inner = tuple_of([Proj(0, 2), Proj(1, 2) >> Proj(1, 2)])
            new = inner >> self._update(t.value, rest, leaf, env)
            after = Val(Proj(1, 2) >> Proj(0, 2), t)
            put = self.prim(
                "map_put",
                [after, key, Val(new, t.value)],
                st.node,
                "d[k] = v",
            )
            return tuple_of([Proj(0, 2), taken.arrow]) >> put.arrow
        if rest or leaf.reads:
            if default is None:
                got = self.prim("map_at", [cur, key], st.node, "d[k]")
            else:
                maybe = self.prim("map_get", [cur, key], st.node, "d.setdefault")
                got = self.prim("unwrap_or", [maybe, default], st.node, "d.setdefault")
            new = tuple_of([Proj(0, 2), got.arrow]) >> self._update(t.value, rest, leaf, env)
        else:
            new = self.coerce(leaf(cur), t.value, st.node).arrow  # the leaf ignores it
        return self.prim("map_put", [cur, key, Val(new, t.value)], st.node, "d[k] = v").arrow

    def _update_get(self, t: Type, st: _Acc, rest: list[_Acc], leaf: _Leaf, env: Env) -> Arrow:
        """``d.get(k, default).m(...)``: the entry changed when ``k`` is in
        ``d``; else the change made to the new default (for its failures,
        such as ``remove`` of an absent item) and ``d`` left as it is."""
        if not isinstance(t, MapT):
            self.mismatch(st.node, "a dict for d.get(k, default)", t)
        assert st.key is not None
        assert st.default is not None
        cur = Val(Proj(1, 2), t)
        key = _lift(self.expr(st.key, env, t.key))
        has = self.prim("map_has", [cur, key], st.node, "d.get")
        present = self._update(t, [_Acc("key", st.node, key=st.key), *rest], leaf, env)
        default = _lift(self.expr(st.default, env, t.value))
        lost = tuple_of([Proj(0, 2), default.arrow]) >> self._update(t.value, rest, leaf, env)
        absent = tuple_of([lost, Proj(1, 2)]) >> Proj(1, 2)
        return If(has.arrow, present, absent)

    def _change(self, root: ast.Name, steps: list[_Acc], leaf: _Leaf, env: Env) -> Val:
        """The new value of ``root`` with the place ``steps`` changed by ``leaf``."""
        whole = self._root(root, env)
        self._node = root
        arrow = tuple_of([Id(), whole.arrow]) >> self._update(whole.type, steps, leaf, env)
        return Val(arrow, whole.type)

    def _commit(
        self,
        s: ast.stmt,
        root: ast.Name,
        new_root: Val,
        stored: ast.expr | None,
        extra: list[tuple[str, Val]],
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
        top_only: bool,
    ) -> tuple[Arrow, Env]:
        """Rebind the changed root (and ``extra`` names), recording the
        change for :meth:`check_changes` (``top_only``: only the root's own
        list or dict changes, none inside it)."""
        name = root.id
        live = self.live(rest, exit)
        read_later = live | exit.after
        others = frozenset(n for n in read_later if n != name and self.may_hold(n, env))
        self.note_change(Change(name, s, others, top_only))
        self.note_sharing(name, stored, s, env, HOLDER)
        for n, _ in extra:
            self.note_sharing(n, stored, s, env)
        want = env.declared.get(name)
        v = self.coerce(new_root, want, s) if want is not None else new_root
        # The popped value is read before the change (it may be made in place).
        return env.rebuild(live, [*extra, (name, v)])

    def _root(self, root: ast.Name, env: Env) -> Val:
        v = self.name(root, root.id, env)
        if not mutable(v.type):
            self.fail(root, f"{root.id} holds no list or dict to change", found=show(v.type))
        return v

    def _set(
        self,
        s: ast.stmt,
        target: ast.Subscript,
        value: ast.expr,
        op: ast.operator | None,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        if isinstance(target.slice, ast.Slice):
            return self._set_slice(s, target, target.slice, value, op, rest, env, exit)
        root, steps = self._place(target)
        if op is None:
            # Python evaluates the value before the place. A new empty
            # container (d[k] = set()) takes the place's type.
            want = self._read(target, env).type if empty_container(value) else None
            v = self.expr(value, env, want)
            tmp = f"$value{s.lineno}.{s.col_offset}"
            first, env1 = env.rebuild(env.names(), [(tmp, v)])
            lifted = _lift(env1.val(tmp))
            new = self._change(root, steps, _Leaf(lambda cur: lifted, reads=False), env1)
            arrow, env2 = self._commit(s, root, new, value, [], rest, env1, exit, len(steps) == 1)
            return first >> arrow, env2
        operator = op
        cur_t = self._read(target, env).type
        rhs = _lift(self.expr(value, env, cur_t if isinstance(cur_t, ListT) else None))

        def combine(cur: Val) -> Val:
            return self.combine(s, operator, cur, rhs)

        new = self._change(root, steps, _Leaf(combine, reads=True), env)
        # xs += ys on an item changes the item's list in place, in Python.
        top = len(steps) == 1 and not mutable(cur_t)
        return self._commit(s, root, new, value, [], rest, env, exit, top)

    def _set_slice(
        self,
        s: ast.stmt,
        target: ast.Subscript,
        sl: ast.Slice,
        value: ast.expr | None,
        op: ast.operator | None,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        """``xs[a:b:c] = ys`` and ``del xs[a:b:c]``: a new list (O(len(xs)))."""
        if op is not None:
            self.fail(s, "a slice cannot be changed with an operator; write xs[a:b] = ...")
        root, steps = self._place(target.value)
        t = self._read(target.value, env).type
        if not isinstance(t, ListT):
            self.mismatch(target, "a list to change a slice of", t)
        first: Arrow = Id()
        cur_env = env
        ys: Val | None = None
        if value is not None:
            # Python evaluates the value before the place.
            tmp = f"$value{s.lineno}.{s.col_offset}"
            first, cur_env = env.rebuild(env.names(), [(tmp, self.expr(value, env, t))])
            ys = _lift(cur_env.val(tmp))
        bounds = [_lift(b) for b in self.slice_bounds(sl, cur_env)]

        def change(cur: Val) -> Val:
            if ys is None:
                return self.prim("list_del_slice", [cur, *bounds], s, "del xs[a:b]")
            return self.prim("list_set_slice", [cur, *bounds, ys], s, "xs[a:b] = ys")

        new = self._change(root, steps, _Leaf(change, reads=True), cur_env)
        arrow, env2 = self._commit(s, root, new, value, [], rest, cur_env, exit, not steps)
        return first >> arrow, env2

    def _delete(
        self, s: ast.stmt, target: ast.Subscript, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> tuple[Arrow, Env]:
        if isinstance(target.slice, ast.Slice):
            return self._set_slice(s, target, target.slice, None, None, rest, env, exit)
        root, steps = self._place(target)
        last = steps[-1]
        if last.kind != "key" or last.default is not None or last.key is None:
            self.fail(s, "del is supported for dict keys and list items (del d[k], del xs[i])")
        mt = self._read(target.value, env).type
        if isinstance(mt, ListT):
            i = _lift(self.expr(last.key, env, INT))
            leaf = _Leaf(lambda cur: self.prim("list_del_at", [cur, i], s, "del xs[i]"), reads=True)
            new = self._change(root, steps[:-1], leaf, env)
            return self._commit(s, root, new, None, [], rest, env, exit, len(steps) == 1)
        key = _lift(self.expr(last.key, env, mt.key if isinstance(mt, MapT) else STR))

        def remove(cur: Val) -> Val:
            if not isinstance(cur.type, MapT):
                self.mismatch(s, "a dict or a list to delete an item of", cur.type)
            # Python's del d[k] raises KeyError when k is absent: so does this.
            check = self.prim("map_at", [cur, key], s, "del d[k]")
            removed = self.prim("map_remove", [cur, key], s, "del d[k]")
            return Val(tuple_of([check.arrow, removed.arrow]) >> Proj(1, 2), cur.type)

        new = self._change(root, steps[:-1], _Leaf(remove, reads=True), env)
        return self._commit(s, root, new, None, [], rest, env, exit, len(steps) == 1)

    def _method(
        self,
        s: ast.stmt,
        call: ast.Call,
        recv: ast.expr,
        m: str,
        result: str | None,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        root, steps = self._place(recv)
        args = call.args
        if call.keywords:
            self.fail(call, f"{m} takes positional arguments here")
        # The type of the place, and its current value read from env (for a result).
        place = self._read(recv, env)
        t = place.type
        extra: list[tuple[str, Val]] = []
        stored: ast.expr | None = None
        leaf: _Leaf
        entry = self._entry_append(s, call, recv, steps, t, rest, env, exit)
        if entry is not None:
            return entry
        if m == "append" and isinstance(t, ListT) and len(args) == 1:
            x = _lift(self.expr(args[0], env, t.item))
            leaf = _Leaf(lambda cur: self.prim("append", [cur, x], call, "append"), reads=True)
            stored = args[0]
        elif m == "extend" and isinstance(t, ListT) and len(args) == 1:
            more = _lift(self.expr(args[0], env, t))
            leaf = _Leaf(lambda cur: self.prim("add", [cur, more], call, "extend"), reads=True)
            stored = args[0]
        elif m in _SET_METHODS and isinstance(t, SetT) and len(args) == 1:
            x = _lift(self.expr(args[0], env, t.item))
            prim = _SET_METHODS[m]
            leaf = _Leaf(lambda cur: self.prim(prim, [cur, x], call, f"s.{m}(x)"), reads=True)
        elif m == "clear" and isinstance(t, ListT | MapT | SetT) and not args:
            empty = Val(self.empty(t), t)
            leaf = _Leaf(lambda cur: empty, reads=False)
        elif m == "pop" and isinstance(t, ListT) and not args:
            if result is not None:
                extra.append((result, self.prim("last", [place], call, "xs.pop()")))
            leaf = _Leaf(lambda cur: self.prim("drop_last", [cur], call, "xs.pop()"), reads=True)
        elif m == "pop" and isinstance(t, ListT) and len(args) == 1:
            i = self.expr(args[0], env, INT)
            if result is not None:
                extra.append((result, self.prim("pop_item", [place, i], call, "xs.pop(i)")))
            j = _lift(i)
            leaf = _Leaf(
                lambda cur: self.prim("list_pop_at", [cur, j], call, "xs.pop(i)"), reads=True
            )
        elif m == "remove" and isinstance(t, ListT) and len(args) == 1:
            x = _lift(self.expr(args[0], env, t.item))
            leaf = _Leaf(
                lambda cur: self.prim("list_remove", [cur, x], call, "xs.remove(x)"), reads=True
            )
        elif m == "insert" and isinstance(t, ListT) and len(args) == 2:
            i = _lift(self.expr(args[0], env, INT))
            x = _lift(self.expr(args[1], env, t.item))
            leaf = _Leaf(
                lambda cur: self.prim("list_insert", [cur, i, x], call, "xs.insert(i, x)"),
                reads=True,
            )
            stored = args[1]
        elif m == "pop" and isinstance(t, MapT) and len(args) in (1, 2):
            key = self.expr(args[0], env, t.key)
            if len(args) == 2:
                got = self.prim("map_get", [place, key], call, "d.pop")
                if _is_none(args[1]) and not isinstance(t.value, OptionT | UnitT):
                    value = got  # d.pop(k, None): the value or None, as d.get(k)
                else:
                    d = self.expr(args[1], env, t.value)
                    value = self.prim("unwrap_or", [got, d], call, "d.pop")
            else:
                value = self.prim("map_at", [place, key], call, "d.pop")
            if result is not None:
                extra.append((result, value))
            k = _lift(key)
            leaf = _Leaf(lambda cur: self.prim("map_remove", [cur, k], call, "d.pop"), reads=True)
            if result is None:
                # The value read first: d.pop(k) raises KeyError when k is absent.
                extra.append((f"$pop{s.lineno}.{s.col_offset}", value))
        elif m == "setdefault" and isinstance(t, MapT) and len(args) == 2:
            key = self.expr(args[0], env, t.key)
            got = self.prim("map_get", [place, key], call, "d.setdefault")
            d = self.expr(args[1], env, t.value)
            value = self.prim("unwrap_or", [got, d], call, "d.setdefault")
            if result is not None:
                extra.append((result, value))
                # x = d.setdefault(k, v) is d[k] itself in Python: x and d share it.
                self.note_sharing(result, recv, s, env, PART)
            k, v = _lift(key), _lift(value)
            leaf = _Leaf(
                lambda cur: self.prim("map_put", [cur, k, v], call, "d.setdefault"), reads=True
            )
            stored = args[1]
        else:
            self.fail(
                call,
                f"{show(t)}.{m} with {len(args)} argument{'s' if len(args) != 1 else ''} is not "
                "supported; supported are xs.append(x), xs.extend(ys), xs.pop(), xs.pop(i), "
                "xs.remove(x), xs.insert(i, x), xs.clear(), "
                "d.pop(k), d.pop(k, default), d.setdefault(k, default), d.clear(), s.add(x), "
                "s.discard(x), s.remove(x), s.clear()",
            )
        new = self._change(root, steps, leaf, env)
        return self._commit(s, root, new, stored, extra, rest, env, exit, not steps)

    def _entry_append(
        self,
        s: ast.stmt,
        call: ast.Call,
        recv: ast.expr,
        steps: list[_Acc],
        t: Type,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env] | None:
        """``d[k].append(x)`` and ``d.setdefault(k, []).append(x)`` as one
        change of the dict (``map_append``, ``map_append_or``; for a set's
        ``add``, ``map_add`` and ``map_add_or``), which the
        compiler makes in place on the entry (O(1) amortised, where a take
        and a put copy the entry), when ``x`` cannot fail (so Python's
        ``KeyError`` for ``d[k]`` still comes first); else ``None``."""
        adds = {"append": ListT, "add": SetT}
        if not (
            isinstance(call.func, ast.Attribute)
            and call.func.attr in adds
            and len(call.args) == 1
            and isinstance(t, adds[call.func.attr])
            and steps
            and steps[-1].kind == "key"
            and cannot_fail(call.args[0])
        ):
            return None
        last = steps[-1]
        match recv:
            case ast.Call(func=ast.Attribute(value=container)) | ast.Subscript(value=container):
                pt = self._read(container, env).type
            case _:
                return None
        if not isinstance(pt, MapT) or last.key is None:
            return None
        assert isinstance(t, ListT | SetT)
        key = _lift(self.expr(last.key, env, pt.key))
        x = _lift(self.expr(call.args[0], env, t.item))
        prim = "map_append" if isinstance(t, ListT) else "map_add"
        if last.default is None:
            args = [key, x]
        else:
            args = [key, _lift(self.expr(last.default, env, pt.value)), x]
            prim += "_or"

        def append(cur: Val) -> Val:
            return self.prim(prim, [cur, *args], call, "d[k].append(x)")

        root, _ = self._place(recv)
        new = self._change(root, steps[:-1], _Leaf(append, reads=True), env)
        return self._commit(s, root, new, call.args[0], [], rest, env, exit, False)

    def _read(self, node: ast.expr, env: Env) -> Val:
        """The current value of a place (``d.setdefault(k, v)`` reads as
        ``d.get(k, v)``)."""
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Attribute)
            recv = self._read(node.func.value, env)
            if not isinstance(recv.type, MapT) or len(node.args) != 2:
                self.mismatch(node, "a dict for setdefault(k, default)", recv.type)
            key = self.expr(node.args[0], env, recv.type.key)
            got = self.prim("map_get", [recv, key], node, "d.setdefault")
            d = self.expr(node.args[1], env, recv.type.value)
            return self.prim("unwrap_or", [got, d], node, "d.setdefault")
        return self.expr(node, env)

    def empty(self, t: Type) -> Arrow:
        """A new empty list or dict of type ``t``."""
        return Const(t, [] if isinstance(t, ListT) else set() if isinstance(t, SetT) else {})


def _is_none(node: ast.expr) -> bool:
    """Whether ``node`` is the literal ``None``."""
    return isinstance(node, ast.Constant) and node.value is None
