"""Module-level dicts, lists and sets as constants, and plain helper functions.

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together).

**Container constants.** A module-level ``dict``, ``list`` or ``set`` that a
function reads (``PRICES[item]``, ``k in TABLE``, ``for x in ORDER``) is a
constant of the program, captured (copied) when the function is decorated,
like a module-level int. Its type is the module's annotation of the name
when there is one (``TABLE: dict[str, int] = {}``), else read off the
value (one key type and one value type). A dict's entries travel on the wire
in canonical key order (docs/arrows.md, 5.4); a dict whose Python order is
another is therefore the constant list of its ``(key, value)`` pairs turned
into a dict (``map_of_items``) where it is read, so the order a loop sees is
Python's everywhere. A function that changes such a constant (through its
name, or through a local that may hold it or a part of it) is refused: in
Python the change would persist in the module for every later call.

**Helper functions.** A plain module-level function called from a step
(``kind = char_kind(ch)``) whose parameters and return are annotated is
compiled like an ``@arrow`` function, once, and its program inlined at the
call, as for ``@arrow`` functions. Its body must be in the subset; it may
not call itself (directly or through other helpers) nor change its
arguments in place (the caller's value would change in Python).
"""

from __future__ import annotations

import ast
import copy
import enum
import inspect
import types
from typing import Any

from arrowloop.arrows import Const, Prim
from arrowloop.errors import FrontendError, TypeDefinitionError, ValidationError
from arrowloop.frontend._env import CHANGING_METHODS, Env, Val, place_root
from arrowloop.frontend._flow import Exit
from arrowloop.frontend._objects import PyFunction
from arrowloop.frontend._sharing import ANY, SAME
from arrowloop.frontend._strmore import MoreStrings
from arrowloop.frontend._typing import show
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    SetT,
    TupleT,
    Type,
    from_annotation,
    sorted_keys,
    validate,
)

__all__ = ["Globals"]

_CONTAINERS = (dict, list, set)
#: Methods that change a dict, list or set in place.
_CHANGERS = CHANGING_METHODS | {"insert", "remove", "sort", "reverse", "update", "popitem"}


class Globals(MoreStrings):
    """Container constants and helper functions, on top of :class:`MoreStrings`."""

    # -- container constants ---------------------------------------------------

    def global_value(self, node: ast.expr, name: str, where: str, obj: Any) -> Val:
        """A module-level dict, list or set as a constant; the rest as before."""
        holds = type(obj) in _CONTAINERS or (type(obj) is tuple and _may_hold_container(obj))
        if where != "global" or not holds:
            return super().global_value(node, name, where, obj)
        t = self.constant_type(node, name, obj)
        value = copy.deepcopy(obj)
        try:
            validate(t, value, name, wire=True)
        except ValidationError as exc:
            self.fail(node, f"{name} cannot be used as a constant of type {show(t)}: {exc}")
        nested = _unsorted_inner_dict(value, top=True)
        if nested:
            self.fail(
                node,
                f"{name} holds a dict inside another value whose keys are not in sorted order; "
                "a constant's inner dicts travel with sorted keys: write their keys sorted",
                "sorted keys",
                name,
            )
        if isinstance(value, dict) and list(value) != sorted_keys(value):
            assert isinstance(t, MapT)
            pairs_t = ListT(TupleT((t.key, t.value)))
            return Val(Const(pairs_t, list(value.items())) >> Prim("map_of_items"), t)
        return Val(Const(t, value), t)

    def constant_type(self, node: ast.expr, name: str, obj: Any) -> Type:
        """The type of a container constant: its module annotation, or read off it."""
        ann = self.src.fn.__globals__.get("__annotations__", {}).get(name)
        if ann is not None:
            tree = ast.parse(ann, mode="eval").body if isinstance(ann, str) else None
            if tree is not None:
                return self.src.annotation(tree, f"the constant {name}")
            try:
                return from_annotation(ann, name)
            except TypeDefinitionError as exc:
                self.fail(node, str(exc))
        t = self.value_type(obj)
        if t is None:
            self.fail(
                node,
                f"cannot tell the type of the constant {name} from its value (empty, or items "
                f"of different types); annotate it at module level ({name}: dict[str, int] = "
                "...)",
                "an annotated constant",
                name,
            )
        return t

    def value_type(self, obj: Any) -> Type | None:
        """The type of a constant read off the value, or ``None``."""
        if obj is None:
            return UNIT
        for py, t in ((bool, BOOL), (int, INT), (float, FLOAT), (str, STR)):
            if type(obj) is py:
                return t
        if isinstance(obj, enum.Enum):
            return from_annotation(type(obj))
        if type(obj) is tuple:
            items = [self.value_type(x) for x in obj]
            return None if None in items else TupleT(tuple(i for i in items if i is not None))
        if type(obj) in _CONTAINERS:
            if not obj:
                return None
            if isinstance(obj, dict):
                k, v = _one_type(self, obj.keys()), _one_type(self, obj.values())
                return None if k is None or v is None else MapT(v, k)
            item = _one_type(self, obj)
            return None if item is None else (ListT(item) if type(obj) is list else SetT(item))
        try:
            return from_annotation(type(obj))
        except TypeDefinitionError:
            return None

    # -- changing a constant is refused ------------------------------------------

    def mutation(self, s: ast.stmt, rest: Any, env: Env, exit: Exit) -> tuple[Any, Env] | None:
        """Refuse a change of a module-level container, directly or through a
        local that may hold it; the rest as before."""
        root = _changed_root(s)
        if (
            root is not None
            and env.find(root) is None
            and root not in _python_locals(self.src.tree)
            and self.global_container(root)
        ):
            self.refuse_change(s, root, root)
        before = len(self._changes)
        out = super().mutation(s, rest, env, exit)
        for c in self._changes[before:]:
            for other in self._linked(c.root):
                if self.global_container(other) and env.find(other) is None:
                    self.refuse_change(s, c.root, other)
        return out

    def note_sharing(
        self, name: str, value: ast.expr | None, node: ast.AST, env: Env, how: str = SAME
    ) -> None:
        """Also: ``name`` may hold (a part of) a module-level container read in ``value``."""
        super().note_sharing(name, value, node, env, how)
        if value is None or name.startswith("$"):
            return
        for g in self.global_sources(value, env):
            self._link(name, g, node, ANY)
            self._link(g, name, node, ANY)

    def global_sources(self, e: ast.expr, env: Env) -> set[str]:
        """The module-level containers whose lists, dicts or sets the value of
        ``e`` may be or contain (as the mutation layer's ``_sources`` for locals)."""
        match e:
            case ast.Name(id=n):
                known = env.find(n) is not None or n in _python_locals(self.src.tree)
                return {n} if not known and self.global_container(n) else set()
            case ast.Constant() | ast.Compare() | ast.BoolOp() | ast.JoinedStr():
                return set()
            case ast.Call(func=ast.Name(id="len" | "str" | "int" | "float" | "bool" | "abs")):
                return set()
            case (
                ast.Call(func=ast.Name(id="list" | "dict" | "set" | "sorted"), args=[arg])
                | ast.Call(func=ast.Attribute(value=arg, attr="copy"), args=[])
            ):
                # A new container: it shares only the elements, if they hold any.
                inner = self.global_sources(arg, env)
                return {g for g in inner if _elements_hold_containers(self.src.lookup(g)[1])}
        out: set[str] = set()
        for child in ast.iter_child_nodes(e):
            if isinstance(child, ast.expr):
                out |= self.global_sources(child, env)
        return out

    def global_container(self, name: str) -> bool:
        """Whether ``name`` is a module-level dict, list or set (or a record
        or tuple, which may hold one) of this function's module."""
        where, obj = self.src.lookup(name)
        return where == "global" and (type(obj) in _CONTAINERS or _may_hold_container(obj))

    def refuse_change(self, s: ast.stmt, root: str, constant: str) -> None:
        """Refuse the change ``s`` of the module-level ``constant``."""
        via = "" if root == constant else f" ({root} may hold it or a part of it)"
        local = "d" if root == constant else root
        kind = type(self.src.lookup(constant)[1])
        made = kind.__name__ if kind in _CONTAINERS else "copy.deepcopy"
        self.fail(
            s,
            f"this changes the module-level {constant}{via}: in Python the change would stay "
            "in the module for every later call, but a machine's only memory is its state; "
            f"copy it into a local first ({local} = {made}({constant})) or keep it in the state",
            "a change of a local or the state",
            constant,
        )

    # -- helper functions ---------------------------------------------------------

    def call_object(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """A plain annotated module-level function: compiled and inlined."""
        if isinstance(obj, types.FunctionType) and self.prim_of(obj) is None:
            if _plain_function(obj):
                return super().call_object(node, self.helper(node, obj), env)
            if not _library(obj):
                fname = ast.unparse(node.func)
                self.fail(
                    node.func,
                    f"{fname} cannot be called here (unknown calls may have side effects); "
                    "annotate its parameters and return to compile it as a helper (its body "
                    "in the subset), or register it with @arrowloop.primitive",
                    found=fname,
                )
        return super().call_object(node, obj, env)

    def helper(self, node: ast.AST, fn: Any) -> PyFunction:
        """``fn`` compiled like an ``@arrow`` function (once per registry)."""
        # _api imports this module (through _language): imported when needed.
        from arrowloop.frontend._api import arrow

        def compile() -> PyFunction:
            try:
                made: PyFunction = arrow(fn, registry=self.registry)
            except FrontendError as err:
                self.fail(
                    node, f"the function {fn.__qualname__} called here is outside the subset: {err}"
                )
            return made

        return self.compiled_once(node, fn, self.registry, "function", compile)


def _one_type(g: Globals, values: Any) -> Type | None:
    types_ = {g.value_type(v) for v in values}
    return types_.pop() if len(types_) == 1 else None


def _elements_hold_containers(obj: Any) -> bool:
    items = obj.values() if isinstance(obj, dict) else obj if type(obj) in _CONTAINERS else ()
    return any(type(x) in _CONTAINERS or _may_hold_container(x) for x in items)


def _may_hold_container(obj: Any) -> bool:
    if type(obj) is tuple:
        return any(type(x) in _CONTAINERS or _may_hold_container(x) for x in obj)
    if hasattr(type(obj), "__attrs_attrs__"):
        return any(
            type(getattr(obj, a.name, None)) in _CONTAINERS for a in type(obj).__attrs_attrs__
        )
    return False


def _unsorted_inner_dict(value: Any, *, top: bool = False) -> bool:
    """Whether a dict below the top of ``value`` has its keys out of canonical order."""
    if isinstance(value, dict):
        if not top and list(value) != sorted_keys(value):
            return True
        return any(_unsorted_inner_dict(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_unsorted_inner_dict(v) for v in value)
    return False


def _changed_root(s: ast.stmt) -> str | None:
    """The name whose list, dict or set the statement ``s`` changes in place, if any."""
    match s:
        case ast.Assign(targets=targets) | ast.Delete(targets=targets):
            for t in targets:
                if isinstance(t, ast.Subscript | ast.Attribute):
                    return place_root(t)
        case ast.AugAssign(target=target):
            return place_root(target)
        case ast.Expr(value=ast.Call(func=ast.Attribute(value=recv, attr=m))) if m in _CHANGERS:
            return place_root(recv)
    match s:
        case ast.Assign(value=ast.Call(func=ast.Attribute(value=recv, attr="pop" | "setdefault"))):
            return place_root(recv)
    return None


def _python_locals(tree: ast.FunctionDef) -> frozenset[str]:
    """The parameters and the names assigned as names in ``tree``: Python's
    locals of the function, not the module's names (kept on the tree)."""
    known: frozenset[str] | None = getattr(tree, "_arrowloop_locals", None)
    if known is None:
        args = tree.args
        known = frozenset(
            [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
            + [
                n.id
                for n in ast.walk(tree)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            ]
        )
        setattr(tree, "_arrowloop_locals", known)  # noqa: B010 - not an ast field
    return known


def _library(fn: Any) -> bool:
    """Whether ``fn`` belongs to attrs or arrowloop (never compiled as a helper)."""
    return str(fn.__module__).split(".")[0] in ("attr", "attrs", "arrowloop")


def _plain_function(obj: Any) -> bool:
    """A module-level Python function with every parameter and the return annotated."""
    if not isinstance(obj, types.FunctionType) or _library(obj):
        return False
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return sig.return_annotation is not inspect.Signature.empty and all(
        p.kind is p.POSITIONAL_OR_KEYWORD and p.annotation is not p.empty
        for p in sig.parameters.values()
    )
