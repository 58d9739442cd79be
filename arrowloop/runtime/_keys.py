"""Request keys: the window of recent keys one stage has applied.

A client may give an item a request key (``submit(item, key=...)``). A
stage remembers, for its most recent keys, the output it produced for
each, and an item whose key it has applied already is not stepped again:
the stage emits the remembered output instead, so the next stage either
applies it (if it never did: a crash came between the two stages' commits)
or emits its own remembered output. Items flow in order, so a duplicate
still in flight behind its first copy is handled by the same rule.

With a store, the keys applied (and those evicted) since the last write
travel with the stage's state in the same transaction; a restart reloads
the window. Outputs reloaded from a store stay in their wire form
(:class:`Recorded`) until a resent key needs one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from arrowloop.errors import ReplyUnavailable, ValidationError
from arrowloop.typesys import Type, validate

__all__ = ["KeyWindow", "Recorded", "check_key", "DEFAULT_REQUEST_KEYS", "MAX_KEY"]

#: Default number of request keys each stage remembers.
DEFAULT_REQUEST_KEYS: Final = 100_000
#: Longest request key, in characters.
MAX_KEY: Final = 256


class Recorded:
    """An output reloaded from a store, decoded when first needed, with the
    output type the stage runs then (``decode(output_type)``)."""

    __slots__ = ("decode",)

    def __init__(self, decode: Callable[[Type], Any]) -> None:
        self.decode = decode


#: One remembered key: the version that applied it and its output.
Entry = tuple[str, Any]
#: A change to write: the key's entry with its output type, or ``None`` (dropped).
Change = tuple[str, Type, Any] | None


class KeyWindow:
    """The request keys a stage applied most recently, at most ``limit``.

    ``tracking`` (a stage with a store) also keeps the changes since the
    last write (:meth:`take`), so they are committed with the state.
    """

    __slots__ = ("entries", "limit", "pending", "tracking")

    def __init__(self, limit: int, *, tracking: bool = False) -> None:
        self.limit = check_window(limit)
        self.tracking = tracking
        self.entries: dict[str, Entry] = {}
        self.pending: dict[str, Change] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, entries: list[tuple[str, str, Recorded]]) -> None:
        """Start from ``(key, version, output)`` entries reloaded from a store,
        oldest first (beyond the limit, the oldest are dropped, as if evicted)."""
        for key, version, out in entries:
            self.entries[key] = (version, out)
        self._evict()

    def remember(self, key: str, version: str, out_type: Type, out: Any) -> None:
        """``key`` was applied by ``version``, producing ``out``."""
        self.entries[key] = (version, out)
        if self.tracking:
            pending = self.pending
            pending.pop(key, None)  # re-applied after an eviction: it goes last
            pending[key] = (version, out_type, out)
        if len(self.entries) > self.limit:
            self._evict()

    def _evict(self) -> None:
        entries = self.entries
        while len(entries) > self.limit:
            old = next(iter(entries))
            del entries[old]
            if self.tracking:
                self.pending[old] = None

    def take(self) -> dict[str, Change] | None:
        """The changes since the last write (``None`` if there are none); the
        caller writes them, and hands them back to :meth:`undo` if it cannot."""
        if not self.pending:
            return None
        pending, self.pending = self.pending, {}
        return pending

    def undo(self, changes: dict[str, Change]) -> None:
        """A write of ``changes`` failed: the keys it applied were not applied
        after all (the stage goes back to its last durable state); the keys it
        dropped stay dropped and are written next time."""
        for key, change in changes.items():
            if change is None:
                self.pending.setdefault(key, None)
            else:
                self.entries.pop(key, None)

    def replay(self, stage: str, key: str, entry: Entry, version: str, out_type: Type) -> Any:
        """The remembered output of ``key`` for a stage now running ``version``
        with ``out_type``.

        Raises:
            ReplyUnavailable: the output does not fit ``out_type`` (the stage
                was upgraded since the key was applied).
        """
        applied, out = entry
        if applied == version and type(out) is not Recorded:
            return out
        try:
            if type(out) is Recorded:
                out = out.decode(out_type)  # decoding checks it against the type
                if applied == version:
                    self.entries[key] = (applied, out)
            else:
                validate(out_type, out, "output")
        except Exception as exc:
            err = ReplyUnavailable(
                f"stage {stage!r}: the request key {key!r:.80} was applied under version "
                f"{applied[:12]}, and its reply is no longer available: the stage now runs "
                f"{version[:12]}, whose output type {out_type!r} does not fit it. The item "
                "was not applied again",
                stage=stage,
                key=key,
                version=applied,
            )
            raise err from exc
        return out


def check_window(limit: object) -> int:
    """``limit`` if it is a usable window size (``request_keys``: a positive int).

    Raises:
        ValueError: it is not.
    """
    if type(limit) is not int or limit < 1:
        raise ValueError(f"expected request_keys a positive int, found {limit!r}")
    return limit


def check_key(key: object, path: str = "key") -> str:
    """``key`` if it is a usable request key (a string of 1 to :data:`MAX_KEY`
    characters).

    Raises:
        ValidationError: it is not.
    """
    if type(key) is str and 0 < len(key) <= MAX_KEY:
        return key
    found = f"a string of {len(key)} characters" if isinstance(key, str) else type(key).__name__
    raise ValidationError(
        f"expected a request key (a string of 1 to {MAX_KEY} characters), found {found}",
        path=path,
        expected=f"a string of 1 to {MAX_KEY} characters",
        found=found,
    )
