"""The package's layers: each imports only from layers below it, and every public name
that ``__all__`` promises exists (anyio's test_all_attributes).

Layers, bottom up (docs/architecture.md): errors, typesys, arrows, check, compiler, wire,
machine, frontend, runtime, supervisor, upgrade, endpoints/io/distributed, server/cli, and the
examples that ship in the package above them all (nothing in the library imports them).
Modules outside them (``arrowloop/__init__.py``, ``__main__.py``) are the
top and may import anything.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import arrowloop

PACKAGE = Path(arrowloop.__file__).parent

LAYERS: dict[str, int] = {
    "errors": 0,
    "typesys": 1,
    "arrows": 2,
    "check": 3,
    "compiler": 4,
    "wire": 5,
    "machine": 6,
    "frontend": 7,
    "runtime": 8,
    "store": 8,
    "supervisor": 9,
    "upgrade": 10,
    "endpoints": 11,
    "io": 11,
    "distributed": 11,
    "server": 12,
    "cli": 12,
}
TOP = len(LAYERS)
# The shipped examples use the library as an application does, through the top-level
# API, so they sit with it at the top: no layer may import them.
LAYERS["examples"] = TOP


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    """The layer of ``arrowloop.X...`` (TOP for the package itself and unlisted modules)."""
    parts = module.split(".")
    if len(parts) < 2:
        return TOP
    return LAYERS.get(parts[1], TOP)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every arrowloop import in the file, lazy ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "arrowloop":  # ``from arrowloop import x``: x may be a subpackage
                found.extend((node.lineno, f"arrowloop.{alias.name}") for alias in node.names)
                found.append((node.lineno, "arrowloop"))
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.split(".")[0] == "arrowloop"]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_layer_exists() -> None:
    """The layers built so far are where the layer table says (no typo in a folder name)."""
    present = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in SOURCES}
    layers = ("errors", "typesys", "arrows", "check", "compiler", "wire", "machine", "frontend")
    for name in (*layers, "runtime", "supervisor", "upgrade", "endpoints", "server", "cli"):
        assert name in present


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    """A module imports arrowloop modules of its own layer or below, never above."""
    module = _module_name(path)
    own = _layer(module)
    wrong = [
        f"line {line}: {name} (layer {_layer(name)})"
        for line, name in _imports(path)
        if _layer(name) > own
    ]
    assert not wrong, f"{module} (layer {own}) imports from above: {wrong}"


def test_import_walker_sees_relative_lazy_and_top_level_imports() -> None:
    """The walker resolves relative imports and sees imports inside functions."""
    sample = PACKAGE / "typesys" / "_values.py"
    names = {name for _, name in _imports(sample)}
    assert "arrowloop.typesys._repr" in names
    nodes = {name for _, name in _imports(PACKAGE / "arrows" / "_nodes.py")}
    assert "arrowloop.typesys" in nodes  # including the lazy import in _pair_loops
    top = {name for _, name in _imports(PACKAGE / "__main__.py")}
    assert "arrowloop.cli" in top
    assert _layer("arrowloop") == TOP
    assert _layer("arrowloop.runtime._stage") == LAYERS["runtime"]


# -- __all__ ---------------------------------------------------------------------------------


def _modules() -> list[str]:
    names = ["arrowloop"]
    for info in pkgutil.walk_packages(arrowloop.__path__, "arrowloop."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_all_attributes_exist(name: str) -> None:
    """Every name a module lists in ``__all__`` exists in it, and is listed once."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        private = name.rsplit(".", 1)[-1].startswith("_")
        assert private, f"{name} is public and must declare __all__"
        return
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"


def test_top_level_api_is_the_curated_one() -> None:
    """``arrowloop.__all__`` names exist and are the same objects as in their layers."""
    missing = [attr for attr in arrowloop.__all__ if not hasattr(arrowloop, attr)]
    assert not missing
    from arrowloop import arrows, check, errors, machine

    for attr in ("Loop", "fanout", "case"):
        assert getattr(arrowloop, attr) is getattr(arrows, attr)
    assert arrowloop.check_loop is check.check_loop
    assert arrowloop.Machine is machine.Machine
    assert arrowloop.DecodeError is errors.DecodeError


def _packages() -> list[str]:
    """The top-level package and every layer package (the shipped examples are user code)."""
    return [
        name
        for name in _modules()
        if hasattr(importlib.import_module(name), "__path__")
        and not name.startswith("arrowloop.examples")
    ]


@pytest.mark.parametrize("name", _packages())
def test_all_lists_every_public_name(name: str) -> None:
    """The other direction (as anyio's test does): every public name a package binds,
    other than its submodules, is in its ``__all__``, so nothing is exported by accident
    and nothing the docs use is missing from the list."""
    module = importlib.import_module(name)
    unlisted = [
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, ModuleType | __future__._Feature)
        and attr not in module.__all__
    ]
    assert not unlisted, f"{name} binds public names missing from __all__: {unlisted}"


def test_top_level_api_has_the_names_the_docs_use() -> None:
    """What the README and docs import from the layers is also in the top-level API."""
    from arrowloop import errors, runtime

    for attr in ("stage", "pipeline", "open_pipeline", "run", "Pipeline", "PipelineSpec"):
        assert getattr(arrowloop, attr) is getattr(runtime, attr)
    for attr in ("UpgradeError", "StepError", "PipelineClosed", "ValidationError"):
        assert getattr(arrowloop, attr) is getattr(errors, attr)
