"""The JSON forms of types, values, programs and loops, and strict decoders.

Encoders produce plain JSON data (dicts, lists, scalars) in canonical form;
decoders accept only exactly that shape: every node's kind must be known,
every required field present, no field unknown, every arity right, every
constant valid for its declared type. Any problem raises one
:class:`~arrowloop.errors.DecodeError` whose ``path`` is a JSON path into
the document (``$.body.steps[2].parts[0]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from arrowloop.arrows import (
    PRIMITIVES,
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
    Prim,
    Proj,
    Registry,
    SetField,
    Split,
    While,
    current_meter,
)
from arrowloop.errors import ArrowloopError, DecodeError, TypeDefinitionError, ValidationError
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    Type,
    VariantT,
    bound_record_type,
    from_json,
    to_json,
    validate,
)

__all__ = [
    "encode_type",
    "decode_type",
    "encode_value",
    "decode_value",
    "encode_arrow",
    "decode_arrow",
    "encode_loop",
    "decode_loop",
    "Decoder",
]

_T = TypeVar("_T")

_SCALARS: dict[str, Type] = {"unit": UNIT, "bool": BOOL, "int": INT, "float": FLOAT, "str": STR}


# -- encoding ----------------------------------------------------------------


def encode_type(t: Type) -> Any:
    """The JSON form of a type (type variables have none)."""
    match t:
        case TupleT(items=items):
            return {"kind": "tuple", "items": [encode_type(x) for x in items]}
        case ListT(item=item):
            return {"kind": "list", "item": encode_type(item)}
        case MapT(value=v, key=k):
            # A str key is left out: the maps of old keep their form, and
            # the programs that use them their versions.
            if k == STR:
                return {"kind": "map", "value": encode_type(v)}
            return {"kind": "map", "key": encode_type(k), "value": encode_type(v)}
        case SetT(item=item):
            return {"kind": "set", "item": encode_type(item)}
        case OptionT(item=item):
            return {"kind": "option", "item": encode_type(item)}
        case RecordT(name=name, fields=fields):
            return {
                "kind": "record",
                "name": name,
                "fields": [[f, encode_type(ft)] for f, ft in fields],
            }
        case VariantT(name=name, cases=cases):
            return {
                "kind": "variant",
                "name": name,
                "cases": [[c, encode_type(p)] for c, p in cases],
            }
    if t.kind in _SCALARS:
        return {"kind": t.kind}
    raise ValueError(f"the type {t!r} has no wire form (unresolved type variable)")


def encode_value(t: Type, value: Any) -> Any:
    """The JSON form of ``value`` of type ``t`` (validated first).

    Raises:
        ValidationError: ``value`` is not a value of ``t``.
    """
    validate(t, value, wire=True)
    return to_json(t, value)


def encode_arrow(a: Arrow) -> Any:
    """The JSON form of a program."""
    match a:
        case Id():
            return {"kind": "id"}
        case Compose(steps=steps):
            return {"kind": "compose", "steps": [encode_arrow(s) for s in steps]}
        case Split(parts=parts):
            return {"kind": "split", "parts": [encode_arrow(p) for p in parts]}
        case Fanout(parts=parts):
            return {"kind": "fanout", "parts": [encode_arrow(p) for p in parts]}
        case Proj(index=i, arity=n):
            return {"kind": "proj", "index": i, "arity": n}
        case Const(type=t, value=v):
            return {"kind": "const", "type": encode_type(t), "value": encode_value(t, v)}
        case Inject(tag=tag, variant=vt):
            return {
                "kind": "inject",
                "tag": tag,
                "variant": None if vt is None else encode_type(vt),
            }
        case Case(branches=branches):
            return {"kind": "case", "branches": {tag: encode_arrow(b) for tag, b in branches}}
        case Distribute():
            return {"kind": "distribute"}
        case If(cond=c, then=th, orelse=el):
            return {
                "kind": "if",
                "cond": encode_arrow(c),
                "then": encode_arrow(th),
                "else": encode_arrow(el),
            }
        case MakeRecord(record=rt):
            return {"kind": "make", "record": encode_type(rt)}
        case GetField(field=f):
            return {"kind": "get", "field": f}
        case SetField(field=f):
            return {"kind": "set", "field": f}
        case Prim(name=name):
            return {"kind": "prim", "name": name}
        case MapList(fn=fn):
            return {"kind": "map", "fn": encode_arrow(fn)}
        case Fold(fn=fn):
            return {"kind": "fold", "fn": encode_arrow(fn)}
        case While(cond=c, body=b):
            return {"kind": "while", "cond": encode_arrow(c), "body": encode_arrow(b)}
    raise ValueError(f"no wire form for {type(a).__name__}")  # pragma: no cover


def encode_loop(lp: Loop) -> Any:
    """The JSON form of a loop: body, state type and initial state."""
    return {
        "kind": "loop",
        "body": encode_arrow(lp.body),
        "state": encode_type(lp.state),
        "init": encode_value(lp.state, lp.init),
    }


# -- decoding ----------------------------------------------------------------


def json_kind(data: Any) -> str:
    """What a parsed JSON value is, in JSON's terms (``an array``), for ``found``."""
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, int | float):
        return "a number"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, list):
        return "an array"
    if isinstance(data, dict):
        return "an object"
    return type(data).__name__


class Decoder:
    """Strict decoding with a node budget; one instance per document."""

    def __init__(self, max_nodes: int, registry: Registry = PRIMITIVES) -> None:
        self.budget = max_nodes
        self.registry = registry
        # The change's budget, if one is being decoded (for its wall time).
        self.meter = current_meter()

    def fail(self, path: str, expected: str, found: str) -> DecodeError:
        return DecodeError(
            f"expected {expected}, found {found}", path=path, expected=expected, found=found
        )

    def spend(self, path: str, cost: int = 1) -> None:
        self.budget -= cost
        if self.budget < 0:
            raise self.fail(path, "fewer program nodes and type terms (node limit reached)", "more")
        if self.meter is not None:
            self.meter.tick(path)

    def obj(
        self, data: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if type(data) is not dict:
            raise self.fail(path, "an object", json_kind(data))
        for key in required:
            if key not in data:
                raise self.fail(path, f'a field "{key}"', "it missing")
        for key in data:
            if key not in required and key not in optional:
                raise self.fail(
                    f"{path}.{key}"[:200],
                    f"only the fields {list(required + optional)}",
                    f"the field {key!r:.40}",
                )
        return data

    def string(self, data: Any, path: str) -> str:
        if type(data) is not str:
            raise self.fail(path, "a string", json_kind(data))
        return data

    def integer(self, data: Any, path: str) -> int:
        if type(data) is not int:
            raise self.fail(path, "an integer", json_kind(data))
        return data

    def array(self, data: Any, path: str, min_len: int = 0) -> list[Any]:
        if type(data) is not list:
            raise self.fail(path, "an array", json_kind(data))
        if len(data) < min_len:
            raise self.fail(path, f"an array of at least {min_len}", f"an array of {len(data)}")
        return data

    def kind(self, data: Any, path: str) -> str:
        if type(data) is not dict:
            raise self.fail(path, 'an object with a "kind"', json_kind(data))
        k = data.get("kind")
        if type(k) is not str:
            raise self.fail(f"{path}.kind", "a kind string", json_kind(k))
        return k

    def build(self, path: str, make: Callable[[], _T]) -> _T:
        """Run a constructor, turning its complaints into a DecodeError at ``path``."""
        try:
            return make()
        except DecodeError:
            raise
        except (ArrowloopError, ValueError, TypeError) as exc:
            msg = getattr(exc, "message", str(exc))
            raise DecodeError(
                str(msg),
                path=path,
                expected=getattr(exc, "expected", None),
                found=getattr(exc, "found", None),
            ) from None

    # -- types ----------------------------------------------------------

    def type(self, data: Any, path: str) -> Type:
        self.spend(path)
        k = self.kind(data, path)
        if k in _SCALARS:
            self.obj(data, path, ("kind",))
            return _SCALARS[k]
        if k == "tuple":
            d = self.obj(data, path, ("kind", "items"))
            items = self.array(d["items"], f"{path}.items")
            return TupleT(tuple(self.type(x, f"{path}.items[{i}]") for i, x in enumerate(items)))
        if k == "list":
            d = self.obj(data, path, ("kind", "item"))
            return ListT(self.type(d["item"], f"{path}.item"))
        if k == "map":
            if isinstance(data, dict) and "key" in data:
                d = self.obj(data, path, ("kind", "key", "value"))
                kt = self.type(d["key"], f"{path}.key")
                if kt == STR:
                    # Canonical forms only: a str key is written by omission.
                    raise self.fail(
                        f"{path}.key", "no key for a str-keyed map (its canonical form)", "str"
                    )
            else:
                d = self.obj(data, path, ("kind", "value"))
                kt = STR
            value = self.type(d["value"], f"{path}.value")
            return self.build(path, lambda: MapT(value, kt))
        if k == "set":
            d = self.obj(data, path, ("kind", "item"))
            item = self.type(d["item"], f"{path}.item")
            return self.build(path, lambda: SetT(item))
        if k == "option":
            d = self.obj(data, path, ("kind", "item"))
            item = self.type(d["item"], f"{path}.item")
            return self.build(path, lambda: OptionT(item))
        if k in ("record", "variant"):
            key = "fields" if k == "record" else "cases"
            d = self.obj(data, path, ("kind", "name", key))
            name = self.string(d["name"], f"{path}.name")
            pairs = []
            for i, pair in enumerate(self.array(d[key], f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                arr = self.array(pair, p)
                if len(arr) != 2:
                    raise self.fail(p, "a pair [name, type]", f"an array of {len(arr)}")
                pairs.append((self.string(arr[0], f"{p}[0]"), self.type(arr[1], f"{p}[1]")))
            if k == "record":
                rt = self.build(path, lambda: RecordT(name, tuple(pairs)))
                return bound_record_type(rt)
            if k == "variant" and [c for c, _ in pairs] != sorted(c for c, _ in pairs):
                raise self.fail(
                    f"{path}.cases", "cases sorted by tag (canonical form)", "them unsorted"
                )
            return self.build(path, lambda: VariantT(name, tuple(pairs)))
        raise self.fail(
            f"{path}.kind",
            "a type kind (unit, bool, int, float, str, tuple, list, map, option, record, variant)",
            f"{k!r:.40}",
        )

    def value(self, t: Type, data: Any, path: str) -> Any:
        try:
            return from_json(t, data, path)
        except (ValidationError, TypeDefinitionError) as exc:
            # TypeDefinitionError: no class can be made for a record type
            # (the process-wide binding table is full).
            raise DecodeError(
                exc.message, path=exc.path, expected=exc.expected, found=exc.found
            ) from None
        except RecursionError:
            raise self.fail(path, "a shallower value", "one nested too deeply") from None

    # -- programs -------------------------------------------------------

    def arrow(self, data: Any, path: str) -> Arrow:
        self.spend(path)
        k = self.kind(data, path)
        fields = _ARROW_FIELDS.get(k)
        if fields is None:
            raise self.fail(
                f"{path}.kind",
                f"a program node kind (one of {sorted(_ARROW_FIELDS)})",
                f"{k!r:.40}",
            )
        d = self.obj(data, path, ("kind", *fields))
        match k:
            case "id":
                return Id()
            case "distribute":
                return Distribute()
            case "compose" | "split" | "fanout":
                key = "steps" if k == "compose" else "parts"
                items = self.array(d[key], f"{path}.{key}", min_len=1)
                parts = tuple(self.arrow(x, f"{path}.{key}[{i}]") for i, x in enumerate(items))
                cls = {"compose": Compose, "split": Split, "fanout": Fanout}[k]
                return cls(parts)
            case "proj":
                i = self.integer(d["index"], f"{path}.index")
                n = self.integer(d["arity"], f"{path}.arity")
                proj = self.build(path, lambda: Proj(i, n))
                # The checker may build a tuple type of this many items (when
                # the input type is not yet known), so it costs that many nodes.
                self.spend(f"{path}.arity", n)
                return proj
            case "const":
                t = self.type(d["type"], f"{path}.type")
                v = self.value(t, d["value"], f"{path}.value")
                return Const(t, v)
            case "inject":
                tag = self.string(d["tag"], f"{path}.tag")
                vt = None
                if d["variant"] is not None:
                    t = self.type(d["variant"], f"{path}.variant")
                    if not isinstance(t, VariantT):
                        raise self.fail(f"{path}.variant", "a variant type or null", repr(t))
                    vt = t
                return self.build(path, lambda: Inject(tag, vt))
            case "case":
                raw = d["branches"]
                if type(raw) is not dict or not raw:
                    raise self.fail(
                        f"{path}.branches", "a non-empty object of tag: program", json_kind(raw)
                    )
                branches = tuple(
                    (tag, self.arrow(b, f"{path}.branches.{tag}"[:300])) for tag, b in raw.items()
                )
                return self.build(path, lambda: Case(branches))
            case "if":
                return If(
                    self.arrow(d["cond"], f"{path}.cond"),
                    self.arrow(d["then"], f"{path}.then"),
                    self.arrow(d["else"], f"{path}.else"),
                )
            case "make":
                t = self.type(d["record"], f"{path}.record")
                if not isinstance(t, RecordT):
                    raise self.fail(f"{path}.record", "a record type", repr(t))
                return MakeRecord(t)
            case "get" | "set":
                f = self.string(d["field"], f"{path}.field")
                cls2 = GetField if k == "get" else SetField
                return self.build(path, lambda: cls2(f))
            case "prim":
                name = self.string(d["name"], f"{path}.name")
                if name not in self.registry:
                    raise self.fail(
                        f"{path}.name", "the name of a registered primitive", f"{name!r:.60}"
                    )
                return Prim(name)
            case "map":
                return MapList(self.arrow(d["fn"], f"{path}.fn"))
            case "fold":
                return Fold(self.arrow(d["fn"], f"{path}.fn"))
            case "while":
                c = self.arrow(d["cond"], f"{path}.cond")
                return While(c, self.arrow(d["body"], f"{path}.body"))
        raise self.fail(path, "a program node", k)  # pragma: no cover

    def loop(self, data: Any, path: str) -> Loop:
        d = self.obj(data, path, ("kind", "body", "state", "init"))
        if d["kind"] != "loop":
            raise self.fail(f"{path}.kind", '"loop"', f"{d['kind']!r:.40}")
        state = self.type(d["state"], f"{path}.state")
        init = self.value(state, d["init"], f"{path}.init")
        body = self.arrow(d["body"], f"{path}.body")
        return Loop(body, state, init)


_ARROW_FIELDS: dict[str, tuple[str, ...]] = {
    "id": (),
    "compose": ("steps",),
    "split": ("parts",),
    "fanout": ("parts",),
    "proj": ("index", "arity"),
    "const": ("type", "value"),
    "inject": ("tag", "variant"),
    "case": ("branches",),
    "distribute": (),
    "if": ("cond", "then", "else"),
    "make": ("record",),
    "get": ("field",),
    "set": ("field",),
    "prim": ("name",),
    "map": ("fn",),
    "fold": ("fn",),
    "while": ("cond", "body"),
}


def decode_type(data: Any, path: str = "$", max_nodes: int = 200_000) -> Type:
    """Decode the JSON form of a type (already parsed). Raises DecodeError."""
    return Decoder(max_nodes).type(data, path)


def decode_value(t: Type, data: Any, path: str = "$") -> Any:
    """Decode the JSON form of a value of ``t``. Raises DecodeError."""
    return Decoder(0).value(t, data, path)


def decode_arrow(
    data: Any, path: str = "$", max_nodes: int = 200_000, registry: Registry = PRIMITIVES
) -> Arrow:
    """Decode the JSON form of a program. Raises DecodeError."""
    return Decoder(max_nodes, registry).arrow(data, path)


def decode_loop(
    data: Any, path: str = "$", max_nodes: int = 200_000, registry: Registry = PRIMITIVES
) -> Loop:
    """Decode the JSON form of a loop. Raises DecodeError."""
    return Decoder(max_nodes, registry).loop(data, path)
