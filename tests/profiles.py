"""Hypothesis profiles: ``ci``, the default that ``make test`` and CI run (examples
drawn in a fixed order, so a run is reproducible, and no deadline, since the
machine is shared), and ``long`` (``make test-long``, or ``HYPOTHESIS_PROFILE=long``:
ten times the examples, drawn at random, for hunting rare cases).

A test that asks for ``n`` examples writes ``max_examples=examples(n)``: ``n`` under
``ci``, scaled with the profile's ``max_examples`` under the others.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: ``max_examples`` of the ``ci`` profile, the scale ``examples`` is relative to.
BASE = 100

settings.register_profile("ci", max_examples=BASE, deadline=None, derandomize=True)
settings.register_profile(
    "long",
    max_examples=10 * BASE,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(n: int) -> int:
    """How many examples a test that asks for ``n`` under ``ci`` gets now."""
    current = settings.default
    assert current is not None  # a profile is loaded above
    return max(1, n * current.max_examples // BASE)
