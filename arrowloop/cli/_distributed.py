"""``history --nats URL --nats-pipeline NAME`` and ``rollback STAGE --nats URL
--nats-pipeline NAME --nats-channel FIRST``: a distributed pipeline's change
history gathered from its segments, and the rollback of a stage's latest
change sent in-band (docs/distributed.md), printed as for a server; and
``status --nats URL --nats-pipeline NAME --watch``: the live view of
``status --watch`` (_watch.py), polled through the broker."""

from __future__ import annotations

import argparse
from typing import Any

from arrowloop.cli._client import RemoteError, Unreachable
from arrowloop.cli._commands import EXIT_OK, UsageError, say
from arrowloop.cli._format import short, show_history, show_json
from arrowloop.errors import UpgradeError, error_data

__all__ = ["history_over_nats", "rollback_over_nats", "watch_over_nats"]

_NO_EXTRA = "--nats needs the nats extra (nats-py): pip install 'arrowloop[nats]'"


async def history_over_nats(args: argparse.Namespace) -> int:
    """Every segment's changes, one record per change, oldest first.

    Raises:
        UsageError: no ``--nats-pipeline``, or no nats extra.
        Unreachable: no broker, or no segment answered.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import connect, gather_history
        from arrowloop.distributed._control import history_as_records
        from arrowloop.distributed._history import merge_history
    except ImportError:
        raise UsageError(_NO_EXTRA) from None
    if not args.nats_pipeline:
        raise UsageError("--nats goes with --nats-pipeline NAME")
    try:
        async with connect(args.nats) as nc:
            answers = await gather_history(nc, args.nats_pipeline, within=1.0)
    except NoServersError:
        raise Unreachable(f"no broker at {args.nats}") from None
    if not answers:
        raise Unreachable(f"no segment of pipeline {args.nats_pipeline!r} answered")
    records = history_as_records(merge_history(answers))
    for line in [show_json(records)] if args.json else show_history(records):
        say(line)
    return EXIT_OK


async def rollback_over_nats(args: argparse.Namespace) -> int:
    """Undo the latest change of ``args.stage`` in every segment it touched.

    Raises:
        UsageError: no stage, ``--nats-pipeline`` or ``--nats-channel``, or
            no nats extra.
        RemoteError: refused (nothing to roll back, changed since, ...).
        Unreachable: no broker, or no result in ``--timeout`` seconds.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import connect, send_rollback
    except ImportError:
        raise UsageError(_NO_EXTRA) from None
    if not args.stage or not args.nats_pipeline or not args.nats_channel:
        raise UsageError(
            "with --nats: the STAGE, --nats-pipeline NAME and --nats-channel FIRST_STAGE"
        )
    try:
        async with connect(args.nats) as nc:
            versions = await send_rollback(
                nc,
                args.nats_pipeline,
                args.nats_channel,
                args.stage,
                requested_by=args.by,
                within=args.timeout,
                shards=args.nats_shards,
            )
    except NoServersError:
        raise Unreachable(f"no broker at {args.nats}") from None
    except UpgradeError as exc:
        if exc.reason == "no reply":
            raise Unreachable(str(exc)) from None
        raise RemoteError(error_data(exc)) from None
    result: dict[str, Any] = {"versions": versions}
    if args.json:
        say(show_json(result))
        return EXIT_OK
    for stage, version in versions.items():
        say(f"rollback of stage {stage}: succeeded (now {short(version)})")
    return EXIT_OK


async def watch_over_nats(args: argparse.Namespace) -> int:
    """Redraw the watch view of every segment's status and the merged history.

    Raises:
        UsageError: no ``--nats-pipeline``, or no nats extra.
        Unreachable: no broker.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import connect
        from arrowloop.distributed._control import SegmentControl
    except ImportError:
        raise UsageError(_NO_EXTRA) from None
    from arrowloop.cli._watch import watch_status

    if not args.nats_pipeline:
        raise UsageError("--nats goes with --nats-pipeline NAME")

    class Gathered:
        """The control operations the view polls, answered through the broker."""

        def __init__(self, control: SegmentControl) -> None:
            self.control = control

        async def request(self, op: str, **fields: Any) -> Any:
            if op == "status":
                return await self.control.status()
            return await self.control.history()

    try:
        async with connect(args.nats) as nc:
            # The first channel is not needed to watch: nothing is sent.
            await watch_status(
                Gathered(SegmentControl(nc, args.nats_pipeline, "")), args.interval, args.count
            )
    except NoServersError:
        raise Unreachable(f"no broker at {args.nats}") from None
    return EXIT_OK
