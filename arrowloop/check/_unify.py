"""Unification of types with type variables (union-find with a trail).

The checker uses one :class:`Subst` per program. ``mark``/``rollback`` undo
tentative bindings, which is how overloaded primitives are tried in turn.

A variable that stands for the item of an option (``some : a -> a | None``)
may not become an option or unit: ``OptionT`` refuses those items (``None``
would be ambiguous), so such a binding is a unification failure. In the
same way a variable that stands for a map's key or a set's item
(``set_of_list : list[k] -> set[k]``) may only become a key type
(``is_key_type``): ``set_of_list`` of a ``list[float]`` does not type-check.

Types may share sub-terms (``fanout(id, id)`` makes ``(t, t)`` from one
``t``), so every walk here remembers the nodes (or pairs of nodes) it has
been through: the work is linear in the distinct nodes, not in the size of
the tree they stand for.
"""

from __future__ import annotations

from arrowloop.typesys import (
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    TVar,
    Type,
    UnitT,
    VariantT,
    has_vars,
    is_key_type,
    type_children,
)

__all__ = ["Subst"]

#: Key marks on the trail sit below every plain mark (ids stay far smaller).
_KEY_MARK = 2**62


class Subst:
    """A substitution of type variables, grown by :meth:`unify`."""

    def __init__(self) -> None:
        self._bound: dict[int, Type] = {}
        # Ids of variables that stand for an option's item (see the module doc).
        self._plain: set[int] = set()
        # Ids of variables that stand for a map key or a set item.
        self._keys: set[int] = set()
        # Bound variable ids, ~id (negative) for variables marked plain, and
        # ~id - _KEY_MARK for variables marked key (one trail keeps the order).
        self._trail: list[int] = []
        self._next = 1_000_000  # above any id used in primitive signatures

    def fresh(self) -> TVar:
        """A new, unbound type variable."""
        self._next += 1
        return TVar(self._next)

    def walk(self, t: Type) -> Type:
        """``t`` with bound variables at its top followed."""
        while isinstance(t, TVar):
            nxt = self._bound.get(t.id)
            if nxt is None:
                return t
            t = nxt
        return t

    def resolve(self, t: Type, memo: dict[int, Type] | None = None) -> Type:
        """``t`` with every bound variable replaced, all the way down.

        ``memo`` (by node identity) may be shared across calls that resolve
        related types, so that shared parts are rebuilt once.
        """
        t = self.walk(t)
        if not has_vars(t):
            return t  # most types are concrete: nothing to rebuild
        if memo is None:
            memo = {}
        done = memo.get(id(t))
        if done is not None:
            return done
        r: Type = t
        match t:
            case TupleT(items=items):
                r = TupleT(tuple(self.resolve(i, memo) for i in items))
            case ListT(item=item):
                r = ListT(self.resolve(item, memo))
            case MapT(value=v, key=k):
                r = MapT(self.resolve(v, memo), self.resolve(k, memo))
            case SetT(item=item):
                r = SetT(self.resolve(item, memo))
            case OptionT(item=item):
                ri = self.resolve(item, memo)
                r = t if ri is item else OptionT(ri)
            case RecordT(name=name, fields=fields):
                r = RecordT(name, tuple((f, self.resolve(ft, memo)) for f, ft in fields))
            case VariantT(name=name, cases=cases):
                r = VariantT(name, tuple((c, self.resolve(p, memo)) for c, p in cases))
        # Keyed by id: keep ``t`` alive with its result so the id stays its own.
        memo[id(t)] = r
        memo[~id(t)] = t
        return r

    def instantiate(self, t: Type, fresh: dict[int, TVar]) -> Type:
        """``t`` with its variables renamed to fresh ones (shared via ``fresh``)."""
        match t:
            case TVar(id=i):
                if i not in fresh:
                    fresh[i] = self.fresh()
                return fresh[i]
            case TupleT(items=items):
                return TupleT(tuple(self.instantiate(x, fresh) for x in items))
            case ListT(item=item):
                return ListT(self.instantiate(item, fresh))
            case MapT(value=v, key=k):
                key = self.instantiate(k, fresh)
                if isinstance(key, TVar):
                    self._mark_key(key)
                return MapT(self.instantiate(v, fresh), key)
            case SetT(item=item):
                key = self.instantiate(item, fresh)
                if isinstance(key, TVar):
                    self._mark_key(key)
                return SetT(key)
            case OptionT(item=item):
                inner = self.instantiate(item, fresh)
                if isinstance(inner, TVar):
                    self._mark_plain(inner)
                return OptionT(inner)
        return t

    def mark(self) -> int:
        """A point to :meth:`rollback` to."""
        return len(self._trail)

    def rollback(self, mark: int) -> None:
        """Undo every binding made since ``mark``."""
        while len(self._trail) > mark:
            entry = self._trail.pop()
            if entry < -_KEY_MARK:
                self._keys.discard(~(entry + _KEY_MARK))
                continue
            if entry < 0:
                self._plain.discard(~entry)
            else:
                del self._bound[entry]

    def unify(self, a: Type, b: Type) -> bool:
        """Make ``a`` and ``b`` equal by binding variables; ``False`` if impossible.

        On failure some bindings may remain: callers that want to try again
        use :meth:`mark` and :meth:`rollback`.
        """
        stack = [(a, b)]
        seen: set[tuple[int, int]] = set()
        keep: list[tuple[Type, Type]] = []  # the ids in ``seen`` stay theirs
        while stack:
            x, y = stack.pop()
            x, y = self.walk(x), self.walk(y)
            if x is y:
                continue
            if not isinstance(x, TVar) and not isinstance(y, TVar):
                # A pair met before was unified then (or failed, and we
                # returned): shared parts are unified once.
                key = (id(x), id(y))
                if key in seen:
                    continue
                seen.add(key)
                keep.append((x, y))
            if x == y:
                continue
            if isinstance(x, TVar):
                if self._occurs(x, y) or not self._bind(x, y):
                    return False
                continue
            if isinstance(y, TVar):
                if self._occurs(y, x) or not self._bind(y, x):
                    return False
                continue
            if type(x) is not type(y):
                return False
            match x, y:
                case TupleT(items=xs), TupleT(items=ys):
                    if len(xs) != len(ys):
                        return False
                    stack.extend(zip(xs, ys, strict=True))
                case ListT(item=xi), ListT(item=yi):
                    stack.append((xi, yi))
                case MapT(value=xv, key=xk), MapT(value=yv, key=yk):
                    stack.append((xv, yv))
                    stack.append((xk, yk))
                case SetT(item=xi), SetT(item=yi):
                    stack.append((xi, yi))
                case OptionT(item=xi), OptionT(item=yi):
                    stack.append((xi, yi))
                case RecordT(name=xn, fields=xf), RecordT(name=yn, fields=yf):
                    if xn != yn or [f for f, _ in xf] != [f for f, _ in yf]:
                        return False
                    stack.extend((p, q) for (_, p), (_, q) in zip(xf, yf, strict=True))
                case VariantT(name=xn, cases=xc), VariantT(name=yn, cases=yc):
                    if xn != yn or [c for c, _ in xc] != [c for c, _ in yc]:
                        return False
                    stack.extend((p, q) for (_, p), (_, q) in zip(xc, yc, strict=True))
                case _:
                    return False  # distinct scalar types
        return True

    def _bind(self, v: TVar, t: Type) -> bool:
        if v.id in self._keys and not self._key_ok(t, set()):
            return False
        if v.id in self._plain:
            if isinstance(t, OptionT | UnitT):
                return False
            if isinstance(t, TVar):
                self._mark_plain(t)
        self._bound[v.id] = t
        self._trail.append(v.id)
        return True

    def _key_ok(self, t: Type, seen: set[int]) -> bool:
        """Whether ``t`` is a key type, marking its variables as keys."""
        t = self.walk(t)
        if id(t) in seen:
            return True
        seen.add(id(t))
        match t:
            case TVar():
                self._mark_key(t)
                return True
            case TupleT(items=items):
                return all(self._key_ok(x, seen) for x in items)
            case OptionT(item=item):
                return self._key_ok(item, seen)
            case VariantT(cases=cases):
                return all(isinstance(self.walk(p), UnitT) for _, p in cases)
        return is_key_type(t)

    def _mark_key(self, v: TVar) -> None:
        if v.id not in self._keys:
            self._keys.add(v.id)
            self._trail.append(~v.id - _KEY_MARK)

    def _mark_plain(self, v: TVar) -> None:
        if v.id not in self._plain:
            self._plain.add(v.id)
            self._trail.append(~v.id)

    def _occurs(self, v: TVar, t: Type) -> bool:
        stack = [t]
        seen: set[int] = set()
        while stack:
            x = self.walk(stack.pop())
            if isinstance(x, TVar):
                if x.id == v.id:
                    return True
            elif has_vars(x) and id(x) not in seen:
                # concrete parts cannot hold v; every node is held by t
                seen.add(id(x))
                stack.extend(type_children(x))
        return False
