"""The public API as a newcomer meets it: ``arrowloop.supervisor`` is the package
whichever way it is imported and still makes specs when called, and supervisor
options take the strings OTP users write, or say where the enum lives."""

from __future__ import annotations

import importlib

import pytest

import arrowloop
from arrowloop import ChildSpecError, Restart, Strategy, child, stage
from arrowloop.examples.counter import v1


def test_import_as_binds_the_supervisor_package() -> None:
    """``import arrowloop.supervisor as s`` gives the module, with its names."""
    import arrowloop.supervisor as s

    assert s is importlib.import_module("arrowloop.supervisor")
    assert arrowloop.supervisor is s
    assert s.Strategy is Strategy
    assert s.open_supervisor is arrowloop.open_supervisor


def test_the_package_called_makes_a_supervisor_spec() -> None:
    """``from arrowloop import supervisor; supervisor(...)`` still makes a spec."""
    from arrowloop import supervisor
    from arrowloop.supervisor import supervisor as factory

    called = supervisor("svc", stage("counter", v1.machine), intensity=2)  # type: ignore[operator]
    assert called == factory("svc", stage("counter", v1.machine), intensity=2)


def test_strategy_and_restart_accept_their_values() -> None:
    """``strategy="rest_for_one"`` and ``restart="transient"`` mean the enum members."""
    from arrowloop.supervisor import supervisor

    spec = supervisor(
        "svc",
        child(stage("counter", v1.machine), restart="transient"),
        strategy="rest_for_one",
    )
    assert spec.strategy is Strategy.REST_FOR_ONE
    assert spec.children[0].restart is Restart.TRANSIENT


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: arrowloop.supervisor.supervisor(
                "svc",
                stage("counter", v1.machine),
                strategy="rest-for-one",  # type: ignore[arg-type]
            ),
            "at strategy: expected a Strategy (from arrowloop import Strategy) or one of "
            "'one_for_one', 'one_for_all', 'rest_for_one', found 'rest-for-one'",
        ),
        (
            lambda: child(stage("counter", v1.machine), restart=1),  # type: ignore[arg-type]
            "at restart: expected a Restart (from arrowloop import Restart) or one of "
            "'permanent', 'transient', 'temporary', found 1",
        ),
    ],
)
def test_a_wrong_option_names_where_the_enum_lives(make: object, message: str) -> None:
    """A value that is no member is refused with the import that gives the enum."""
    assert callable(make)
    with pytest.raises(ChildSpecError) as info:
        make()
    assert str(info.value) == message
