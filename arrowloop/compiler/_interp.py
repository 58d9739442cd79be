"""The reference interpreter: evaluates a checked program by walking it.

Slow and obviously right; it exists so that the code generator can be tested
against it (differential tests), never to run production traffic.
"""

from __future__ import annotations

from typing import Any

from arrowloop.arrows import (
    MAX_ITERATIONS,
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
    MakeRecord,
    MapList,
    Prim,
    Proj,
    SetField,
    Split,
    While,
)
from arrowloop.check import Typed, TypedLoop
from arrowloop.errors import IterationLimitError
from arrowloop.typesys import (
    RecordT,
    Tagged,
    TupleT,
    VariantT,
    case_repr,
    record_class,
    tag_and_payload,
)

__all__ = ["interpret", "interpret_step"]


def interpret(t: Typed, x: Any) -> Any:
    """Evaluate the checked program ``t`` on the value ``x``."""
    match t.node:
        case Id():
            return x
        case Compose():
            for k in t.children:
                x = interpret(k, x)
            return x
        case Split():
            return tuple(interpret(k, v) for k, v in zip(t.children, x, strict=True))
        case Fanout():
            return tuple(interpret(k, x) for k in t.children)
        case Proj(index=i):
            return x[i]
        case Const(value=v):
            return v
        case Inject(tag=tag):
            assert isinstance(t.output, VariantT)
            rep = case_repr(t.output, tag)
            if rep.how in ("record", "plain"):
                return x
            return rep.member if rep.how == "enum" else Tagged(tag, x)
        case Case(branches=branches):
            tag, payload = tag_and_payload(x)
            for (btag, _), kid in zip(branches, t.children, strict=True):
                if btag == tag:
                    return interpret(kid, payload)
            raise TypeError(f"no branch for tag {tag!r}")
        case Distribute():
            v, b = x
            tag, payload = tag_and_payload(v)
            return Tagged(tag, (payload, b))
        case If():
            cond, then, orelse = t.children
            return interpret(then if interpret(cond, x) else orelse, x)
        case MakeRecord(record=rt):
            cls = record_class(rt)
            n = len(rt.fields)
            return cls() if n == 0 else cls(x) if n == 1 else cls(*x)
        case GetField(field=name):
            return getattr(x, name)
        case SetField(field=name):
            # Positional, like the generated code: attrs.evolve takes __init__
            # aliases, which differ from field names such as ``_a``.
            rec, v = x
            out_t = t.output
            assert isinstance(out_t, RecordT)
            args = [v if f == name else getattr(rec, f) for f, _ in out_t.fields]
            return record_class(out_t)(*args)
        case Prim():
            sig = t.signature
            assert sig is not None
            return sig.fn(*x) if isinstance(sig.input, TupleT) else sig.fn(x)
        case MapList():
            return [interpret(t.children[0], v) for v in x]
        case Fold():
            acc, xs = x
            for v in xs:
                acc = interpret(t.children[0], (acc, v))
            return acc
        case While():
            cond, body = t.children
            n = 0
            while interpret(cond, x):
                if n == MAX_ITERATIONS:
                    raise IterationLimitError(MAX_ITERATIONS)
                n += 1
                x = interpret(body, x)
            return x
    raise TypeError(f"cannot interpret {type(t.node).__name__}")  # pragma: no cover


def interpret_step(tl: TypedLoop, input: Any, state: Any) -> tuple[Any, Any]:
    """One step of a checked loop: ``(input, state) -> (state, output)``."""
    out = interpret(tl.body, (input, state))
    return out[0], out[1]
