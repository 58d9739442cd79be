"""Translating ``match`` statements.

Part of the Python front end. A ``match`` on a variant becomes
``distribute >> case``: one branch per tag, in which the cases that can
match that tag are tried in order (class patterns that bind fields,
``_``, captures, ``|`` of classes, enum members). Any other subject is
matched by a chain of ``if`` nodes over tests (literals, ``None``,
``int(x)`` on an optional, tuples, records). A value no case matches
continues after the ``match``, as in Python; if nothing follows, that is
the missing-``return`` error.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from arrowloop.arrows import (
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    GetField,
    Id,
    If,
    Inject,
    Prim,
    Proj,
)
from arrowloop.frontend._env import Env, Slot, Val, assigned, has_return, reads, tuple_of
from arrowloop.frontend._flow import Exit, Flow, Join
from arrowloop.frontend._shapes import BALANCE_FROM, balanced, match_as_if
from arrowloop.frontend._source import MISSING
from arrowloop.frontend._typing import FALSE, TRUE, show
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    OptionT,
    RecordT,
    TupleT,
    Type,
    VariantT,
    case_repr,
    enum_class,
    record_classes,
)

__all__ = ["Patterns"]

#: A pattern's tests (bool arrows, run in order) and the names it binds.
Compiled = tuple[list[Arrow], list[tuple[str, Val]]]
#: For one tag of a variant: the alternatives (pattern, names bound by ``as``).
Alts = list[tuple[ast.pattern, tuple[str, ...]]]
Body = Callable[[ast.match_case, Env], Arrow]
Fall = Callable[[Env], Arrow]

_BUILTIN_CLASSES: dict[type, Type] = {int: INT, float: FLOAT, str: STR, bool: BOOL}
#: Subject types whose literal cases a long match turns into an if/elif chain.
_SCALARS: dict[Type, type] = {INT: int, FLOAT: float, STR: str}


#: A kind of a tuple item that a match does not tell apart (an int, a str, ...).
_ANY: Final = "*"
#: Beyond this many combinations a tuple subject is not checked for exhaustiveness.
_MAX_COMBINATIONS: Final = 4096


def _irrefutable(p: ast.pattern) -> bool:
    """Whether ``p`` matches anything (``_``, a name, ``q as x`` of such a
    ``q``, or an alternative that is one)."""
    match p:
        case ast.MatchAs(pattern=None):
            return True
        case ast.MatchAs(pattern=q) if q is not None:
            return _irrefutable(q)
        case ast.MatchOr(patterns=ps):
            return any(_irrefutable(q) for q in ps)
    return False


def _conj(tests: Sequence[Arrow]) -> Arrow | None:
    """All of ``tests``, stopping at the first false one."""
    if not tests:
        return None
    if len(tests) >= BALANCE_FROM:
        return balanced(tests, lambda a, b: If(a, b, FALSE))
    out = tests[-1]
    for t in reversed(tests[:-1]):
        out = If(t, out, FALSE)
    return out


class Patterns(Flow):
    """``match`` statements, on top of :class:`Flow`."""

    def match_(
        self, s: ast.Match, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        """Translate ``s`` followed by ``rest``."""
        subj = self.expr(s.subject, env)
        kind = _SCALARS.get(subj.type)
        if len(s.cases) >= BALANCE_FROM and kind is not None:
            # Many literal cases: an if/elif chain, which long_if keeps shallow.
            chain = match_as_if(s, f"$match{self.new_key()}", kind)
            if chain is not None:
                return self.block([*chain, *rest], env, exit, s)
        hidden = f"$match{s.lineno}.{s.col_offset}"
        a0, env1 = env.rebuild(env.names(), [(hidden, subj)])
        join: Join | None = None
        if any(has_return(c.body) for c in s.cases):

            def body(case: ast.match_case, e: Env) -> Arrow:
                return self.block([*case.body, *rest], e, exit, s)

            def fall(e: Env) -> Arrow:
                return self.block(rest, e, exit, s)

        else:
            live = self.live(rest, exit)
            join = Join(sorted(live & assigned(s.cases)), frozenset(live) | exit.after)
            j = join

            def body(case: ast.match_case, e: Env) -> Arrow:
                return self.block(case.body, e, j, s)

            def fall(e: Env) -> Arrow:
                return j.finish(self, e, s)

        # Names a pattern binds stay bound in Python when its guard fails:
        # per case, what the later cases and the code after the match read.
        after = self.live(rest, exit)
        leaks = {id(c): frozenset(reads(s.cases[i + 1 :]) | after) for i, c in enumerate(s.cases)}
        if isinstance(subj.type, VariantT):
            arrow = self.variant_match(s, env1, hidden, subj.type, body, fall, leaks)
        else:
            arrow = self.value_match(s, env1, hidden, subj.type, body, fall, leaks)
        if join is None:
            return a0 >> arrow
        glue, after_env = self.join_env(arrow, env1, join, rest, exit, s)
        return a0 >> glue, after_env

    # -- variants ------------------------------------------------------------

    def variant_match(
        self,
        s: ast.Match,
        env1: Env,
        hidden: str,
        vt: VariantT,
        body: Body,
        fall: Fall,
        leaks: Mapping[int, frozenset[str]],
    ) -> Arrow:
        """``distribute >> case``, each tag trying the cases that can match it."""
        per_case = [self.tags_of(c.pattern, vt) for c in s.cases]
        n = env1.arity
        payload = f"{hidden}.payload"
        branches = []
        for tag, pt in vt.cases:
            env_b = Env(
                (*env1.slots, Slot(payload, pt)), env1.declared, env1.unbound, env1.narrowed
            )
            prefix = tuple_of([Proj(1, 2) >> Proj(i, n) for i in range(n)] + [Proj(0, 2)])
            items = [
                (c, alts[tag]) for c, alts in zip(s.cases, per_case, strict=True) if tag in alts
            ]
            chain = self.tag_chain(items, env_b, payload, tag, vt, body, fall, leaks)
            branches.append((tag, prefix >> chain))
        return tuple_of([env1.read(hidden), Id()]) >> Distribute() >> Case(tuple(branches))

    def tag_chain(
        self,
        items: list[tuple[ast.match_case, Alts]],
        env: Env,
        subject: str,
        tag: str,
        vt: VariantT,
        body: Body,
        fall: Fall,
        leaks: Mapping[int, frozenset[str]],
    ) -> Arrow:
        """The cases that can match ``tag``, tried in order."""
        if not items:
            return fall(env)
        if len(items) >= BALANCE_FROM and all(c.guard is None for c, _ in items):
            arms = []
            for c, a in items:
                tests, binds = self.tag_tests(c, a, env.read(subject), tag, vt)
                ext, env_ext = env.rebuild(env.names(), binds)
                arms.append((_conj(tests), lambda c=c, ext=ext, e=env_ext: ext >> body(c, e)))
            return self.indexed(arms, lambda: fall(env))
        case, alts = items[0]
        tests, binds = self.tag_tests(case, alts, env.read(subject), tag, vt)

        def rest(e: Env) -> Arrow:
            return self.tag_chain(items[1:], e, subject, tag, vt, body, fall, leaks)

        return self.arm(case, tests, binds, env, rest, body, leaks)

    def tag_tests(
        self, case: ast.match_case, alts: Alts, acc: Arrow, tag: str, vt: VariantT
    ) -> Compiled:
        """The tests and bindings of ``case`` for a value of case ``tag`` at ``acc``."""
        results = [self.tag_alt(p, names, tag, vt, acc) for p, names in alts]
        if len(results) == 1:
            return results[0]
        if any(b for _, b in results):
            self.fail(
                case.pattern,
                "alternatives (|) that bind names must each match a different case",
            )
        conds = [_conj(t) for t, _ in results]
        return ([] if any(c is None for c in conds) else [self.disj(conds)]), []

    def indexed(
        self,
        arms: Sequence[tuple[Arrow | None, Callable[[], Arrow]]],
        fall: Callable[[], Arrow],
    ) -> Arrow:
        """Run the arm of the first condition that holds (``None`` always
        does), else ``fall``: a long chain of cases kept shallow, as
        ``long_if`` does for ``elif`` (the index of the arm threaded through a
        flat composition, then a balanced dispatch on it)."""
        cut = next((i for i, (c, _) in enumerate(arms) if c is None), None)
        if cut is not None:  # the cases after one that always matches never run
            arms, fall = arms[:cut], arms[cut][1]
        n = len(arms)
        k, e, none = Proj(0, 2), Proj(1, 2), Const(INT, n)
        steps: list[Arrow] = [tuple_of([none, Id()])]
        for i, (cond, _) in enumerate(arms):
            assert cond is not None
            pick = If(tuple_of([k, none]) >> Prim("eq"), If(e >> cond, Const(INT, i), none), k)
            steps.append(tuple_of([pick, e]))
        leaves = [e >> make() for _, make in arms] + [e >> fall()]

        def tree(lo: int, hi: int) -> Arrow:
            if hi - lo == 1:
                return leaves[lo]
            mid = (lo + hi) // 2
            below = tuple_of([k, Const(INT, mid)]) >> Prim("lt")
            return If(below, tree(lo, mid), tree(mid, hi))

        return Compose((*steps, tree(0, n + 1)))

    def disj(self, conds: Sequence[Arrow | None]) -> Arrow:
        """Any of ``conds`` (none of which is ``None``), stopping at the first true one."""
        parts = [c for c in conds if c is not None]
        if len(parts) >= BALANCE_FROM:
            return balanced(parts, lambda a, b: If(a, TRUE, b))
        out = parts[-1]
        for c in reversed(parts[:-1]):
            out = If(c, TRUE, out)
        return out

    def tags_of(self, p: ast.pattern, vt: VariantT) -> dict[str, Alts]:
        """Which tags of ``vt`` the top-level pattern ``p`` can match, and how."""
        match p:
            case ast.MatchAs(pattern=None):
                return {tag: [(p, ())] for tag in vt.tags}
            case ast.MatchAs(pattern=q, name=name) if q is not None:
                inner = self.tags_of(q, vt)
                extra = (name,) if name else ()
                return {t: [(a, names + extra) for a, names in alts] for t, alts in inner.items()}
            case ast.MatchOr(patterns=ps):
                out: dict[str, Alts] = {}
                for q in ps:
                    for t, alts in self.tags_of(q, vt).items():
                        out.setdefault(t, []).extend(alts)
                return out
            case ast.MatchClass(cls=cls_node):
                cls = self.src.static(cls_node, ())
                if not isinstance(cls, type):
                    self.fail(cls_node, f"{ast.unparse(cls_node)} is not a class")
                tags = [
                    tag
                    for tag, pt in vt.cases
                    if isinstance(pt, RecordT)
                    and pt.name == tag
                    and any(issubclass(k, cls) for k in record_classes(pt))
                ]
                # Plain cases (``Hello | str``): ``case int():`` matches a
                # bool too, as isinstance does.
                tags += [
                    tag
                    for tag in vt.tags
                    if (rep := case_repr(vt, tag)).how == "plain"
                    and rep.cls is not None
                    and issubclass(rep.cls, cls)
                ]
                if not tags:
                    self.fail(
                        p,
                        f"{cls.__name__} is not a case of the variant {show(vt)}, so this case "
                        "can never match",
                        show(vt),
                        cls.__name__,
                    )
                return {t: [(p, ())] for t in tags}
            case ast.MatchValue(value=v):
                obj = self.src.static(v, ())
                ecls = enum_class(vt)
                if isinstance(obj, enum.Enum) and ecls is not None and type(obj) is ecls:
                    return {obj.name: [(p, ())]}
        self.fail(
            p,
            f"a match on the variant {show(vt)} takes class patterns (case Count(n=x):), enum "
            "members, | of them, _ or a name",
            "a class pattern",
            ast.unparse(p),
        )

    def tag_alt(
        self, p: ast.pattern, names: tuple[str, ...], tag: str, vt: VariantT, acc: Arrow
    ) -> Compiled:
        """One alternative of a top-level pattern, for the payload of ``tag`` at ``acc``."""
        pt = vt.payload(tag)
        assert pt is not None
        whole = Val(acc >> Inject(tag, vt), vt)
        plain = case_repr(vt, tag).how == "plain"
        as_value = Val(acc, pt) if isinstance(pt, RecordT) or plain else whole
        tests: list[Arrow] = []
        binds: list[tuple[str, Val]] = []
        match p:
            case ast.MatchAs(name=name) if name:
                binds.append((name, whole))
            case ast.MatchClass() if plain:
                binds = self.plain_fields(p, Val(acc, pt))
            case ast.MatchClass():
                assert isinstance(pt, RecordT)
                tests, binds = self.class_fields(p, pt, acc)
        binds += [(n, as_value) for n in names]
        return tests, binds

    def plain_fields(self, p: ast.MatchClass, v: Val) -> list[tuple[str, Val]]:
        """``case str():`` or ``case str(x):`` on a plain case: ``x`` is the value."""
        match p:
            case ast.MatchClass(patterns=[], kwd_patterns=[]):
                return []
            case ast.MatchClass(patterns=[ast.MatchAs(pattern=None, name=name)], kwd_patterns=[]):
                return [(name, v)] if name else []
        self.fail(
            p,
            f"a class pattern of {show(v.type)} in a union takes no sub-pattern or one name "
            f"(case {ast.unparse(p.cls)}(x):); test the value inside the case",
            "case C(x)",
            ast.unparse(p),
        )

    # -- other values --------------------------------------------------------

    def value_match(
        self,
        s: ast.Match,
        env: Env,
        subject: str,
        t: Type,
        body: Body,
        fall: Fall,
        leaks: Mapping[int, frozenset[str]],
    ) -> Arrow:
        """A chain of ``if`` nodes over the cases' tests."""
        full = self.kinds(t)
        covered: set[object] = set()
        total: list[bool] = []  # the case matches whatever the earlier ones left
        for case in s.cases:
            cover = self.covers(case.pattern, t) if full is not None else None
            if case.guard is None and cover is not None:
                covered |= cover
            total.append(covered == full and case.guard is None and cover is not None)

        if len(s.cases) >= BALANCE_FROM and all(c.guard is None for c in s.cases):
            arms = []
            for i, case in enumerate(s.cases):
                tests, binds = self.pattern(case.pattern, t, env.read(subject))
                ext, env_ext = env.rebuild(env.names(), binds)
                cond = None if total[i] else _conj(tests)
                arms.append((cond, lambda c=case, ext=ext, e=env_ext: ext >> body(c, e)))
            return self.indexed(arms, lambda: fall(env))

        def chain(i: int, e: Env) -> Arrow:
            if i == len(s.cases):
                return fall(e)
            case = s.cases[i]
            tests, binds = self.pattern(case.pattern, t, e.read(subject))
            if total[i]:
                tests = []
            return self.arm(case, tests, binds, e, lambda e2: chain(i + 1, e2), body, leaks)

        return chain(0, env)

    def kinds(self, t: Type) -> set[object] | None:
        """The kinds of value of ``t`` a match tells apart without further
        tests (True/False, none/some, a variant's tags, and for a tuple
        subject, ``match msg, state:``, their combinations), or ``None``
        when there are too many or ``t`` has none."""
        if t == BOOL:
            return {True, False}
        if isinstance(t, OptionT):
            return {"none", "some"}
        if isinstance(t, VariantT):
            return set(t.tags)
        if isinstance(t, TupleT):
            combos: set[object] = {()}
            for item in t.items:
                part = self.kinds(item) or {_ANY}
                if len(combos) * len(part) > _MAX_COMBINATIONS:
                    return None
                combos = {(*c, k) for c in combos for k in part if isinstance(c, tuple)}
            return combos
        return None

    def covers(self, p: ast.pattern, t: Type) -> set[object] | None:
        """The kinds of value (see :meth:`kinds`) ``p`` matches without further tests."""
        if _irrefutable(p):
            return self.kinds(t) or {_ANY}
        if isinstance(t, VariantT | TupleT):
            return self.covers_parts(p, t)
        match p:
            case ast.MatchSingleton(value=v):
                return {"none"} if v is None else {v}
            case ast.MatchAs(pattern=q) if q is not None:
                return self.covers(q, t)
            case ast.MatchOr(patterns=ps):
                out: set[object] = set()
                for q in ps:
                    c = self.covers(q, t)
                    if c is None:
                        return None
                    out |= c
                return out
            case ast.MatchClass(cls=c, patterns=ps, kwd_patterns=[]) if isinstance(t, OptionT):
                if _BUILTIN_CLASSES.get(self.src.static(c, ())) == t.item and all(
                    isinstance(q, ast.MatchAs) and q.pattern is None for q in ps
                ):
                    return {"some"}
        return None

    def covers_parts(self, p: ast.pattern, t: VariantT | TupleT) -> set[object]:
        """What ``p`` surely matches of a variant (tags) or a tuple
        (combinations): an under-estimate, so a match is only ever taken as
        exhaustive when it is."""
        match p:
            case ast.MatchAs(pattern=q) if q is not None:
                return self.covers(q, t) or set()
            case ast.MatchOr(patterns=ps):
                return set().union(*(self.covers(q, t) or set() for q in ps))
            case ast.MatchSequence(patterns=ps) if isinstance(t, TupleT) and len(ps) == len(
                t.items
            ):
                combos: set[object] = {()}
                for q, item in zip(ps, t.items, strict=True):
                    part = self.covers(q, item) or set()
                    combos = {(*c, k) for c in combos for k in part if isinstance(c, tuple)}
                return combos
            case ast.MatchClass(cls=cls_node, patterns=ps, kwd_patterns=kps) if isinstance(
                t, VariantT
            ) and all(_irrefutable(q) for q in (*ps, *kps)):
                cls = self.src.static(cls_node, ())
                if not isinstance(cls, type):
                    return set()
                return {
                    tag
                    for tag, pt in t.cases
                    if isinstance(pt, RecordT)
                    and pt.name == tag
                    and any(issubclass(k, cls) for k in record_classes(pt))
                }
            case ast.MatchValue(value=v) if isinstance(t, VariantT):
                obj = self.src.static(v, ())
                ecls = enum_class(t)
                if isinstance(obj, enum.Enum) and ecls is not None and type(obj) is ecls:
                    return {obj.name}
        return set()

    def arm(
        self,
        case: ast.match_case,
        tests: list[Arrow],
        binds: list[tuple[str, Val]],
        env: Env,
        rest: Callable[[Env], Arrow],
        body: Body,
        leaks: Mapping[int, frozenset[str]],
    ) -> Arrow:
        """One case: bind, test the guard, run the body, or go on to ``rest``."""
        ext, env_ext = env.rebuild(env.names(), binds)
        cond = _conj(tests)
        if case.guard is None:
            then = ext >> body(case, env_ext)
            return then if cond is None else If(cond, then, rest(env))
        guard = self.condition(case.guard, env_ext)
        if {n for n, _ in binds} & leaks[id(case)]:
            # Python keeps what a pattern bound when only its guard fails,
            # and the later cases (or the code after) read those names.
            inner = ext >> If(guard, body(case, env_ext), rest(env_ext))
            return inner if cond is None else If(cond, inner, rest(env))
        then = ext >> body(case, env_ext)
        test = ext >> guard if cond is None else If(cond, ext >> guard, FALSE)
        return If(test, then, rest(env))

    def pattern(self, p: ast.pattern, t: Type, acc: Arrow) -> Compiled:
        """Tests and bindings of ``p`` against the value of type ``t`` at ``acc``."""
        match p:
            case ast.MatchAs(pattern=None, name=name):
                return [], ([(name, Val(acc, t))] if name else [])
            case ast.MatchAs(pattern=q, name=name) if q is not None:
                tests, binds = self.pattern(q, t, acc)
                return tests, binds + ([(name, Val(acc, t))] if name else [])
            case ast.MatchValue(value=v):
                lit = self.expr(v, Env(()))
                if lit.type != t:
                    self.mismatch(p, f"a pattern of the subject's type {show(t)}", lit.type)
                return [self.prim("eq", [Val(acc, t), lit], p, "a value pattern").arrow], []
            case ast.MatchSingleton(value=v):
                if v is None:
                    if not isinstance(t, OptionT):
                        self.mismatch(p, "an optional subject (T | None) for None", t)
                    return [acc >> Prim("is_none")], []
                if t != BOOL:
                    self.mismatch(p, f"a bool subject for {v}", t)
                return [
                    self.prim("eq", [Val(acc, t), Val(Const(BOOL, v), BOOL)], p, "==").arrow
                ], []
            case ast.MatchClass():
                return self.class_pattern(p, t, acc)
            case ast.MatchSequence(patterns=ps):
                if not isinstance(t, TupleT) or len(t.items) != len(ps):
                    self.mismatch(p, f"a subject that is a tuple of {len(ps)}", t)
                tests, binds = [], []
                for i, (q, it) in enumerate(zip(ps, t.items, strict=True)):
                    if isinstance(q, ast.MatchStar):
                        self.fail(q, "*rest in sequence patterns is not supported")
                    qt, qb = self.pattern(q, it, acc >> Proj(i, len(ps)))
                    tests += qt
                    binds += qb
                return tests, binds
            case ast.MatchOr(patterns=ps):
                results = [self.pattern(q, t, acc) for q in ps]
                if any(b for _, b in results):
                    self.fail(p, "alternatives (|) that bind names are only supported on variants")
                conds = [_conj(tests) for tests, _ in results]
                return ([] if any(c is None for c in conds) else [self.disj(conds)]), []
        self.fail(
            p,
            f"this pattern is not supported ({type(p).__name__}); supported are literals, None, "
            "True/False, class patterns, tuples, |, _ and names",
            found=type(p).__name__,
        )

    def class_pattern(self, p: ast.MatchClass, t: Type, acc: Arrow) -> Compiled:
        """``int(x)``, ``str()`` (also on optionals) and record class patterns."""
        cls = self.src.static(p.cls, ())
        builtin = _BUILTIN_CLASSES.get(cls) if isinstance(cls, type) else None
        if builtin is not None:
            tests: list[Arrow] = []
            value = acc
            if isinstance(t, OptionT) and t.item == builtin:
                tests.append(acc >> Prim("is_some"))
                value = acc >> Prim("unwrap")
            elif t != builtin:
                self.mismatch(p, f"a subject of type {show(builtin)} (or optional)", t)
            if p.kwd_patterns or len(p.patterns) > 1:
                self.fail(p, f"{cls.__name__}(...) takes at most one pattern (the value itself)")
            if not p.patterns:
                return tests, []
            qt, qb = self.pattern(p.patterns[0], builtin, value)
            return tests + qt, qb
        if (
            isinstance(t, RecordT)
            and isinstance(cls, type)
            and any(issubclass(k, cls) for k in record_classes(t))
        ):
            return self.class_fields(p, t, acc)
        if isinstance(t, VariantT):
            self.fail(
                p,
                "class patterns on a variant are only supported at the top of a match; bind the "
                "field to a name and match on it in a nested match",
            )
        found = cls.__name__ if isinstance(cls, type) else ast.unparse(p.cls)
        self.fail(p, f"the pattern {found}(...) can never match a {show(t)}", show(t), found)

    def class_fields(self, p: ast.MatchClass, rt: RecordT, acc: Arrow) -> Compiled:
        """The field sub-patterns of a class pattern on the record ``rt`` at ``acc``."""
        cls = self.src.static(p.cls, ())
        if cls is MISSING or not isinstance(cls, type):  # pragma: no cover - checked before
            self.fail(p.cls, "expected a class")
        match_args = getattr(cls, "__match_args__", ())
        if len(p.patterns) > len(match_args):
            self.fail(
                p,
                f"{cls.__name__} takes {len(match_args)} positional sub-patterns "
                f"({', '.join(match_args) or 'none'}), found {len(p.patterns)}",
            )
        pairs = list(zip(match_args, p.patterns, strict=False))
        pairs += list(zip(p.kwd_attrs, p.kwd_patterns, strict=True))
        tests: list[Arrow] = []
        binds: list[tuple[str, Val]] = []
        for field, q in pairs:
            ft = rt.field_type(field)
            if ft is None:
                self.fail(q, f"the record {rt.name} has no field {field!r}")
            qt, qb = self.pattern(q, ft, acc >> GetField(field))
            tests += qt
            binds += qb
        return tests, binds
