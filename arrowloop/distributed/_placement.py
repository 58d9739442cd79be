"""A placement file: which segment process runs which stages of a distributed pipeline.

A small TOML (``.toml``, read with the standard library's ``tomllib``) or
JSON file (any other name)::

    pipeline = "orders"                  # the pipeline's name on the broker
    broker = "nats://127.0.0.1:4222"     # its NATS URL

    [segments]
    front = ["parse", "count"]           # a segment's name = its stages, in order
    back = ["report"]

``serve TARGET --placement FILE --segment front`` runs segment ``front``.
Every field is checked, and the segments against the pipeline: each stage
in exactly one segment, each segment consecutive stages in pipeline order.
An error names the file and the field, what was expected and what was
found; nothing is started.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Final

import attrs

from arrowloop.errors import LocatedError
from arrowloop.runtime import PipelineSpec

__all__ = ["Placement", "PlacementError", "load_placement", "check_placement"]

_FIELDS: Final = ("pipeline", "broker", "segments")


class PlacementError(LocatedError):
    """A placement file that cannot be used: ``path`` is ``FILE: field``."""


@attrs.frozen
class Placement:
    """A distributed pipeline's placement.

    Attributes:
        pipeline: the pipeline's name on the broker.
        broker: the broker's URL.
        segments: each segment's name and its stages, in the file's order.
        source: the file it was read from.
    """

    pipeline: str
    broker: str
    segments: tuple[tuple[str, tuple[str, ...]], ...]
    source: str = ""

    def stages_of(self, segment: str) -> tuple[str, ...]:
        """The stages of ``segment``.

        Raises:
            PlacementError: no segment of that name.
        """
        for name, stages in self.segments:
            if name == segment:
                return stages
        names = [n for n, _ in self.segments]
        raise PlacementError(
            f"expected one of the segments {names}, found {segment!r}",
            path=f"{self.source}: segments",
            expected=f"one of {names}",
            found=repr(segment),
        )


def _fail(source: str, field: str, expected: str, found: str) -> PlacementError:
    return PlacementError(
        f"expected {expected}, found {found}",
        path=f"{source}: {field}",
        expected=expected,
        found=found,
    )


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def load_placement(path: str | Path) -> Placement:
    """Read and check the placement file at ``path`` (its own fields only;
    :func:`check_placement` checks it against the pipeline).

    Raises:
        PlacementError: it cannot be read or parsed, or a field is not
            what is expected (the error says which).
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PlacementError(
            f"cannot read the placement file: {exc.strerror or exc}", path=source
        ) from None
    toml = source.endswith(".toml")
    try:
        data = tomllib.loads(raw.decode()) if toml else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if toml else "JSON (name the file .toml for TOML)"
        raise PlacementError(f"expected {kind}: {exc}", path=source, expected=kind) from None
    return _placement(data, source)


def _placement(data: Any, source: str) -> Placement:
    if type(data) is not dict:
        raise _fail(source, "(top level)", "a table of pipeline, broker, segments", _show(data))
    unknown = [k for k in data if k not in _FIELDS]
    if unknown:
        raise _fail(source, str(unknown[0]), f"only the fields {list(_FIELDS)}", repr(unknown[0]))
    pipeline = data.get("pipeline")
    if type(pipeline) is not str or not pipeline:
        raise _fail(source, "pipeline", "the pipeline's name (a non-empty string)", _show(pipeline))
    broker = data.get("broker")
    if type(broker) is not str or not broker.startswith(("nats://", "tls://")):
        raise _fail(source, "broker", "the broker's URL (nats://HOST:PORT)", _show(broker))
    segments = data.get("segments")
    if type(segments) is not dict or not segments:
        raise _fail(source, "segments", "a table of segment names to their stages", _show(segments))
    parsed = []
    for name, stages in segments.items():
        where = f"segments.{name}"
        if type(stages) is not list or not stages:
            raise _fail(source, where, "a list of stage names", _show(stages))
        for i, stage in enumerate(stages):
            if type(stage) is not str or not stage:
                raise _fail(source, f"{where}[{i}]", "a stage name (a string)", _show(stage))
        parsed.append((str(name), tuple(stages)))
    return Placement(pipeline, broker, tuple(parsed), source)


def check_placement(placement: Placement, spec: PipelineSpec, name: str) -> None:
    """Check ``placement`` against the pipeline ``spec`` served as ``name``.

    Raises:
        PlacementError: another pipeline's name, an unknown stage, a stage in
            two segments or in none, or a segment whose stages are not
            consecutive in pipeline order.
    """
    source = placement.source
    if placement.pipeline != name:
        raise _fail(
            source,
            "pipeline",
            f"{name!r} (the name TARGET is served as)",
            repr(placement.pipeline),
        )
    order = [s.name for s in spec.stages]
    owner: dict[str, str] = {}
    for seg, stages in placement.segments:
        for i, stage in enumerate(stages):
            where = f"segments.{seg}[{i}]"
            if stage not in order:
                raise _fail(source, where, f"a stage of the pipeline {order}", repr(stage))
            if stage in owner:
                raise _fail(
                    source,
                    where,
                    "each stage in one segment",
                    f"{stage!r} in segments {owner[stage]!r} and {seg!r}",
                )
            owner[stage] = seg
        first = order.index(stages[0])
        if list(stages) != order[first : first + len(stages)]:
            expected = order[first : first + len(stages)]
            raise _fail(
                source,
                f"segments.{seg}",
                f"consecutive stages in pipeline order (from {stages[0]!r}: {expected})",
                str(list(stages)),
            )
    missing = [s for s in order if s not in owner]
    if missing:
        raise _fail(
            source, "segments", "every stage of the pipeline in a segment", f"{missing} in none"
        )
