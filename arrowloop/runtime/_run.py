"""Running async code on the right event loop: uvloop by default, asyncio otherwise."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["run", "uvloop_available"]

T = TypeVar("T")


def uvloop_available() -> bool:
    """Whether uvloop can be used here (installed; not on Windows)."""
    return importlib.util.find_spec("uvloop") is not None


def run(func: Callable[..., Awaitable[T]], *args: Any, use_uvloop: bool | None = None) -> T:
    """Run ``await func(*args)`` on a new event loop and return its result.

    uvloop is used when available unless ``use_uvloop=False``; asyncio's own
    loop otherwise. ``use_uvloop=True`` without uvloop raises RuntimeError.
    """
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    elif use_uvloop and not uvloop_available():
        raise RuntimeError("uvloop was requested but is not installed (pip install uvloop)")
    return anyio.run(func, *args, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
