"""Types from context: where Python code leaves a type to its surroundings.

Part of the Python front end, a layer of the translator.

* ``x.value`` and ``x.name`` of an enum member: a ``case`` on the member's
  tag whose branches are the members' values, constants captured when the
  function is decorated (like any module-level constant).
* An int literal where a ``float`` is expected, in an operand of float
  arithmetic (``d.get(k, 0) + x`` of a ``dict[str, float]``): the float of
  the same value, which is what Python computes with there. Elsewhere
  (``Stats(total=0)``) Python keeps the int, which prints and adds as an
  int, so it is refused with the float literal to write.
* ``sum(xs)`` of floats as an operand of float arithmetic (``sum(xs) /
  len(xs)``): ``sum(xs, 0.0)``. Python's ``sum`` of no floats is the int
  ``0``; it only differs from ``0.0`` in its type, which the arithmetic
  around it does not show.
* ``xs = []`` or ``s = set()`` with nothing to tell the item type: the type
  the first later use needs (``xs.append(x)``, ``return xs``), found by
  translating the statements after it once with the item type a probe (a
  type variable of its own); what that translation noted is forgotten.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Sequence
from typing import Any

from arrowloop.arrows import Arrow, Case, Const, type_of_value
from arrowloop.errors import FrontendError, TypeDefinitionError, ValidationError
from arrowloop.frontend._env import Env, Val, empty_container
from arrowloop.frontend._flow import Enough, Exit, Join
from arrowloop.frontend._iteration import Iteration
from arrowloop.frontend._source import MISSING
from arrowloop.typesys import (
    FLOAT,
    INT,
    ListT,
    OptionT,
    SetT,
    TVar,
    Type,
    VariantT,
    enum_class,
    type_children,
)

__all__ = ["Inference"]

#: The attributes every enum member has, computed per member.
_ENUM_ATTRS = ("value", "name")


class Inference(Iteration):
    """Enum attributes, int literals as floats, sums of floats, empty containers."""

    # -- enum members --------------------------------------------------------------

    def attribute(self, node: ast.Attribute, env: Env) -> Val:
        """Also ``x.value`` and ``x.name`` of an enum value."""
        if node.attr in _ENUM_ATTRS and self.src.static(node, self.locals) is MISSING:
            base = self.expr(node.value, env)
            cls = enum_class(base.type) if isinstance(base.type, VariantT) else None
            if cls is not None:
                return self.enum_attribute(node, base, list(cls))
        return super().attribute(node, env)

    def enum_attribute(self, node: ast.Attribute, base: Val, members: list[enum.Enum]) -> Val:
        """``base.value`` (or ``.name``): the member's constant, chosen by its tag."""
        values: list[Any] = [getattr(m, node.attr) for m in members]
        try:
            types = {type_of_value(v) for v in values}
        except (TypeDefinitionError, ValidationError):
            types = set()
        if len(types) != 1:
            kinds = ", ".join(sorted({type(v).__name__ for v in values}))
            self.fail(
                node,
                f".{node.attr} of an enum member is supported when every member's "
                f"{node.attr} is a constant of one type (int, float, str, bool, a tuple of "
                f"them), found {kinds}; match on the member instead (case Color.RED: ...)",
                "values of one type",
                kinds,
            )
        (t,) = types
        branches = [(m.name, Const(t, v)) for m, v in zip(members, values, strict=True)]
        return Val(base.arrow >> Case(tuple(branches)), t)

    # -- empty containers typed by a later use -----------------------------------------

    def assign(
        self,
        s: ast.Assign | ast.AnnAssign | ast.AugAssign,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        """Also ``xs = []`` (or ``set()``) typed by the first later use that
        needs a type: ``xs.append(x)``, ``s.add(x)``, an argument or a return."""
        try:
            return super().assign(s, rest, env, exit)
        except FrontendError as err:
            if not (
                isinstance(s, ast.Assign)
                and len(s.targets) == 1
                and isinstance(s.targets[0], ast.Name)
                and isinstance(s.value, ast.List | ast.Call)
                and empty_container(s.value)
                and err.reason.startswith("cannot tell the item type")
            ):
                raise
            name = s.targets[0].id
            found = self.probe(s, s.value, name, rest, env, exit)
            if found is None:
                raise
            declared = env.declared
            arrow, after = super().assign(
                s, rest, env.with_info(declared={**declared, name: found}), exit
            )
            return arrow, after.with_info(declared=declared)

    def probe(
        self,
        s: ast.stmt,
        value: ast.expr,
        name: str,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> Type | None:
        """The type of the empty list or set ``value`` bound to ``name``, as
        the statements after it use it: they are translated once with its
        item type unknown, until a use says what it must be; everything that
        translation noted is then forgotten (translating is pure)."""
        # A type variable of its own (negative: the checker's are not), so
        # that a probe started inside this one is told apart.
        probe = TVar(-self.new_key())
        kind: Type
        if _callee(value) == "set":
            kind = SetT(probe)
        elif isinstance(value, ast.List) or _callee(value) == "list":
            kind = ListT(probe)
        else:
            return None
        mark = self.mark()
        ends = len(exit.ends) if isinstance(exit, Join) else 0
        _, env1 = env.rebuild(env.names(), [(name, Val(Const(kind, []), kind))])
        found: Type | None = None
        try:
            self.block(rest, env1, exit, s)
        except _Found as hit:
            if hit.probe != probe:
                raise
            found = SetT(hit.item) if isinstance(kind, SetT) else ListT(hit.item)
        except (FrontendError, Enough):
            pass
        finally:
            self.forget(mark)
            if isinstance(exit, Join):
                del exit.ends[ends:]
        return found

    # -- ints for floats -------------------------------------------------------------

    #: The syntax nodes of int literals that may be taken as floats: the
    #: values an operand of float arithmetic may take (see :meth:`binop`).
    floats_ok: frozenset[int] = frozenset()

    def coerce(self, v: Val, want: Type, node: ast.AST, what: str = "a value of type") -> Val:
        """Also an int literal where a float is expected, in an operand of
        float arithmetic (where Python converts it to a float as well)."""
        for have, need in ((v.type, want), (want, v.type)):
            probe = _probe_in(have)
            if probe is not None and _probe_in(need) is None:
                item = _unify(probe, have, need)
                if item is not None:
                    raise _Found(probe, item)
        target = want.item if isinstance(want, OptionT) else want
        if v.type == INT and target == FLOAT and isinstance(v.arrow, Const):
            n = v.arrow.value
            if id(node) not in self.floats_ok:
                self.fail(
                    node,
                    f"expected {what} float, found the int {n}: Python keeps it an int (it "
                    f"prints as {n} and stays an int under + and * with ints); write {float(n)!r}",
                    "float",
                    "int",
                )
            if float(n) != n:
                self.fail(
                    node,
                    f"the int {n} has no float of the same value; write a float literal "
                    f"({float(n)!r})",
                    "float",
                    "int",
                )
            v = Val(Const(FLOAT, float(n)), FLOAT)
        return super().coerce(v, want, node, what)

    def binop(
        self, node: ast.AST, left: ast.expr, op: ast.operator, right: ast.expr, env: Env
    ) -> Val:
        """Also ``sum(xs)`` of floats, and int literals where a float is
        expected (``d.get(k, 0) + x`` of a ``dict[str, float]``), as operands
        of float arithmetic: Python turns the int into the float of the same
        value there, so the int is never seen."""
        if not isinstance(op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            return super().binop(node, left, op, right, env)
        sums = self.sum_binop(node, left, op, right, env)
        if sums is not None:
            return sums
        try:
            return super().binop(node, left, op, right, env)
        except FrontendError as err:
            # Translated again with int literals as floats: a refusal there
            # (a literal with no equal float) is the one to report.
            found = self.float_operands(node, left, op, right, env)
            if found is None:
                raise err from None
            return found

    def float_operands(
        self, node: ast.AST, left: ast.expr, op: ast.operator, right: ast.expr, env: Env
    ) -> Val | None:
        """``left op right`` with the int literals of one operand taken as
        floats, when the other operand is a float (or the int divisor of
        ``/``); else ``None``."""
        for i, side in enumerate((left, right)):
            ok = frozenset(id(n) for n in _value_positions(side))
            outer = self.floats_ok
            try:
                self.floats_ok = outer | ok
                converted = self.expr(side, env)
            finally:
                self.floats_ok = outer
            if converted.type != FLOAT:
                continue
            other = self.expr(right if i == 0 else left, env)
            if other.type == FLOAT or (isinstance(op, ast.Div) and other.type == INT):
                a, b = (converted, other) if i == 0 else (other, converted)
                return self.combine(node, op, a, b)
        return None

    # -- sums of floats ----------------------------------------------------------------

    def sum_binop(
        self, node: ast.AST, left: ast.expr, op: ast.operator, right: ast.expr, env: Env
    ) -> Val | None:
        """``sum(xs)`` of floats as an operand of ``+ - * /`` with a float, or
        as the dividend of ``/``: ``sum(xs, 0.0)``; else ``None``."""
        if not (_is_sum(left) or _is_sum(right)):
            return None
        a = self.float_sum(left, env)
        b = self.float_sum(right, env)
        if a is None and b is None:
            return None
        # Python evaluates the left operand first: so does this.
        a = a if a is not None else self.expr(left, env)
        b = b if b is not None else self.expr(right, env)
        # An int 0 and 0.0 give the same float with a float, and as the
        # dividend of /; elsewhere (int + int) the int would show.
        if isinstance(op, ast.Div) and a.type == FLOAT and _is_sum(left) and b.type in (INT, FLOAT):
            return self.combine(node, op, a, b)
        if a.type == FLOAT and b.type == FLOAT:
            return self.combine(node, op, a, b)
        return None

    def float_sum(self, node: ast.expr, env: Env) -> Val | None:
        """``sum(xs)`` (one argument) of a list of floats as ``sum(xs, 0.0)``, or ``None``."""
        if not (_is_sum(node) and self.src.static(node.func, self.locals) is sum):  # type: ignore[attr-defined]
            return None
        assert isinstance(node, ast.Call)
        xs = self.iterable(node.args[0], env, "sum(...)")
        if xs.type != ListT(FLOAT):
            return None
        return self.fold_sum(node, xs, Val(Const(FLOAT, 0.0), FLOAT))


def _is_sum(node: ast.expr) -> bool:
    """Whether ``node`` is a call ``sum(x)`` of one argument (a name ``sum``)."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "sum"
        and len(node.args) == 1
        and not node.keywords
    )


def _value_positions(node: ast.expr) -> list[ast.expr]:
    """The expressions whose value may be the value of ``node``: itself, the
    branches of a conditional expression, the default of ``d.get(k, v)``."""
    out = [node]
    if isinstance(node, ast.IfExp):
        out += _value_positions(node.body) + _value_positions(node.orelse)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and len(node.args) == 2
    ):
        out += _value_positions(node.args[1])
    return out


class _Found(Exception):
    """A use of a probed container says its item type, ``probe``, is ``item``."""

    def __init__(self, probe: TVar, item: Type) -> None:
        super().__init__()
        self.probe, self.item = probe, item


def _callee(node: ast.expr) -> str | None:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def _probe_in(t: Type) -> TVar | None:
    """The probe (a type variable with a negative id) inside ``t``, if any."""
    if isinstance(t, TVar):
        return t if t.id < 0 else None
    for c in type_children(t):
        found = _probe_in(c)
        if found is not None:
            return found
    return None


def _unify(probe: TVar, have: Type, need: Type) -> Type | None:
    """What ``probe`` in ``have`` must be for ``have`` to be ``need``, or ``None``."""
    if have == probe:
        return need
    if type(have) is not type(need):
        return None
    for a, b in zip(type_children(have), type_children(need), strict=False):
        if _probe_in(a) == probe:
            return _unify(probe, a, b)
    return None
