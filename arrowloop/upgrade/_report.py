"""Supervisor introspection as JSON data: status, history and a stage's state.

What the control protocol returns for ``status``, ``history`` and
``get_state``: plain dictionaries and lists, with versions in full and a
state in the JSON value form of its type (with the type beside it, so a
client can read it without knowing the machine).
"""

from __future__ import annotations

from typing import Any

import attrs

from arrowloop.machine import AnyMachine
from arrowloop.supervisor import SupervisorStatus, UpgradeRecord
from arrowloop.wire import encode_type, encode_value

__all__ = ["status_data", "record_data", "state_data"]


def status_data(status: SupervisorStatus) -> dict[str, Any]:
    """A supervisor's status (nested supervisors included) as JSON data."""
    data: dict[str, Any] = attrs.asdict(status)
    return data


def record_data(record: UpgradeRecord) -> dict[str, Any]:
    """One history record as JSON data."""
    data: dict[str, Any] = attrs.asdict(record)
    return data


def state_data(stage: str, machine: AnyMachine, state: Any) -> dict[str, Any]:
    """A stage's state with its version and type, as JSON data.

    Raises:
        ValidationError: the state has no wire form (a native machine's
            state outside the wire's value range).
    """
    return {
        "stage": stage,
        "version": machine.version,
        "state_type": encode_type(machine.state),
        "state": encode_value(machine.state, state),
    }
