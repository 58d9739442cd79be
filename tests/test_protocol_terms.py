"""What docs/protocol.md promises clients in other languages about refused
requests: the ``found`` of an error names JSON's kinds (``an array``, ``the number
7``), not Python's (``list``, ``int``)."""

from __future__ import annotations

from typing import Any

import pytest

from arrowloop.endpoints import describe_json
from arrowloop.errors import ProtocolError
from arrowloop.server._data import _parse


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (7, "the number 7"),
        (2.5, "the number 2.5"),
        ("x", "the string 'x'"),
        ([1], "an array"),
        ({"a": 1}, "an object"),
    ],
)
def test_json_values_are_described_in_json_terms(value: Any, text: str) -> None:
    """Each JSON kind by its JSON name."""
    assert describe_json(value) == text


@pytest.mark.parametrize(
    ("line", "path", "found"),
    [
        (b"[1,2]", "$", "an array"),
        (b'{"item":{"tag":"ReadCount"},"id":[1]}', "$.id", "an array"),
        (b'{"item":{"tag":"ReadCount"},"version":7}', "$.version", "the number 7"),
        (b'{"item":{"tag":"ReadCount"},"id":true}', "$.id", "true"),
    ],
)
def test_data_request_errors_say_what_was_found_in_json_terms(
    line: bytes, path: str, found: str
) -> None:
    """A malformed data request's error says what it found as JSON names it."""
    with pytest.raises(ProtocolError) as info:
        _parse(line)
    assert (info.value.path, info.value.found) == (path, found)
