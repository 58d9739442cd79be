"""The in-process counter demo (used by ``python -m arrowloop demo``).

Runs the transcript of DESIGN.md: every machine and migration is encoded to
its wire form, decoded and re-checked as a remote end would, then stepped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arrowloop.errors import CheckError
from arrowloop.machine import Function, Machine


def run_demo(say: Callable[[str], Any]) -> int:
    """Run the counter transcript, reporting each step through ``say``.

    Returns 0 when every output matched the transcript, 1 otherwise.
    """
    try:
        from examples import counter as c
    except ImportError:
        say("the demo needs the project's examples/ package: run it from the project root")
        return 1

    def ship(m: Machine) -> Machine:
        return Machine.from_wire(m.to_wire())

    v1 = ship(Machine.build(c.counter_v1, c.InputV1, c.Output))
    v2 = ship(Machine.build(c.counter_v2, c.InputV2, c.Output))
    v3 = ship(Machine.build(c.counter_v3, c.InputV3, c.Output))
    to_v2 = Function.from_wire(Function.build(c.migrate_v1_v2, int, int).to_wire())
    to_v3 = Function.from_wire(Function.build(c.migrate_v2_v3, int, tuple[int, bool]).to_wire())

    ok = True
    machine, state = v1, v1.init

    def send(msg: Any, expect: Any) -> None:
        nonlocal state, ok
        state, out = machine.step(msg, state)
        mark = "ok" if out == expect else f"MISMATCH (expected {expect})"
        ok = ok and out == expect
        say(f"  {type(msg).__name__:<12} -> {out!r:<14} state={state!r}  {mark}")

    say(f"counter v1 {v1.version[:12]}")
    for msg, expect in [
        (c.ReadCount(), c.Count(0)),
        (c.IncrCount(), c.Ack()),
        (c.IncrCount(), c.Ack()),
        (c.ReadCount(), c.Count(2)),
    ]:
        send(msg, expect)

    say("refused: an upgrade to v3 with the identity as migration")
    try:
        Function.build(c.migrate_v1_v2, int, tuple[int, bool])
        ok = False
        say("  MISMATCH: the ill-typed migration was accepted")
    except CheckError as exc:
        say(f"  refused: {exc}")

    state = to_v2.apply_checked(state)
    machine = v2
    say(f"upgrade to v2 {v2.version[:12]} -> succeeded, state={state!r}")
    for msg, expect in [
        (c.ReadCount(), c.Count(2)),
        (c.ResetCount(), c.Ack()),
        (c.ReadCount(), c.Count(0)),
    ]:
        send(msg, expect)

    state = to_v3.apply_checked(state)
    machine = v3
    say(
        f"upgrade to v3 {v3.version[:12]} (migration n -> (n, False)) -> succeeded, state={state!r}"
    )
    for msg, expect in [
        (c.ReadCount(), c.Count(0)),
        (c.IncrCount(), c.Ack()),
        (c.IncrCount(), c.Ack()),
        (c.ReadCount(), c.Count(2)),
        (c.ToggleCount(), c.Ack()),
        (c.IncrCount(), c.Ack()),
        (c.ReadCount(), c.Count(1)),
    ]:
        send(msg, expect)
    say("transcript matched" if ok else "transcript DID NOT match")
    return 0 if ok else 1
