"""Methods and properties of the user's record classes, factory defaults,
and ``match`` on a tuple of variants.

Part of the Python front end, a layer of the translator. ``r.total()`` and
``r.total`` (an ``@property``), where ``r`` is a record whose class defines
them, are compiled like an ``@arrow`` function whose ``self`` has the
record's type, the body checked again as any function is, and inlined at
the call. Record construction may rely on ``attrs.field(factory=...)`` and
``attrs.Factory(...)`` defaults when the factory is ``list``, ``dict``, a
scalar type or a record class: the factory is called once, when the
function is decorated, and its value becomes a constant of the program
(values never share, so one constant is as good as a fresh object).

``match msg, state:`` whose cases put class patterns inside the tuple
(``case Get(key=k), Stats(n=n):``), every case ending in ``return`` or
``raise``, is translated as one nested ``match`` per case, in order, on the
tuple's items (evaluated once, first): a case that does not match goes on
to the next one, as in Python.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from arrowloop.arrows import Arrow, Const
from arrowloop.errors import FrontendError, ValidationError
from arrowloop.frontend._env import CHANGING_METHODS, Env, Val, place_root, tuple_of
from arrowloop.frontend._flow import Exit
from arrowloop.frontend._narrowing import Narrowing
from arrowloop.frontend._objects import PyFunction
from arrowloop.typesys import RecordT, TupleT, Type, record_class, validate

__all__ = ["Methods"]

_FACTORIES = (list, dict, tuple, str, int, float, bool)

# Methods being compiled, so that a method calling itself is refused
# instead of recursing (the front end never inlines without end).
_compiling: set[Any] = set()
_compiled: dict[tuple[Any, Any], PyFunction] = {}


class Methods(Narrowing):
    """Record methods and properties, and factory defaults."""

    def record_member(self, node: ast.AST, rt: RecordT, name: str, *, called: bool) -> Any:
        """The function behind ``name`` on the class of ``rt`` (a method when
        ``called``, else a property's getter), or ``None``."""
        if rt.field_type(name) is not None:
            return None
        member = inspect.getattr_static(record_class(rt), name, None)
        if called and isinstance(member, types.FunctionType):
            return member
        if not called and isinstance(member, property) and member.fget is not None:
            return member.fget
        return None

    def inline_method(self, node: ast.AST, fn: Any, rt: RecordT) -> PyFunction:
        """``fn`` compiled with ``self`` of type ``rt`` (once per method and type)."""
        # _api imports this module (through _language), so the compiler of
        # functions is imported when first needed.
        from arrowloop.frontend._api import compile_method

        return self.compiled_once(
            node, fn, rt, "method", lambda: compile_method(fn, rt, self.registry)
        )

    def compiled_once(
        self, node: ast.AST, fn: Any, key: Any, kind: str, compile: Callable[[], PyFunction]
    ) -> PyFunction:
        """``compile()``, the program of the ``kind`` (method or function)
        ``fn`` called at ``node``, made once per ``fn`` and ``key``. A call
        back to ``fn`` while it is compiled is recursion, and a body that
        changes a parameter in place (the caller's value, in Python) is
        refused."""
        found = _compiled.get((fn, key))
        if found is not None:
            return found
        name = fn.__qualname__
        if fn in _compiling:
            self.fail(
                node,
                f"recursion is not supported (the {kind} {name} calls itself); use a loop",
                found=fn.__name__,
            )
        src_tree = _method_tree(fn)
        changed = _changes_parameters(src_tree) if src_tree is not None else None
        if changed is not None:
            self.fail(
                node,
                f"the {kind} {name} changes {changed} in place: in Python the caller's value "
                "would change too, but arrowloop values never share; return the new value "
                "instead" + (" (attrs.evolve(self, ...))" if changed == "self" else ""),
                f"a {kind} that changes nothing",
                changed,
            )
        _compiling.add(fn)
        try:
            made = compile()
        finally:
            _compiling.discard(fn)
        _compiled[(fn, key)] = made
        return made

    def method(self, node: ast.Call, f: ast.Attribute, env: Env) -> Val:
        """``r.total(x)`` on a record whose class defines ``total``."""
        recv = self.expr(f.value, env)
        rt = recv.type
        if isinstance(rt, RecordT):
            fn = self.record_member(node, rt, f.attr, called=True)
            if fn is not None:
                pf = self.inline_method(node, fn, rt)
                params = list(pf.params)
                ins = pf.input.items if len(params) > 1 and hasattr(pf.input, "items") else None
                want = list(ins)[1:] if ins is not None else []
                if node.keywords or len(node.args) != len(want):
                    self.fail(
                        node,
                        f"{rt.name}.{f.attr} takes {len(want)} positional argument(s) here",
                        str(len(want)),
                        str(len(node.args)),
                    )
                args = [self.expr(a, env, t) for a, t in zip(node.args, want, strict=True)]
                arrow = recv.arrow if not args else tuple_of([recv.arrow, *(a.arrow for a in args)])
                return Val(arrow >> pf.function.arrow, pf.output)
        return super().method(node, f, env)

    def attribute(self, node: ast.Attribute, env: Env) -> Val:
        """``r.total`` where ``total`` is a property of the record's class."""
        if isinstance(node.value, ast.Name) and env.find(node.value.id) is not None:
            base = self.expr(node.value, env)
            if isinstance(base.type, RecordT):
                getter = self.record_member(node, base.type, node.attr, called=False)
                if getter is not None:
                    pf = self.inline_method(node, getter, base.type)
                    return Val(base.arrow >> pf.function.arrow, pf.output)
        return super().attribute(node, env)

    def default(self, node: ast.AST, field: attrs.Attribute[Any], t: Type) -> Val | None:
        """Also ``attrs.field(factory=list)`` and ``attrs.Factory(Stats)`` defaults."""
        d: Any = field.default
        if not isinstance(d, attrs.Factory):  # type: ignore[arg-type]
            return super().default(node, field, t)
        factory = d.factory
        if d.takes_self or not (factory in _FACTORIES or attrs.has(factory)):
            self.fail(
                node,
                f"the field {field.name} has a factory default the front end cannot use "
                "(supported: list, dict, scalar types and record classes, not taking self); "
                "pass the field explicitly",
            )
        value = factory()
        try:
            validate(t, value, field.name, wire=True)
        except ValidationError as exc:
            self.fail(node, f"the default of the field {field.name} is not usable: {exc}")
        return Val(Const(t, value), t)

    def match_(
        self, s: ast.Match, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        """Also ``match a, b:`` with class patterns inside the tuple (see the module)."""
        stmts = _tuple_cases(s)
        if stmts is not None:
            if self.exhaustive(s, env):
                # Every value matches a case (each of which returns or
                # raises): what follows is never reached, so a path that
                # ends here (Python's None) does not exist.
                stmts.append(_unreachable(s))
            return self.block([*stmts, *rest], env, exit, s)
        return super().match_(s, rest, env, exit)

    def exhaustive(self, s: ast.Match, env: Env) -> bool:
        """Whether the cases without guards of ``match a, b:`` cover every
        combination of tags, bools and none/some of its items' types."""
        assert isinstance(s.subject, ast.Tuple)
        mark = self.mark()
        try:
            t = TupleT(tuple(self.expr(e, env).type for e in s.subject.elts))
        except FrontendError:
            return False
        finally:
            self.forget(mark)
        full = self.kinds(t)
        covered: set[object] = set()
        for case in s.cases:
            if case.guard is None:
                covered |= self.covers(case.pattern, t) or set()
        return full is not None and full <= covered


def _unreachable(s: ast.Match) -> ast.stmt:
    """``raise AssertionError(...)`` where no value can arrive."""
    exc = ast.Call(
        func=ast.Name(id="AssertionError", ctx=ast.Load()),
        args=[ast.Constant(value="no case of the match matched")],
        keywords=[],
    )
    return ast.fix_missing_locations(ast.copy_location(ast.Raise(exc=exc, cause=None), s))


def _wild(p: ast.pattern) -> bool:
    return isinstance(p, ast.MatchAs) and p.pattern is None and p.name is None


def _ends(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


def _tuple_cases(s: ast.Match) -> list[ast.stmt] | None:
    """``s`` as a sequence of nested matches, one per case, or ``None`` when
    it is not a match on a tuple display that needs it."""
    subj = s.subject
    if not isinstance(subj, ast.Tuple) or any(isinstance(e, ast.Starred) for e in subj.elts):
        return None
    k = len(subj.elts)
    rows: list[tuple[list[ast.pattern] | None, ast.match_case]] = []
    for case in s.cases:
        p = case.pattern
        if _wild(p):
            rows.append((None, case))
        elif isinstance(p, ast.MatchSequence) and len(p.patterns) == k:
            if any(isinstance(q, ast.MatchStar) for q in p.patterns):
                return None
            rows.append((list(p.patterns), case))
        else:
            return None
        if not _ends(case.body):
            return None
    if not any(isinstance(q, ast.MatchClass) for ps, _ in rows for q in ps or () if ps is not None):
        return None  # the plain translation handles it
    captured = {n for c in s.cases for n in _captures(c.pattern)}
    # A local name is read as it is (a temporary holding it would be one
    # more name sharing its list or dict, for the check of in-place changes).
    names = [
        e.id
        if isinstance(e, ast.Name) and e.id not in captured
        else f"$tuple{s.lineno}.{s.col_offset}.{i}"
        for i, e in enumerate(subj.elts)
    ]
    out: list[ast.stmt] = [
        ast.copy_location(
            ast.Assign(targets=[ast.Name(id=n, ctx=ast.Store())], value=e, lineno=e.lineno), e
        )
        for n, e in zip(names, subj.elts, strict=True)
        if not (isinstance(e, ast.Name) and e.id == n)
    ]
    for ps, case in rows:
        if ps is None:
            if case.guard is None:
                out.extend(case.body)
                break
            out.append(
                ast.copy_location(ast.If(test=case.guard, body=case.body, orelse=[]), case.guard)
            )
            continue
        inner: list[ast.stmt] = case.body
        guard = case.guard
        for j in reversed(range(k)):
            if _wild(ps[j]) and not (
                guard is not None and j == max((i for i in range(k) if not _wild(ps[i])), default=0)
            ):
                continue
            subject = ast.copy_location(ast.Name(id=names[j], ctx=ast.Load()), ps[j])
            mc = ast.match_case(pattern=ps[j], guard=guard, body=inner)
            inner = [ast.copy_location(ast.Match(subject=subject, cases=[mc]), ps[j])]
            guard = None
        if guard is not None:  # every item a wildcard
            inner = [ast.copy_location(ast.If(test=guard, body=inner, orelse=[]), guard)]
        out.extend(inner)
    return out


def _captures(p: ast.pattern) -> set[str]:
    """The names a pattern binds."""
    return {
        n
        for q in ast.walk(p)
        for n in (
            getattr(q, "name", None),
            getattr(q, "rest", None),
        )
        if isinstance(n, str)
    }


def _method_tree(fn: Any) -> ast.FunctionDef | None:
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None  # compile_method reports it
    node = ast.parse(text).body[0]
    return node if isinstance(node, ast.FunctionDef) else None


def _changes_parameters(tree: ast.FunctionDef) -> str | None:
    """The first parameter the body changes in place (``self.seen[k] = v``,
    ``self.items.append(x)``), or ``None``."""
    params = {a.arg for a in [*tree.args.posonlyargs, *tree.args.args]}
    for node in ast.walk(tree):
        places: list[ast.expr] = []
        match node:
            case ast.Assign(targets=targets) | ast.Delete(targets=targets):
                places = [t for t in targets if isinstance(t, ast.Subscript | ast.Attribute)]
            case ast.AugAssign(target=ast.Subscript() | ast.Attribute() as target):
                places = [target]
            case ast.Call(func=ast.Attribute(attr=attr, value=recv)) if attr in CHANGING_METHODS:
                places = [recv]
        for p in places:
            root = place_root(p)
            if root in params:
                return root
    return None
