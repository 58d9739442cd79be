"""What the CLI prints of control results: client-supplied strings cannot drive the terminal."""

from __future__ import annotations

from arrowloop.cli._format import printable, show_error, show_history, show_json, show_status

EVIL = "op\x1b[2J\x1b]0;pwned\x07\nforged line\x9b31m"


def _record(**over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "seq": 1,
        "kind": "upgrade",
        "at": 0.0,
        "stages": ["counter"],
        "from_versions": ["a" * 64],
        "to_versions": ["b" * 64],
        "result": "refused",
        "requested_by": EVIL,
        "reason": EVIL,
    }
    rec.update(over)
    return rec


def _clean(lines: list[str]) -> None:
    for line in lines:
        for part in line.split("\n    reason: "):  # the one newline the CLI adds itself
            assert part.isprintable(), repr(part)


def test_printable_escapes_controls_and_keeps_the_rest() -> None:
    """Control characters come out as escapes; printable text, accents included, is kept."""
    assert printable("café ok") == "café ok"
    assert printable("a\x1bb\nc") == "a\\x1bb\\nc"
    assert printable(EVIL).isprintable()


def test_history_escapes_who_asked_and_why() -> None:
    """requested_by and reason are printed escaped, on the lines the CLI chose."""
    lines = show_history([_record()])
    _clean(lines)
    assert "\\x1b[2J" in lines[0]
    assert lines[0].count("\n") == 1  # only the CLI's own "reason" line break


def test_status_and_errors_escape_names_and_messages() -> None:
    """Status names and error messages are printed escaped."""
    status = {
        "name": EVIL,
        "strategy": "one_for_one",
        "running": True,
        "intensity": 1,
        "period": 5.0,
        "history": 0,
        "children": [
            {
                "name": EVIL,
                "kind": "stage",
                "running": True,
                "version": "c" * 64,
                "state_type": EVIL,
                "processed": 0,
                "failed": 0,
                "queue_depth": 0,
                "restarts": 0,
                "upgrades": 0,
            }
        ],
    }
    _clean(show_status(status))
    _clean(show_error({"type": EVIL, "message": EVIL, "cause": {"type": "x", "message": EVIL}}))


def test_json_output_escapes_c1_controls() -> None:
    """JSON printed by the CLI has no raw C1 control (0x9b would start a terminal sequence)."""
    text = show_json({"s": EVIL})
    assert "\x9b" not in text
    assert "\\u009b" in text
