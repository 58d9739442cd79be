"""The code-change message and the upgrade history.

A :class:`CodeChange` names one stage or several (a pipeline upgrade), the
version each is expected to be running, the new machine, the state
migration, and optionally the inverse migration (for rollback) and
input/output adapters (so clients of the old version keep working): each
stage's part is a :class:`~arrowloop.runtime.StageUpgrade`. The supervisor
has it checked once, by :func:`~arrowloop.runtime.check_change`, before
anything enters the pipeline. Every change, refused, failed or applied,
leaves an :class:`UpgradeRecord`. Part of layer 9 (the supervisor); a later
layer gives the message its wire form.
"""

from __future__ import annotations

from typing import Literal

import attrs

from arrowloop.arrows import Loop
from arrowloop.frontend import PyMachine
from arrowloop.machine import AnyMachine
from arrowloop.runtime import Adapter, Migration, StageUpgrade

__all__ = [
    "StageUpgrade",
    "CodeChange",
    "code_change",
    "UpgradeRecord",
    "RecordKind",
    "RecordResult",
]

#: What a history record is about.
RecordKind = Literal["upgrade", "rollback", "auto-rollback"]
#: How it ended: refused before entering the pipeline, failed in the stage
#: (the migration raised or produced a bad state), or applied.
RecordResult = Literal["succeeded", "refused", "failed"]


@attrs.frozen
class CodeChange:
    """A code-change request: one or several stages changed as one cut.

    Attributes:
        upgrades: the stages' parts (each stage at most once).
        requested_by: who asks (recorded in the history).
        change_interface: allow the pipeline's own input or output type to
            change incompatibly (see :meth:`~arrowloop.runtime.Pipeline.upgrade`).
    """

    upgrades: tuple[StageUpgrade, ...]
    requested_by: str = "unknown"
    change_interface: bool = False

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages the change names, in the order given."""
        return tuple(u.stage for u in self.upgrades)


def code_change(
    stage: str,
    expect_version: str,
    machine: AnyMachine | PyMachine | Loop,
    migrate: Migration | None = None,
    *,
    inverse: Migration | None = None,
    input_adapter: Adapter | None = None,
    output_adapter: Adapter | None = None,
    requested_by: str = "unknown",
    change_interface: bool = False,
) -> CodeChange:
    """A code change of one stage (see :class:`StageUpgrade` for the fields)."""
    up = StageUpgrade(
        stage, expect_version, machine, migrate, inverse, input_adapter, output_adapter
    )
    return CodeChange((up,), requested_by, change_interface)


@attrs.frozen
class UpgradeRecord:
    """One entry of a supervisor's upgrade history (plain data).

    Attributes:
        seq: its number, counting from 1 for the supervisor's life.
        kind: ``upgrade``, ``rollback`` or ``auto-rollback``.
        requested_by: who asked (``supervisor`` for an auto-rollback).
        at: wall-clock time (seconds since the epoch) it was decided.
        stages: the stages concerned.
        from_versions: the versions they ran before, in ``stages`` order.
        to_versions: the versions asked for, in ``stages`` order.
        result: ``succeeded``, ``refused`` or ``failed``.
        reason: why it was refused or failed (empty on success).
    """

    seq: int
    kind: RecordKind
    requested_by: str
    at: float
    stages: tuple[str, ...]
    from_versions: tuple[str, ...]
    to_versions: tuple[str, ...]
    result: RecordResult
    reason: str = ""
