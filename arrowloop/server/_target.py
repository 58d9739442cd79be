"""Finding what to serve or send: ``MODULE:NAME`` references to Python objects.

``MODULE`` is a dotted module name (``examples.counter.service``) or a path
to a ``.py`` file (``examples/counter/v2.py``); ``NAME`` is an attribute of
it. The current directory is importable, as with ``python -m``, and so are
the directories given with ``--path`` (:func:`add_import_paths`); a file
that belongs to a package is imported as part of that package, found from
the file's own location, wherever the command runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from arrowloop.errors import ArrowloopError
from arrowloop.frontend import PyMachine
from arrowloop.machine import Machine, NativeMachine
from arrowloop.runtime import PipelineSpec, StageSpec, stage
from arrowloop.supervisor import SupervisorSpec, supervisor

__all__ = [
    "TargetError",
    "add_import_paths",
    "load_module",
    "load_object",
    "as_supervisor_spec",
    "with_state_budget",
]


class TargetError(ArrowloopError):
    """A ``MODULE:NAME`` reference cannot be resolved or is the wrong kind of object."""


def _is_path(ref: str) -> bool:
    return ref.endswith(".py") or os.sep in ref or "/" in ref


def add_import_paths(directories: Iterable[str]) -> None:
    """Put ``directories`` first on the import path, in the order given (what
    ``--path DIR`` does for a service or upgrade whose modules live elsewhere).

    Raises:
        TargetError: one of them is not a directory.
    """
    found = []
    for d in directories:
        path = Path(d)
        if not path.is_dir():
            raise TargetError(f"--path {d}: no such directory")
        found.append(str(path.resolve()))
    for d in reversed(found):
        if d not in sys.path:
            sys.path.insert(0, d)


def _package_root(path: Path) -> Path | None:
    """The directory above the outermost package ``path`` belongs to, or
    ``None`` for a file that is in no package."""
    d = path.parent
    if not (d / "__init__.py").is_file():
        return None
    while (d.parent / "__init__.py").is_file() and d.parent != d:
        d = d.parent
    return d.parent


def _dotted(rel: Path) -> str:
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_from_package(path: Path, root: Path) -> ModuleType:
    """Import the file ``path`` of a package under ``root`` by its dotted name,
    so its relative and absolute imports of its package work and its classes
    are the package's own."""
    name = _dotted(path.relative_to(root))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = _import(name, str(path))
    where = getattr(module, "__file__", None)
    if where is None or Path(where).resolve() != path:
        raise TargetError(
            f"{path} is module {name} of the package in {root}, but {name} is imported "
            f"from {where or 'elsewhere'}: run from {root}, or rename the package"
        )
    return module


def _import(name: str, ref: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise TargetError(
            f"cannot import {ref!r}: {exc} (modules are looked for in the working "
            f"directory, {os.getcwd()}, and on the import path; --path DIR adds a directory)"
        ) from exc
    except ArrowloopError as exc:
        raise TargetError(f"{ref}: {exc}") from exc
    except Exception as exc:
        raise TargetError(f"importing {ref!r} failed: {type(exc).__name__}: {exc}") from exc


def load_module(ref: str) -> ModuleType:
    """Import ``ref``: a dotted module name or a ``.py`` file path.

    A file inside a package directory of the current directory is imported
    under its dotted name (``examples/counter/v2.py`` is
    ``examples.counter.v2``), so its relative imports and its classes are
    the same as everyone else's.

    Raises:
        TargetError: it cannot be found or fails to import (with the reason).
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    name = ref
    if _is_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise TargetError(f"no such Python file: {ref}")
        try:
            rel = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            rel = None
        if rel is not None and rel.name == "__init__.py":
            rel = rel.parent / "__init__"  # the package itself, not a second copy of it
        if rel is not None and all(
            (Path.cwd() / Path(*rel.parts[: i + 1]) / "__init__.py").is_file()
            for i in range(len(rel.parts) - 1)
        ):
            name = _dotted(rel)
        else:
            root = _package_root(path.resolve())
            if root is not None:
                return _import_from_package(path.resolve(), root)
            return _load_file(path)
    return _import(name, ref)


def _load_file(path: Path) -> ModuleType:
    name = f"_arrowloop_loaded_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - checked is_file above
        raise TargetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]  # a half-made module must not be found later
        if isinstance(exc, ArrowloopError):
            raise TargetError(f"{path}: {exc}") from exc
        raise TargetError(f"loading {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_object(ref: str, default_name: str | None = None) -> tuple[Any, str]:
    """The object ``MODULE:NAME`` names, and its name.

    Raises:
        TargetError: malformed reference, module or attribute not found.
    """
    module_ref, sep, name = ref.rpartition(":")
    if not sep or (len(module_ref) == 1 and module_ref.isalpha()):  # no NAME (or C:\\...)
        module_ref, name = ref, default_name or ""
    if not name:
        raise TargetError(f"expected MODULE:NAME, found {ref!r}")
    module = load_module(module_ref)
    try:
        return getattr(module, name), name
    except AttributeError:
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
        raise TargetError(
            f"{module_ref} has no attribute {name!r} (it has: {', '.join(public)})"
        ) from None


def _call_factory(fn: Any, name: str) -> Any:
    required = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise TargetError(
            f"{name!r} is a function taking arguments ({', '.join(p.name for p in required)}); "
            "a factory to serve must take none"
        )
    try:
        return fn()
    except ArrowloopError as exc:
        raise TargetError(f"{name}(): {exc}") from exc
    except Exception as exc:
        raise TargetError(f"{name}() failed: {type(exc).__name__}: {exc}") from exc


def as_supervisor_spec(obj: Any, name: str) -> SupervisorSpec:
    """What ``serve`` runs: a supervisor spec, or a pipeline, stage or
    machine wrapped in a one-for-one supervisor (a function taking no
    arguments is called first, so a module can build its spec lazily).

    Raises:
        TargetError: ``obj`` is none of those.
    """
    if inspect.isfunction(obj):
        obj = _call_factory(obj, name)
    sup_name = name if name.isidentifier() else "server"
    if isinstance(obj, SupervisorSpec):
        return obj
    if isinstance(obj, PipelineSpec):
        return supervisor(sup_name, *obj.stages)
    if isinstance(obj, StageSpec):
        return supervisor(sup_name, obj)
    if isinstance(obj, Machine | PyMachine | NativeMachine):
        return supervisor(sup_name, stage(sup_name, obj))
    raise TargetError(
        f"{name!r} is a {type(obj).__name__}; expected a supervisor spec (supervisor(...)), "
        "a pipeline (stage(...) >> stage(...)), a stage or a machine"
    )


def with_state_budget(spec: SupervisorSpec, budget: int) -> SupervisorSpec:
    """``spec`` with every stage's ``max_state_size`` at most ``budget``
    (nested supervisors included): a server's bound on what any stage keeps,
    whatever code a change brings (the budget belongs to the stage, so it
    outlives upgrades)."""
    children = []
    for c in spec.children:
        start = c.start
        if isinstance(start, SupervisorSpec):
            start = with_state_budget(start, budget)
        else:
            own = start.max_state_size
            start = attrs.evolve(start, max_state_size=budget if own is None else min(own, budget))
        children.append(attrs.evolve(c, start=start))
    return attrs.evolve(spec, children=tuple(children))
