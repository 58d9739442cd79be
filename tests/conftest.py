"""Shared fixtures: runtime tests run on asyncio's own loop and on uvloop."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """The event loops every ``@pytest.mark.anyio`` test runs on."""
    return request.param
