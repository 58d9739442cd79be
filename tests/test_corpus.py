"""The corpus of issue 13 (tests/corpus/): how much real stateful Python the front end takes.

Every entry is compiled with ``statemachine(init=...)``. Those that compile
are run against plain Python on hypothesis-drawn message sequences with the
mutation tests' harness (the plain function, the compiled plain step and the
owned step a stage runs must agree at every step, failures included). Those
refused are pinned in tests/corpus/EXPECTED_REFUSALS.txt: a newly refused
entry is a regression and fails; an entry that starts compiling, or is
refused for another reason, fails too, asking for the file to be rewritten
with ``ARROWLOOP_CORPUS_UPDATE=1 pytest tests/test_corpus.py`` (or
``make corpus-update``). The report, with the acceptance rate and the
refusals grouped by reason, goes to build/corpus-report.txt.
"""

from __future__ import annotations

import ast
import copy
import functools
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import ENTRIES, CorpusEntry
from tests.corpus._report import Compiled, compile_corpus, pin_lines, report
from tests.differential import alike, run_differential
from tests.profiles import examples

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests" / "corpus" / "EXPECTED_REFUSALS.txt"
REPORT = ROOT / "build" / "corpus-report.txt"
UPDATE = os.environ.get("ARROWLOOP_CORPUS_UPDATE") == "1"
HEADER = """\
# The corpus entries the front end refuses today, each with its first refusal
# (tests/test_corpus.py). Regenerate with:
#   ARROWLOOP_CORPUS_UPDATE=1 .venv/bin/pytest tests/test_corpus.py   (or make corpus-update)
"""

#: The first line of the report, printed at the end of the run (tests/conftest.py).
SUMMARY: list[str] = []


@functools.cache
def compiled() -> dict[str, Compiled]:
    """Every entry compiled once per run, by name."""
    return {r.entry.name: r for r in compile_corpus(ENTRIES)}


def _accepted() -> list[CorpusEntry]:
    return [r.entry for r in compiled().values() if r.machine is not None]


def _raises_as_python_would(exc: Exception) -> bool:
    """The failures the corpus's functions mean to raise: bad messages, missing keys, ..."""
    return isinstance(exc, ValueError | KeyError | IndexError | ZeroDivisionError)


def test_corpus_is_large_and_named_uniquely() -> None:
    """The corpus has at least 150 entries, each name (style.function) used once."""
    names = [e.name for e in ENTRIES]
    assert len(names) >= 150
    assert len(set(names)) == len(names)


def _declared(path: Path) -> set[tuple[str, tuple[str, ...]]]:
    """The (name, fields or members) of the attrs records and enums a module declares."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        record = any("attrs" in ast.unparse(d) for d in node.decorator_list)
        if record or any("Enum" in ast.unparse(b) for b in node.bases):
            names = [
                ast.unparse(s.target) if isinstance(s, ast.AnnAssign) else ast.unparse(s.targets[0])
                for s in node.body
                if isinstance(s, ast.AnnAssign if record else ast.Assign)
            ]
            found.add((node.name, tuple(names)))
    return found


def test_corpus_types_are_its_own() -> None:
    """No corpus record or enum has the name and fields of one declared elsewhere in the repo.

    Such classes are one structural type, whose values are built as the class
    bound first (docs/arrows.md, 1.3): importing the corpus would change what
    other tests' machines build, depending on the order the tests run in.
    """
    here = ROOT / "tests" / "corpus"
    ours = {t: p.name for p in here.glob("*.py") for t in _declared(p)}
    clashes = [
        f"{name}{fields} in tests/corpus/{ours[(name, fields)]} and {p.relative_to(ROOT)}"
        for top in ("arrowloop", "tests", "benchmarks", "examples")
        for p in sorted((ROOT / top).rglob("*.py"))
        if here not in p.parents
        for name, fields in _declared(p) & ours.keys()
    ]
    assert not clashes, "rename the corpus's class: " + "; ".join(clashes)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@settings(max_examples=examples(5))
@given(data=st.data())
def test_entry_runs_as_plain_python(entry: CorpusEntry, data: st.DataObject) -> None:
    """Every entry, compiled or not, runs as Python on its messages (the corpus itself is sound)."""
    state = copy.deepcopy(entry.init)
    for msg in data.draw(st.lists(entry.messages, max_size=6)):
        try:
            state, _ = entry.fn(msg, state)
        except Exception as exc:
            if not _raises_as_python_would(exc):
                raise
            return


@pytest.mark.parametrize("entry", _accepted(), ids=lambda e: e.name)
@settings(max_examples=examples(25))
@given(data=st.data())
def test_compiled_entry_agrees_with_python(entry: CorpusEntry, data: st.DataObject) -> None:
    """An entry that compiles computes what the Python function computes, step by step."""
    machine = compiled()[entry.name].machine
    assert machine is not None
    # alike, not same: a record the compiled step builds may be an instance of
    # another module's class of the same name and fields (one structural type).
    run_differential(machine, data.draw(st.lists(entry.messages, max_size=8)), alike)


def test_no_entry_hits_an_internal_error() -> None:
    """The front end refuses with a FrontendError, never with an error from inside it."""
    internal = [f"{r.entry.name}: {r.refusals[0]}" for r in compiled().values() if r.internal]
    assert not internal, "\n".join(internal)


def _read_pins() -> list[str]:
    text = EXPECTED.read_text() if EXPECTED.exists() else ""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_refusals_are_the_pinned_ones() -> None:
    """The refused entries and their first refusals are exactly EXPECTED_REFUSALS.txt."""
    results = list(compiled().values())
    text = report(results)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)
    SUMMARY[:] = [text.splitlines()[0] + f" (report: {REPORT.relative_to(ROOT)})"]
    actual = pin_lines(results)
    if UPDATE:
        EXPECTED.write_text(HEADER + "".join(line + "\n" for line in actual))
        return
    expected = _read_pins()
    if actual == expected:
        return
    name = {line.partition(": ")[0]: line for line in expected}
    now = {line.partition(": ")[0]: line for line in actual}
    regressions = sorted(now[n] for n in now.keys() - name.keys())
    progress = sorted(n for n in name.keys() - now.keys())
    changed = sorted(
        f"{name[n]}\n    now: {now[n]}" for n in now.keys() & name.keys() if now[n] != name[n]
    )
    parts = []
    if regressions:
        parts.append("newly refused (a regression):\n  " + "\n  ".join(regressions))
    if progress:
        parts.append("now compiled (progress):\n  " + "\n  ".join(progress))
    if changed:
        parts.append("refused for another reason:\n  " + "\n  ".join(changed))
    pytest.fail(
        "\n".join(parts)
        + "\nA regression is to be fixed in the front end (or pinned, if the refusal is right);"
        " to pin what is refused now, rewrite tests/corpus/EXPECTED_REFUSALS.txt with"
        " ARROWLOOP_CORPUS_UPDATE=1 .venv/bin/pytest tests/test_corpus.py (make corpus-update)",
        pytrace=False,
    )
