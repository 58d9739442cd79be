"""The differential harness: a machine's plain Python function against its compiled steps.

Shared by the mutation tests (tests/test_frontend_mutation.py) and the
corpus (tests/test_corpus.py). ``run_differential`` steps the plain Python
function (which really changes its state in place), the compiled plain
step and the owned step a stage runs (which changes the state in place too,
and undoes a failing step) on the same messages; states and outputs must
agree at every step, failures included, and a failing step must leave the
owned state as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs

from arrowloop import PyMachine
from tests.test_frontend_corpus import outcome, same


def alike(a: Any, b: Any) -> bool:
    """``same``, except that two record classes of one name and fields count as one.

    Arrowloop's record types are structural (docs/arrows.md, section 1.3):
    compiled code builds instances of the first class bound for a name and
    fields, which may be another module's class than the one the plain
    function builds. Everything else is compared as ``same`` does.
    """
    if attrs.has(type(a)) and attrs.has(type(b)):
        fa, fb = attrs.fields(type(a)), attrs.fields(type(b))
        return (
            type(a).__name__ == type(b).__name__
            and [f.name for f in fa] == [f.name for f in fb]
            and all(alike(getattr(a, f.name), getattr(b, f.name)) for f in fa)
        )
    if isinstance(a, tuple | list) and type(a) is type(b):
        return len(a) == len(b) and all(alike(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and type(a) is type(b):
        return a.keys() == b.keys() and all(alike(a[k], b[k]) for k in a)
    return same(a, b)


def run_differential(
    m: PyMachine, inputs: list[Any], equal: Callable[[Any, Any], bool] = same
) -> None:
    """Step the Python function, the plain step and the owned step together.

    ``equal`` compares the results (states and outputs); the default,
    ``same``, also requires equal classes.
    """
    step, log = m.machine.owned_step()
    py_state = copy.deepcopy(m.init)
    plain_state = m.machine.copy_state(m.init)
    owned_state = m.machine.copy_state(m.init)
    for x in inputs:
        before = copy.deepcopy(owned_state)
        py = outcome(m.fn, copy.deepcopy(x), copy.deepcopy(py_state))
        plain = outcome(m.step, x, plain_state)
        owned = outcome(step, x, owned_state)
        assert py[0] == plain[0] == owned[0], (x, py, plain, owned)
        if py[0] == "raised":
            assert py[1][0] == plain[1][0] == owned[1][0]
            assert equal(owned_state, before)
            continue
        assert equal(py[1], plain[1]), (x, py, plain)
        assert equal(py[1], owned[1]), (x, py, owned)
        py_state, plain_state, owned_state = py[1][0], plain[1][0], owned[1][0]
        if log is not None:
            log.clear()
