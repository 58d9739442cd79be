"""``python -m arrowloop serve TARGET --nats URL --segment a,b``: run some
stages of a pipeline in this process (``--shards 0,1``: those shards of a
sharded stage, as tasks), between channels on NATS JetStream
(docs/distributed.md), until end of stream or SIGINT/SIGTERM; and
``upgrade ... --nats URL``: send a code change into such a pipeline;
``status --nats URL``: what each of its segments runs. With
``--control-port N`` a segment serves the control protocol for the whole
pipeline (_segment_control.py)."""

from __future__ import annotations

import argparse
import os
import re
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from arrowloop.cli._client import RemoteError, Unreachable
from arrowloop.cli._commands import EXIT_OK, UsageError, say
from arrowloop.cli._format import short, show_json
from arrowloop.cli._load import FUNCTION_PARTS, ChangeOptions, build_change, read_change_file
from arrowloop.cli._placement import segment_of
from arrowloop.cli._segment_control import open_segment_control
from arrowloop.cli._serving import _write_ready
from arrowloop.errors import ArrowloopError, StoreError
from arrowloop.runtime import PipelineSpec
from arrowloop.server import as_supervisor_spec, load_object

__all__ = ["serve_segment", "upgrade_over_nats", "status_over_nats"]

_VERSION = re.compile(r"[0-9a-f]{64}")


def _pipeline_of(target: str) -> tuple[PipelineSpec, str]:
    obj, name = load_object(target)
    spec = as_supervisor_spec(obj, name)
    return PipelineSpec(tuple(c.start for c in spec.stages)), spec.name  # type: ignore[misc]


def _shards(spec: PipelineSpec, stages: list[str], given: str | None) -> Sequence[int | None]:
    """The shards ``--shards`` names (all of a sharded stage's by default);
    ``[None]`` for a segment of unsharded stages."""
    sharded = [s for s in spec.stages if s.name in stages and s.sharded]
    if not sharded:
        if given:
            raise UsageError(f"--shards goes with --segment naming a sharded stage, not {stages}")
        return [None]
    n = sharded[0].shards
    if not given:
        return list(range(n))
    try:
        chosen = [int(x) for x in given.split(",")]
    except ValueError:
        raise UsageError(f"--shards takes shard numbers, e.g. 0,1; found {given!r}") from None
    if len(set(chosen)) != len(chosen) or not all(0 <= k < n for k in chosen):
        raise UsageError(f"stage {sharded[0].name!r} has shards 0 to {n - 1}; found {given!r}")
    return chosen


async def serve_segment(args: argparse.Namespace) -> int:
    """Run the stages ``args.segment`` names (all of them by default) here.

    Raises:
        UsageError: a segment that is not consecutive stages of the pipeline,
            a store that holds other versions of them, or no nats extra.
        Unreachable: no broker at ``args.nats``.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import ChannelConfig, open_segment
    except ImportError:
        raise UsageError(
            "--nats needs the nats extra (nats-py): pip install 'arrowloop[nats]'"
        ) from None
    spec, name = _pipeline_of(args.target)
    url, stages = segment_of(args, spec, name)
    config = ChannelConfig(
        frame_items=args.nats_frame_items,
        max_ack_pending=args.nats_window,
        max_msgs=args.nats_max_msgs,
        ack_wait=args.nats_ack_wait,
    )
    state_dir = Path(args.state_dir) if args.state_dir else None
    shards = _shards(spec, stages, args.shards)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with AsyncExitStack() as stack:
                # One segment per shard named (one for unsharded stages), and
                # one control port for the process.
                segs = [
                    await stack.enter_async_context(
                        open_segment(
                            spec,
                            stages,
                            url,
                            pipeline=name,
                            state_dir=state_dir,
                            fsync=args.fsync,
                            config=config,
                            memory=args.nats_state == "memory",
                            shard=shard,
                        )
                    )
                    for shard in shards
                ]
                control = await stack.enter_async_context(
                    open_segment_control(
                        args,
                        url,
                        spec.stages[0].name,
                        name,
                        spec.stages[0].shards if spec.stages[0].sharded else None,
                    )
                )
                say(f"arrowloop: serving stages {', '.join(stages)} of {args.target}")
                say(f"  broker   {url}  (pipeline {name})")
                for seg in segs:
                    say(f"  input    {seg.receiver.name.stream}")
                    assert seg.sender is not None
                    say(f"  output   {seg.sender.name.stream}")
                    store = seg.store.location
                    if state_dir is None:
                        store = (
                            "memory only: a crash loses state"
                            if args.nats_state == "memory"
                            else f"{store} (the broker's key-value store)"
                        )
                    fsync = f"; fsync {args.fsync}" if state_dir else ""
                    say(f"  state    {store}  (resumed after position {seg.committed}{fsync})")
                for a in segs[0].actors:
                    say(f"  stage {a.name}: version {short(a.machine.version)}")
                # The server's ready file's keys: the CLI reads the control
                # port from it (a segment has no data port).
                ready: dict[str, Any] = {
                    "pid": os.getpid(),
                    "stages": stages,
                    "data": None,
                    "control": None,
                }
                if control is not None:
                    (ch, cp), source = control
                    say(f"  control  {ch}:{cp}  (token from {source}; drives the whole pipeline)")
                    ready["control"] = {"host": ch, "port": cp}
                    ready["token_file"] = None if source.startswith("$") else source
                if args.ready_file:
                    _write_ready(args.ready_file, ready)
                async with anyio.create_task_group() as tg:

                    async def stop_on_signal() -> None:
                        async for signum in signals:
                            say(f"arrowloop: {signal.Signals(signum).name}: stopping")
                            break
                        tg.cancel_scope.cancel()

                    tg.start_soon(stop_on_signal)
                    for seg in segs:
                        await seg.finished.wait()
                    say("arrowloop: end of stream")
                    tg.cancel_scope.cancel()
                for seg in segs:
                    counts = ", ".join(f"{k} {v}" for k, v in seg.statistics().items())
                    say(f"arrowloop: {counts}")
        except NoServersError:
            raise Unreachable(f"no broker at {url}") from None
        except ArrowloopError as exc:
            raise UsageError(str(exc)) from exc
        except BaseExceptionGroup as group:
            # A store that refused a commit (another process took the
            # segment, the broker refused the write) stops the stages' task
            # group: its error is the message, not a traceback.
            found = group.subgroup(lambda e: isinstance(e, StoreError))
            if found is None:
                raise
            leaf: BaseException = found
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise UsageError(f"the segment stopped: {leaf}") from group
    say("arrowloop: stopped")
    return EXIT_OK


async def upgrade_over_nats(args: argparse.Namespace) -> int:
    """``upgrade --nats URL --nats-pipeline NAME --nats-channel FIRST``: send
    the change in-band into a distributed pipeline and print the versions.

    Raises:
        UsageError: no full ``--stage`` and ``--expect`` (nothing to ask
            them from), or no nats extra.
        RemoteError: the segment running the stages refused the change.
        Unreachable: no broker, or no result in ``--timeout`` seconds.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import connect, request_change
    except ImportError:
        raise UsageError(
            "--nats needs the nats extra (nats-py): pip install 'arrowloop[nats]'"
        ) from None
    if not args.nats_pipeline or not args.nats_channel:
        raise UsageError("--nats goes with --nats-pipeline NAME and --nats-channel FIRST_STAGE")
    if args.change_file:
        doc = read_change_file(args.change_file)
    else:
        if not args.source or not args.stage or not _VERSION.fullmatch(args.expect or ""):
            raise UsageError(
                "with --nats: SOURCE, --stage and --expect with the full version (64 hex "
                "digits) or --change-file: there is no control port to ask them from"
            )
        parts = {p: getattr(args, p) for p in FUNCTION_PARTS}
        if args.no_migrate:
            parts["migrate"] = "none"
        doc = build_change(
            ChangeOptions(
                args.source,
                args.stage,
                args.expect,
                parts,
                requested_by=args.by,
                change_interface=args.change_interface,
            )
        )
    try:
        async with connect(args.nats) as nc:
            result = await request_change(
                nc,
                args.nats_pipeline,
                args.nats_channel,
                doc,
                within=args.timeout,
                shards=args.nats_shards,
            )
    except NoServersError:
        raise Unreachable(f"no broker at {args.nats}") from None
    if result is None:
        raise Unreachable(f"no result within {args.timeout} s (is every segment running?)")
    if "error" in result:
        raise RemoteError(result["error"])
    if args.json:
        say(show_json(result))
        return EXIT_OK
    for stage, version in result["versions"].items():
        say(f"upgrade of stage {stage}: succeeded (now {short(version)})")
    return EXIT_OK


async def status_over_nats(args: argparse.Namespace) -> int:
    """``status --nats URL --nats-pipeline NAME``: every segment's status.

    Raises:
        UsageError: no ``--nats-pipeline``, or no nats extra.
        Unreachable: no broker, or no segment answered.
    """
    try:
        from nats.errors import NoServersError

        from arrowloop.distributed import connect, pipeline_status
    except ImportError:
        raise UsageError(
            "--nats needs the nats extra (nats-py): pip install 'arrowloop[nats]'"
        ) from None
    if not args.nats_pipeline:
        raise UsageError("--nats goes with --nats-pipeline NAME")
    try:
        async with connect(args.nats) as nc:
            segments = await pipeline_status(nc, args.nats_pipeline, within=1.0)
    except NoServersError:
        raise Unreachable(f"no broker at {args.nats}") from None
    if not segments:
        raise Unreachable(f"no segment of pipeline {args.nats_pipeline!r} answered")
    if args.json:
        say(show_json(segments))
        return EXIT_OK
    for seg in segments:
        names = ",".join(st["name"] for st in seg["stages"])
        c = seg["counts"]
        say(
            f"segment {names} (pid {seg['pid']}): {seg['input']} -> {seg['output']}, "
            f"position {c['committed']}{', finished' if seg['finished'] else ''}"
        )
        for st in seg["stages"]:
            say(
                f"  stage {st['name']}: version {short(st['version'])}, "
                f"{st['processed']} applied, {st['failed']} failed, {st['upgrades']} upgrades"
            )
        for change in seg.get("awaiting", []):
            say(f"  holding change {change} prepared: waiting for its decision")
    return EXIT_OK
