"""How the data port splits a batch of request lines (``_steps``): a leading
run of plain requests is one group, and what follows it (ids, versions,
errors, more plain requests) keeps its place in the reply order."""

from __future__ import annotations

import orjson

from arrowloop.endpoints import LineTooLong
from arrowloop.server._dataconn import _Group, _steps


def _line(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_a_batch_of_plain_requests_is_one_group() -> None:
    steps = _steps([_line(item=1), _line(item=2), _line(item=3)])
    assert len(steps) == 1
    assert isinstance(steps[0], _Group)
    assert steps[0].items == [1, 2, 3]
    assert steps[0].ids is None


def test_what_follows_a_plain_run_keeps_its_place() -> None:
    steps = _steps(
        [
            _line(item=1),
            _line(item=2, id=7),
            b"not json",
            _line(item=3),
            LineTooLong(600, 512),
            _line(item=4, version="v1"),
        ]
    )
    first, bad, after, long, versioned = steps
    assert isinstance(first, _Group)
    assert (first.items, first.ids) == ([1, 2], [None, 7])
    assert not isinstance(bad, _Group)
    assert bad[2]["type"] == "ProtocolError"
    assert isinstance(after, _Group)
    assert after.items == [3]
    assert not isinstance(long, _Group)
    assert "512" in long[2]["expected"]
    assert isinstance(versioned, _Group)
    assert (versioned.version, versioned.items) == ("v1", [4])
