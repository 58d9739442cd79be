"""The counter service (re-exported from :mod:`arrowloop.examples.counter.service`)."""

from __future__ import annotations

from arrowloop.examples.counter.service import pipeline

__all__ = ["pipeline"]
