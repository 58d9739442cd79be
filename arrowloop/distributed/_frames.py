"""What one broker message carries: a frame of many items, or end of stream.

A frame is canonical-free JSON (orjson) so it stays cheap: ``{"i": [...]}``
holds items in the JSON form of the channel's item type (typesys'
``json_writer``/``json_reader``, made once per type), ``{"e": true}`` is end
of stream, ``{"u": change, "r": subject, "k": id}`` a code change travelling
in-band (``_changes.py``; ``"t"``, when a segment before changed the type of
the channel, its new item type, wire-encoded). Many items per broker
message is what closes most of the gap to in-process channels: the
broker's cost is per message, not per item.

Message IDs (JetStream's ``Nats-Msg-Id`` header, deduplicated by the stream
within its duplicate window) are derived from who produced the frame and
from where: a segment's output is named after its input position, so a
stage that replays an input after a crash republishes under the same IDs and
the broker drops the copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from arrowloop.typesys import Type, json_reader, json_writer

__all__ = ["Frame", "FrameCodec", "END", "MSG_ID", "change_frame", "message_id"]

#: The header JetStream deduplicates on.
MSG_ID: Final = "Nats-Msg-Id"
END: Final = b'{"e":true}'


class Frame:
    """A decoded broker message: its items, end of stream (``items is None``),
    or a code change (``change``: its wire document; ``reply``: the subject
    its result goes to, if any; ``change_id``: the change's own name, the
    same in every segment; ``boundary``: the channel's item type after the
    change, wire-encoded, when a segment before changed it)."""

    __slots__ = ("boundary", "change", "change_id", "items", "reply", "versions")

    def __init__(
        self,
        items: list[Any] | None,
        change: dict[str, Any] | None = None,
        reply: str | None = None,
        change_id: str | None = None,
        boundary: Any = None,
        versions: dict[str, str] | None = None,
    ) -> None:
        self.items = items
        self.change = change
        self.reply = reply
        self.change_id = change_id
        self.boundary = boundary
        #: The new versions of the stages segments before prepared.
        self.versions = {} if versions is None else versions

    @property
    def end(self) -> bool:
        """Whether this frame is end of stream."""
        return self.items is None


def change_frame(
    change: dict[str, Any],
    reply: str | None,
    change_id: str | None = None,
    boundary: Any = None,
    versions: dict[str, str] | None = None,
) -> bytes:
    """A frame carrying a code change's wire document in-band, the subject
    its result is published on, its name, the channel's new item type
    (wire-encoded) if the change alters it, and the new versions of the
    stages prepared before."""
    data: dict[str, Any] = {"u": change, "r": reply}
    if change_id is not None:
        data["k"] = change_id
    if boundary is not None:
        data["t"] = boundary
    if versions:
        data["v"] = versions
    return orjson.dumps(data)


class FrameCodec:
    """Encodes and decodes frames for one item type (``None``: plain JSON values)."""

    __slots__ = ("_read", "_write")

    def __init__(self, item_type: Type | None) -> None:
        self._write: Callable[[Any, str], Any] | None = None
        self._read: Callable[[Any, str], Any] | None = None
        if item_type is not None:
            self._write = json_writer(item_type)
            self._read = json_reader(item_type)

    def encode(self, items: list[Any]) -> bytes:
        """A frame of ``items``.

        Raises:
            ValidationError: an item is not of the channel's type.
        """
        write = self._write
        data = items if write is None else [write(x, "item") for x in items]
        return orjson.dumps({"i": data})

    def decode(self, payload: bytes) -> Frame:
        """The frame ``payload`` holds.

        Raises:
            ValueError: it is not a frame (orjson's error is a ValueError).
            ValidationError: an item is not of the channel's type.
        """
        data = orjson.loads(payload)
        if type(data) is not dict:
            raise ValueError(f"not a frame: {payload[:80]!r}")
        if data.get("e") is True:
            return Frame(None)
        change = data.get("u")
        if change is not None:
            reply, change_id, versions = data.get("r"), data.get("k"), data.get("v", {})
            if (
                type(change) is not dict
                or any(v is not None and type(v) is not str for v in (reply, change_id))
                or type(versions) is not dict
                or not all(type(v) is str for v in versions.values())
            ):
                raise ValueError(f"not a change frame: {payload[:80]!r}")
            return Frame([], change, reply, change_id, data.get("t"), versions)
        items = data.get("i")
        if type(items) is not list:
            raise ValueError(f"not a frame: {payload[:80]!r}")
        read = self._read
        return Frame(items if read is None else [read(x, "item") for x in items])


def message_id(producer: str, position: int | str, part: int | str) -> str:
    """The ``Nats-Msg-Id`` of part ``part`` of what ``producer`` emitted for
    its input ``position``: the same on every replay of that input."""
    return f"{producer}:{position}:{part}"
