"""What the CLI points at: ``MODULE:NAME`` references, serve targets, change documents.

References are resolved against the project root (the current directory
when the CLI runs), so most tests ``chdir`` there; modules written to a
temporary directory play the part of user code outside the project. Every
module a test creates is removed from ``sys.modules`` afterwards, and
``sys.path`` is restored.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from arrowloop import Function, Machine, native
from arrowloop.arrows import Loop
from arrowloop.cli._load import FUNCTION_PARTS, NONE, ChangeOptions, build_change, read_change_file
from arrowloop.errors import ArrowloopError
from arrowloop.frontend import PyMachine
from arrowloop.machine import NativeMachine
from arrowloop.runtime import pipeline, stage
from arrowloop.server import (
    TargetError,
    add_import_paths,
    as_supervisor_spec,
    load_module,
    load_object,
)
from arrowloop.supervisor import SupervisorSpec, code_change
from arrowloop.upgrade import decode_change, encode_change
from arrowloop.wire import Limits, encode_arrow_doc, encode_loop_doc
from examples import counter as c
from examples.counter import service, v2, v3
from tests.machines import reader, wide

ROOT = Path(__file__).resolve().parents[1]
VERSION = "ab" * 32

#: A machine written outside the project (int -> running total), with a migration.
OUTSIDE = """
from arrowloop import arrow, statemachine

@statemachine(init=0)
def machine(x: int, total: int) -> tuple[int, int]:
    return total + x, total + x

@arrow
def migrate(total: int) -> int:
    return total

VALUE = 42
"""


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run from the project root; undo sys.path changes and forget modules made here."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", [*sys.path])
    yield
    for name in [n for n in sys.modules if n.startswith(("_arrowloop_loaded_", "al_"))]:
        del sys.modules[name]


def _module(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def _json(directory: Path, name: str, data: Any) -> str:
    path = directory / name
    path.write_bytes(orjson.dumps(data))
    return str(path)


# -- load_object -------------------------------------------------------------------


def test_dotted_reference_gives_the_object_and_its_name() -> None:
    """``MODULE:NAME`` imports the module and returns the attribute and its name."""
    obj, name = load_object("examples.counter.v2:machine")
    assert obj is v2.machine
    assert name == "machine"


@pytest.mark.parametrize(
    "ref",
    [
        "examples/counter/v2.py:machine",
        "./examples/counter/v2.py:machine",
        f"{ROOT}/examples/counter/v2.py:machine",
    ],
)
def test_project_file_is_imported_under_its_dotted_name(ref: str) -> None:
    """A file inside the project's packages is the same module as its dotted name."""
    obj, name = load_object(ref)
    assert obj is v2.machine
    assert name == "machine"
    assert not [n for n in sys.modules if n.startswith("_arrowloop_loaded_")]


def test_project_file_shares_the_classes() -> None:
    """Loading v3 by path gives a machine whose messages are the package's own classes."""
    module = load_module("examples/counter/v3.py")
    assert module is sys.modules["examples.counter.v3"]
    assert module.ToggleCount is c.ToggleCount
    assert module.machine.machine.step(c.ToggleCount(), (2, False)) == ((2, True), c.Ack())


def test_package_init_file_is_the_package() -> None:
    """A package's ``__init__.py`` is the package itself."""
    obj, _ = load_object("examples/counter/__init__.py:ReadCount")
    assert obj is c.ReadCount


def test_file_outside_the_project_is_loaded_from_its_path(tmp_path: Path) -> None:
    """A ``.py`` file elsewhere is loaded from its path under a private module name."""
    path = _module(tmp_path, "al_outside.py", OUTSIDE)
    obj, name = load_object(f"{path}:machine")
    assert name == "machine"
    assert isinstance(obj, PyMachine)
    assert obj.machine.step(3, 4) == (7, 7)
    assert sys.modules["_arrowloop_loaded_al_outside"].VALUE == 42


def test_file_in_a_plain_directory_is_loaded_from_its_path(tmp_path: Path) -> None:
    """A file below the current directory, but not in a package, is loaded by path."""
    _module(tmp_path, "scripts/al_script.py", "VALUE = 'script'\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert load_object("scripts/al_script.py:VALUE") == ("script", "VALUE")
    assert "_arrowloop_loaded_al_script" in sys.modules


def test_current_directory_is_importable(tmp_path: Path) -> None:
    """As with ``python -m``, modules of the current directory import by name or file."""
    _module(tmp_path, "al_here.py", "VALUE = 'here'\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert load_object("al_here:VALUE") == ("here", "VALUE")
        assert load_object("al_here.py:VALUE") == ("here", "VALUE")
    assert sys.modules["al_here"].VALUE == "here"


def test_default_name_is_used_without_one() -> None:
    """Without ``:NAME`` the default name is looked up; with no default it is an error."""
    assert load_object("examples.counter.v2", "machine") == (v2.machine, "machine")
    with pytest.raises(
        TargetError, match=re.escape("expected MODULE:NAME, found 'examples.counter.v2'")
    ):
        load_object("examples.counter.v2")
    with pytest.raises(TargetError, match="expected MODULE:NAME"):
        load_object("examples.counter.v2:")


def test_missing_module_is_named() -> None:
    """A module that does not exist: TargetError naming it."""
    with pytest.raises(TargetError) as info:
        load_object("al_no_such_module.sub:thing")
    assert str(info.value) == (
        "cannot import 'al_no_such_module.sub': No module named 'al_no_such_module' (modules "
        f"are looked for in the working directory, {ROOT}, and on the import path; --path DIR "
        "adds a directory)"
    )


#: A service in a package of its own, outside the project: messages in one module,
#: an upgrade file beside them that imports them absolutely and relatively.
SERVICE_MESSAGES = """
import attrs

@attrs.frozen
class AlPing:
    n: int
"""
SERVICE_UPGRADE = """
from arrowloop import statemachine
from al_service.messages import AlPing
from . import messages

@statemachine(init=0)
def machine(msg: AlPing, total: int) -> tuple[int, int]:
    return total + msg.n, total + msg.n

SAME = messages.AlPing is AlPing
"""


def _service(tmp_path: Path, message: str) -> Path:
    """The service package, with its message class called ``message`` (a record type
    is bound to one class per process, so each test names its own)."""
    _module(tmp_path, "elsewhere/al_service/__init__.py", "")
    _module(
        tmp_path, "elsewhere/al_service/messages.py", SERVICE_MESSAGES.replace("AlPing", message)
    )
    return _module(
        tmp_path, "elsewhere/al_service/v2.py", SERVICE_UPGRADE.replace("AlPing", message)
    )


def test_upgrade_file_in_a_package_elsewhere_is_imported_with_its_package(
    tmp_path: Path,
) -> None:
    """A file of a package outside the working directory is found from its own
    location: it imports its package, absolutely and relatively."""
    path = _service(tmp_path, "AlPing")
    module = load_module(str(path))
    assert module is sys.modules["al_service.v2"]
    assert module.SAME
    entry = _stage(build_change(_options(str(path))))
    assert entry["machine"]["input"]["name"] == "AlPing"


def test_path_makes_a_module_elsewhere_importable_by_name(tmp_path: Path) -> None:
    """``--path DIR`` puts DIR on the import path, so dotted names resolve there."""
    _service(tmp_path, "AlPong")
    with pytest.raises(TargetError, match="--path DIR adds a directory"):
        load_object("al_service.v2:machine")
    add_import_paths([str(tmp_path / "elsewhere")])
    obj, _ = load_object("al_service.v2:machine")
    assert isinstance(obj, PyMachine)


def test_path_must_be_a_directory(tmp_path: Path) -> None:
    """A ``--path`` that is not a directory is refused by name."""
    with pytest.raises(TargetError, match=r"^--path .*nowhere: no such directory$"):
        add_import_paths([str(tmp_path / "nowhere")])


def test_a_package_shadowed_by_another_of_its_name_is_refused(tmp_path: Path) -> None:
    """A file whose package name is already imported from elsewhere is not confused
    with that other module: the error says where each is."""
    _module(tmp_path, "one/al_twin/__init__.py", "")
    _module(tmp_path, "one/al_twin/v.py", "VALUE = 1\n")
    other = _module(tmp_path, "two/al_twin/v.py", "VALUE = 2\n")
    _module(tmp_path, "two/al_twin/__init__.py", "")
    add_import_paths([str(tmp_path / "one")])
    assert load_object("al_twin.v:VALUE") == (1, "VALUE")
    with pytest.raises(TargetError, match=r"is module al_twin\.v of the package in"):
        load_module(str(other))


def test_missing_file_is_named() -> None:
    """A path to a file that does not exist: TargetError naming the path."""
    with pytest.raises(TargetError, match=r"^no such Python file: examples/counter/v9\.py$"):
        load_object("examples/counter/v9.py:machine")


def test_missing_attribute_lists_what_the_module_has() -> None:
    """An unknown NAME: TargetError listing the module's public names."""
    with pytest.raises(TargetError) as info:
        load_object("examples.counter.v2:machin")
    message = str(info.value)
    assert message.startswith("examples.counter.v2 has no attribute 'machin' (it has: ")
    assert "inverse, machine, migrate" in message
    assert "annotations" in message
    assert "_" not in message.split("(it has: ")[1].replace("__", "")


def test_module_failing_to_import_is_reported(tmp_path: Path) -> None:
    """An exception while importing becomes a TargetError with its type and message."""
    path = _module(tmp_path, "al_broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(TargetError, match=r"loading .*al_broken\.py failed: RuntimeError: boom"):
        load_object(f"{path}:x")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        with pytest.raises(TargetError, match="importing 'al_broken' failed: RuntimeError: boom"):
            load_object("al_broken:x")


def test_syntax_error_is_reported(tmp_path: Path) -> None:
    """A file that is not Python: TargetError saying SyntaxError."""
    path = _module(tmp_path, "al_syntax.py", "def (:\n")
    with pytest.raises(TargetError, match="failed: SyntaxError"):
        load_object(f"{path}:x")


def test_arrowloop_error_while_importing_is_shown_as_is(tmp_path: Path) -> None:
    """A machine that does not compile: the frontend's message, after the file name."""
    source = """
    from arrowloop import statemachine

    @statemachine(init=0)
    def machine(x: int, total: int) -> tuple[int, int]:
        return total
    """
    path = _module(tmp_path, "al_illtyped.py", source)
    with pytest.raises(TargetError) as info:
        load_object(f"{path}:machine")
    assert str(info.value).startswith(f"{path}: ")
    assert "expected a value of type tuple[int, int], found int" in str(info.value)
    assert isinstance(info.value.__cause__, ArrowloopError)


# -- as_supervisor_spec --------------------------------------------------------------


def _echo(x: int, s: int) -> tuple[int, int]:
    return s, x


def _stage_names(spec: SupervisorSpec) -> list[str]:
    return [child.start.name for child in spec.children]


def test_supervisor_spec_is_served_as_it_is() -> None:
    """A supervisor spec is returned unchanged."""
    assert as_supervisor_spec(service.pipeline, "pipeline") is service.pipeline


def test_pipeline_is_wrapped_in_a_supervisor() -> None:
    """A pipeline becomes a supervisor of its stages, named after the reference."""
    spec = as_supervisor_spec(pipeline(stage("a", wide(0)), stage("b", reader(0))), "pipe")
    assert spec.name == "pipe"
    assert _stage_names(spec) == ["a", "b"]


def test_stage_is_wrapped_in_a_supervisor() -> None:
    """A stage becomes a one-child supervisor."""
    spec = as_supervisor_spec(stage("count", v2.machine), "svc")
    assert spec.name == "svc"
    assert _stage_names(spec) == ["count"]


@pytest.mark.parametrize(
    "machine",
    [v2.machine, v2.machine.machine, native(_echo, 0)],
    ids=["statemachine", "Machine", "native"],
)
def test_machine_becomes_a_stage_named_after_the_reference(machine: Any) -> None:
    """A machine (callable or not) is not called: it is the one stage, named like the target."""
    spec = as_supervisor_spec(machine, "counter")
    assert spec.name == "counter"
    assert _stage_names(spec) == ["counter"]
    started = spec.children[0].start
    assert not isinstance(started, SupervisorSpec)
    if isinstance(machine, NativeMachine):
        assert started.machine is machine
    else:
        assert started.machine.version == v2.machine.version


def test_name_that_is_not_an_identifier_becomes_server() -> None:
    """A reference name like ``my-app`` cannot name a supervisor: ``server`` is used."""
    spec = as_supervisor_spec(v2.machine, "my-app")
    assert spec.name == "server"
    assert _stage_names(spec) == ["server"]


def test_zero_argument_factory_is_called() -> None:
    """A callable is called to build the spec lazily, then wrapped like its result."""
    calls: list[int] = []

    def build() -> Any:
        calls.append(1)
        return stage("count", v2.machine)

    spec = as_supervisor_spec(build, "build")
    assert calls == [1]
    assert spec.name == "build"
    assert _stage_names(spec) == ["count"]
    assert as_supervisor_spec(lambda: service.pipeline, "x") is service.pipeline


@pytest.mark.parametrize(
    ("obj", "kind"),
    [(5, "int"), ("machine", "str"), (c.counter_v2, "Loop"), (c.migrate_v2_v3, "Fanout")],
)
def test_wrong_object_is_refused_with_what_is_expected(obj: Any, kind: str) -> None:
    """Anything else is refused, naming what it is and what would do."""
    with pytest.raises(TargetError) as info:
        as_supervisor_spec(obj, "thing")
    assert str(info.value) == (
        f"'thing' is a {kind}; expected a supervisor spec (supervisor(...)), "
        "a pipeline (stage(...) >> stage(...)), a stage or a machine"
    )


def test_factory_returning_a_wrong_object_is_refused() -> None:
    """What a factory returns is checked like any target."""

    def f() -> dict[str, int]:
        return {}

    with pytest.raises(TargetError, match="'f' is a dict; expected a supervisor spec"):
        as_supervisor_spec(f, "f")
    # Only functions are called: a class is a wrong object, not a factory.
    with pytest.raises(TargetError, match="'f' is a type; expected a supervisor spec"):
        as_supervisor_spec(dict, "f")


def test_factory_that_needs_arguments_or_fails_is_refused() -> None:
    """A function taking arguments is not called; one that raises is a TargetError."""

    def needs(n: int) -> None:
        raise AssertionError("must not be called")

    def broken() -> None:
        raise RuntimeError("no database")

    with pytest.raises(TargetError, match=r"taking arguments \(n\)"):
        as_supervisor_spec(needs, "needs")
    with pytest.raises(TargetError, match="broken\\(\\) failed: RuntimeError: no database"):
        as_supervisor_spec(broken, "broken")


@pytest.mark.parametrize(
    "obj", [v2.migrate, v2.migrate.function, len], ids=["arrow", "Function", "builtin"]
)
def test_callable_that_is_not_a_factory_is_refused(obj: Any) -> None:
    """``serve examples/counter/v2.py:migrate`` is a TargetError, not a crash."""
    with pytest.raises(TargetError, match="expected a supervisor spec"):
        as_supervisor_spec(obj, "migrate")


# -- build_change -------------------------------------------------------------------


def _options(source: str, parts: dict[str, str | None] | None = None, **kw: Any) -> ChangeOptions:
    return ChangeOptions(source, "count", VERSION, parts or {}, **kw)


def _stage(doc: dict[str, Any]) -> dict[str, Any]:
    (entry,) = doc["stages"]
    assert isinstance(entry, dict)
    return entry


@pytest.mark.parametrize("source", ["examples/counter/v3.py", "examples.counter.v3"])
def test_upgrade_file_sends_its_machine_and_migrations(source: str) -> None:
    """An upgrade file (no ``:NAME``) sends its machine, migrate and inverse."""
    doc = build_change(_options(source))
    assert {k: doc[k] for k in ("format", "version", "kind")} == {
        "format": "arrowloop",
        "version": 1,
        "kind": "change",
    }
    assert (doc["requested_by"], doc["change_interface"]) == ("cli", False)
    assert _stage(doc) == {
        "stage": "count",
        "expect_version": VERSION,
        "machine": v3.machine.machine.to_wire_data(),
        "migrate": v3.migrate.function.to_wire_data(),
        "inverse": v3.inverse.function.to_wire_data(),
    }
    (u,) = decode_change(doc).upgrades
    assert isinstance(u.machine, Machine)
    assert u.machine.version == v3.machine.version
    assert isinstance(u.migrate, Function)
    assert u.migrate.version == v3.migrate.version


def test_upgrade_file_and_its_encoded_change_agree() -> None:
    """The CLI builds the same document as encoding the change in Python."""
    doc = build_change(_options("examples/counter/v3.py", requested_by="ops"))
    expected = encode_change(
        code_change(
            "count",
            VERSION,
            v3.machine.machine,
            v3.migrate.function,
            inverse=v3.inverse.function,
            requested_by="ops",
        )
    )
    assert doc == expected


def test_named_machine_with_named_migration() -> None:
    """``MODULE:NAME`` sends that machine and only the parts named by flags."""
    doc = build_change(
        _options("examples.counter:counter_v2", {"migrate": "examples.counter:migrate_v2_v3"})
    )
    assert _stage(doc) == {
        "stage": "count",
        "expect_version": VERSION,
        "machine": encode_loop_doc(c.counter_v2),
        "migrate": encode_arrow_doc(c.migrate_v2_v3),
    }
    (u,) = decode_change(doc).upgrades
    assert u.machine == c.counter_v2
    assert u.migrate == c.migrate_v2_v3


def test_named_machine_does_not_take_the_module_parts() -> None:
    """``examples.counter.v3:machine`` is the machine alone: migrate is not picked up."""
    entry = _stage(build_change(_options("examples/counter/v3.py:machine")))
    assert set(entry) == {"stage", "expect_version", "machine"}


def test_flags_override_and_none_leaves_parts_out() -> None:
    """A flag replaces the file's part; ``none`` leaves it out."""
    entry = _stage(
        build_change(
            _options(
                "examples/counter/v3.py",
                {"migrate": "examples.counter:migrate_v2_v3", "inverse": NONE},
            )
        )
    )
    assert set(entry) == {"stage", "expect_version", "machine", "migrate"}
    assert entry["migrate"] == encode_arrow_doc(c.migrate_v2_v3)
    entry = _stage(
        build_change(_options("examples/counter/v3.py", dict.fromkeys(FUNCTION_PARTS, NONE)))
    )
    assert set(entry) == {"stage", "expect_version", "machine"}
    entry = _stage(build_change(_options("examples/counter/v3.py", {"migrate": None})))
    assert entry["migrate"] == v3.migrate.function.to_wire_data()


def test_adapters_are_sent_when_named() -> None:
    """Input and output adapters come from their flags."""
    entry = _stage(
        build_change(
            _options(
                "examples.counter.v3:machine",
                {
                    "input_adapter": "examples.counter.v2:migrate",
                    "output_adapter": "examples.counter:migrate_v3_v2",
                },
            )
        )
    )
    assert entry["input_adapter"] == v2.migrate.function.to_wire_data()
    assert entry["output_adapter"] == encode_arrow_doc(c.migrate_v3_v2)


def test_json_machine_and_function_files(tmp_path: Path) -> None:
    """Wire JSON files are sent as they are: a machine document and a function document."""
    machine = _json(tmp_path, "v3.json", v3.machine.machine.to_wire_data())
    migrate = _json(tmp_path, "migrate.json", v3.migrate.function.to_wire_data())
    inverse = _json(tmp_path, "inverse.arrow.json", encode_arrow_doc(c.migrate_v3_v2))
    doc = build_change(
        _options(machine, {"migrate": migrate, "inverse": inverse}, change_interface=True)
    )
    assert doc["change_interface"] is True
    assert _stage(doc) == {
        "stage": "count",
        "expect_version": VERSION,
        "machine": v3.machine.machine.to_wire_data(),
        "migrate": v3.migrate.function.to_wire_data(),
        "inverse": encode_arrow_doc(c.migrate_v3_v2),
    }
    (u,) = decode_change(doc).upgrades
    assert isinstance(u.machine, Machine)
    assert u.machine.version == v3.machine.version
    assert u.inverse == c.migrate_v3_v2


def test_json_loop_file_is_a_machine(tmp_path: Path) -> None:
    """A loop document is a machine too (built with the stage's types when applied)."""
    loop_file = _json(tmp_path, "loop.json", encode_loop_doc(c.counter_v3))
    (u,) = decode_change(build_change(_options(loop_file))).upgrades
    assert isinstance(u.machine, Loop)
    assert u.machine == c.counter_v3


def test_json_source_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    """A function document is not a machine; a whole change document needs --change-file."""
    fn = _json(tmp_path, "fn.json", v3.migrate.function.to_wire_data())
    with pytest.raises(
        TargetError, match=re.escape(f"{fn} is a function document; expected a machine or a loop")
    ):
        build_change(_options(fn))
    whole = _json(tmp_path, "change.json", build_change(_options("examples/counter/v3.py")))
    with pytest.raises(
        TargetError,
        match=re.escape(f"{whole} is a whole change document: send it with --change-file"),
    ):
        build_change(_options(whole))


def test_json_part_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    """A machine document cannot be the migrate; the message names the part."""
    m = _json(tmp_path, "m.json", v3.machine.machine.to_wire_data())
    with pytest.raises(
        TargetError,
        match=re.escape(f"{m} is a machine document; the input adapter must be a function"),
    ):
        build_change(_options("examples.counter.v3:machine", {"input_adapter": m}))


def test_unreadable_or_bad_json_is_refused(tmp_path: Path) -> None:
    """Missing files, bytes that are not JSON and non-documents are TargetErrors."""
    missing = str(tmp_path / "missing.json")
    with pytest.raises(TargetError, match=re.escape(f"cannot read {missing}: ")):
        build_change(_options(missing))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(TargetError, match=re.escape(f"{bad}: at $: expected a JSON document")):
        build_change(_options(str(bad)))
    listed = _json(tmp_path, "list.json", [1, 2])
    with pytest.raises(
        TargetError, match=re.escape(f"{listed}: at $: expected an arrowloop document")
    ):
        build_change(_options("examples.counter.v3:machine", {"migrate": listed}))


def test_json_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    """A file bigger than the byte limit is refused before it is parsed, with its size."""
    data = orjson.dumps(v3.machine.machine.to_wire_data())
    path = tmp_path / "big.json"
    path.write_bytes(data)
    with pytest.raises(TargetError) as info:
        build_change(_options(str(path)), Limits(max_bytes=100))
    assert str(info.value) == f"{path} is {len(data)} bytes; at most 100 can be sent"


def test_module_without_a_machine_is_refused() -> None:
    """A module given without ``:NAME`` must define ``machine``."""
    with pytest.raises(TargetError) as info:
        build_change(_options("examples.counter"))
    assert str(info.value) == (
        "examples.counter defines no 'machine': name the machine as examples.counter:NAME"
    )


def test_object_that_is_not_a_machine_is_refused() -> None:
    """An arrow named as the machine cannot be sent, and the message says why."""
    with pytest.raises(
        TargetError, match=r"examples.counter:migrate_v2_v3 cannot be sent: expected a Machine"
    ):
        build_change(_options("examples.counter:migrate_v2_v3"))


def test_object_that_is_not_a_function_is_refused() -> None:
    """A loop named as the migration cannot be the migrate."""
    with pytest.raises(
        TargetError, match=r"examples.counter:counter_v2 cannot be the migrate: expected a Function"
    ):
        build_change(
            _options("examples.counter.v3:machine", {"migrate": "examples.counter:counter_v2"})
        )


def test_native_machine_cannot_be_sent(tmp_path: Path) -> None:
    """An upgrade file whose machine is native is refused with the native-machine reason."""
    source = """
    from arrowloop import native

    def _step(x: int, s: int) -> tuple[int, int]:
        return s + x, s + x

    machine = native(_step, 0)
    """
    path = _module(tmp_path, "al_native.py", source)
    with pytest.raises(TargetError, match=re.escape(f"{path} cannot be sent: a native machine")):
        build_change(_options(str(path)))


def test_python_migration_in_an_upgrade_file_is_refused(tmp_path: Path) -> None:
    """An upgrade file whose migrate is a plain Python function names the part."""
    source = """
    from examples.counter.v2 import machine

    def migrate(count: int) -> int:
        return count
    """
    path = _module(tmp_path, "al_plainmigrate.py", source)
    with pytest.raises(TargetError, match=re.escape(f"{path}: its migrate cannot be sent: ")):
        build_change(_options(str(path)))


def test_upgrade_file_outside_the_project(tmp_path: Path) -> None:
    """An upgrade file anywhere sends its machine and migrate (and no inverse it lacks)."""
    path = _module(tmp_path, "al_upgrade.py", OUTSIDE)
    entry = _stage(build_change(_options(str(path))))
    assert set(entry) == {"stage", "expect_version", "machine", "migrate"}
    assert entry["machine"]["kind"] == "machine"
    assert entry["machine"]["input"] == {"kind": "int"}
    assert entry["migrate"]["kind"] == "function"


def test_missing_references_in_parts_are_target_errors() -> None:
    """A part naming a missing attribute is reported like any reference."""
    with pytest.raises(TargetError, match=re.escape("examples.counter.v3 has no attribute 'nope'")):
        build_change(_options("examples/counter/v3.py", {"migrate": "examples.counter.v3:nope"}))


# -- read_change_file ----------------------------------------------------------------


def test_change_file_is_read_as_it_is(tmp_path: Path) -> None:
    """A whole change document is read back unchanged."""
    doc = build_change(_options("examples/counter/v3.py"))
    path = _json(tmp_path, "change.json", doc)
    assert read_change_file(path) == doc


def test_change_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    """A machine document is not a change document."""
    path = _json(tmp_path, "m.json", v2.machine.machine.to_wire_data())
    with pytest.raises(TargetError) as info:
        read_change_file(path)
    assert str(info.value) == f"{path} is a machine document; expected a change document"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "expected a JSON document"),
        (b"[]", "expected an arrowloop document (an object), found an array"),
        (b'{"format": "arrowloop", "version": 9, "kind": "change"}', "expected format version 1"),
    ],
)
def test_change_file_that_is_not_a_document_is_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Empty files, non-objects and other format versions are TargetErrors naming the file."""
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(TargetError) as info:
        read_change_file(str(path))
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_change_file_respects_the_byte_limit(tmp_path: Path) -> None:
    """A change file over the limit is refused with its size."""
    path = _json(tmp_path, "change.json", build_change(_options("examples/counter/v3.py")))
    with pytest.raises(TargetError, match=r"is \d+ bytes; at most 64 can be sent"):
        read_change_file(path, Limits(max_bytes=64))
