"""Which stages a ``serve --nats`` process runs, and on which broker: from
``--segment A,B`` and ``--nats URL``, or from a placement file
(``--placement FILE --segment NAME``; ``arrowloop.distributed._placement``)."""

from __future__ import annotations

import argparse

from arrowloop.cli._commands import UsageError
from arrowloop.runtime import PipelineSpec

__all__ = ["segment_of"]


def segment_of(args: argparse.Namespace, spec: PipelineSpec, name: str) -> tuple[str, list[str]]:
    """The broker's URL and the stages to run here.

    Raises:
        UsageError: a placement file that cannot be used (the error names
            the file and the field), no ``--segment NAME`` with it, or no
            broker at all.
    """
    if not args.placement:
        if not args.nats:
            raise UsageError("--segment goes with --nats URL (or --placement FILE)")
        stages = args.segment.split(",") if args.segment else [s.name for s in spec.stages]
        return args.nats, stages
    from arrowloop.distributed._placement import (
        PlacementError,
        check_placement,
        load_placement,
    )

    try:
        placement = load_placement(args.placement)
        check_placement(placement, spec, name)
        if not args.segment:
            names = [n for n, _ in placement.segments]
            raise UsageError(f"--placement goes with --segment NAME, one of {names}")
        stages = list(placement.stages_of(args.segment))
    except PlacementError as exc:
        raise UsageError(f"placement: {exc}") from None
    return args.nats or placement.broker, stages
