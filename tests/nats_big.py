"""A one-stage pipeline whose state grows with every item (the text of all
items so far), for the key-value store's size limit (tests/test_nats_kv.py)."""

from __future__ import annotations

from arrowloop import pipeline, stage, statemachine


@statemachine(init="")
def keep(text: str, kept: str) -> tuple[str, int]:
    """Keeps every item's text; outputs the length kept."""
    kept = kept + text
    return kept, len(kept)


BIG = pipeline(stage("keep", keep))
