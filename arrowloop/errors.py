"""The one error hierarchy of arrowloop (layer 0: imported by every layer).

Every error raised on purpose derives from :class:`ArrowloopError`. Errors
that point at a place (inside a value, a type, a program or a wire document)
carry machine-readable ``path``, ``expected`` and ``found`` fields so a
server can hand them to clients as data, and render as::

    at body.compose[1].fanout[0]: expected input int, found str
"""

from __future__ import annotations

__all__ = [
    "ArrowloopError",
    "LocatedError",
    "TypeDefinitionError",
    "ValidationError",
    "CheckError",
    "DecodeError",
    "CompileError",
]


class ArrowloopError(Exception):
    """Base class of every error arrowloop raises deliberately."""


class LocatedError(ArrowloopError):
    """An error about one place: ``path`` says where, ``message`` says what.

    Parameters:
        message: what went wrong, usually ``expected X, found Y``.
        path: where, as a dotted path (``body.case[IncrCount].fanout[0]``,
            ``value[2].n``, ``$.body.steps[3]``); empty when not applicable.
        expected: a short rendering of what was expected, or ``None``.
        found: a short rendering of what was found, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.expected = expected
        self.found = found

    def __str__(self) -> str:
        return f"at {self.path}: {self.message}" if self.path else self.message

    def to_data(self) -> dict[str, str | None]:
        """The error as plain data (for replies sent to clients)."""
        return {
            "error": type(self).__name__,
            "message": str(self),
            "path": self.path,
            "expected": self.expected,
            "found": self.found,
        }


class TypeDefinitionError(LocatedError, TypeError):
    """A Python annotation or type description cannot become an arrowloop type.

    Raised by :func:`arrowloop.typesys.from_annotation` and by the type
    constructors (bad names, duplicate fields, nested options, ...).
    """


class ValidationError(LocatedError, ValueError):
    """A Python or JSON value does not match the type it is declared to have.

    ``path`` names the place inside the value (``value[1].n``).
    """


class CheckError(LocatedError, TypeError):
    """A program is ill-typed, or does not have the declared types.

    ``path`` names the node in the program (``body.compose[1].fanout[0]``).
    """


class DecodeError(LocatedError, ValueError):
    """A wire document is malformed, too large, too deep, or of a wrong version.

    ``path`` is a JSON path into the document (``$.body.steps[3].kind``).
    """


class CompileError(ArrowloopError):
    """Code generation failed for a program that passed the checker (a bug)."""
