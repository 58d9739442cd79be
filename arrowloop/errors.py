"""The one error hierarchy of arrowloop (layer 0: imported by every layer).

Every error raised on purpose derives from :class:`ArrowloopError`. Errors
that point at a place (inside a value, a type, a program or a wire document)
carry machine-readable ``path``, ``expected`` and ``found`` fields so a
server can hand them to clients as data, and render as::

    at body.compose[1].fanout[0]: expected input int, found str
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArrowloopError",
    "LocatedError",
    "TypeDefinitionError",
    "ValidationError",
    "CheckError",
    "DecodeError",
    "CompileError",
    "BudgetError",
    "PipelineError",
    "PipelineClosed",
    "ReplyUnavailable",
    "StepError",
    "UpgradeError",
    "FrontendError",
    "SupervisorError",
    "ChildSpecError",
    "EscalationError",
    "InternalError",
    "ProtocolError",
    "StoreError",
    "AuthenticationError",
    "IterationLimitError",
    "error_data",
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


class BudgetError(LocatedError):
    """A code change would cost more than its budget allows (a
    :class:`~arrowloop.arrows.ChangeBudget`): too many program nodes once
    shared parts are expanded, a type too big, too much generated code, or
    too long to decode, check and compile. Nothing was changed.

    ``limit`` names the limit (``max_nodes``, ``max_type_size``,
    ``max_source_bytes``, ``max_seconds``) and ``value`` its value;
    ``found`` says what was found and ``path`` where.
    """

    def __init__(self, *, limit: str, value: float, found: str, path: str = "") -> None:
        super().__init__(
            f"expected a change within its budget ({limit} = {value:g}), found {found}",
            path=path,
            expected=f"{limit} <= {value:g}",
            found=found,
        )
        self.limit = limit
        self.value = value


class PipelineError(ArrowloopError):
    """A pipeline was built or used wrongly (bad stage list, use after close)."""


class PipelineClosed(PipelineError):
    """An item or request was sent to a pipeline that is closing or closed."""


class ReplyUnavailable(PipelineError):
    """An item's request key was applied already, but the reply remembered for
    it no longer fits the stage's output type (an upgrade since changed it).

    The item is not applied again; ``stage`` names the stage, ``key`` the
    request key and ``version`` the machine version that applied it.
    """

    def __init__(self, message: str, *, stage: str, key: str, version: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.key = key
        self.version = version
        self.reason = "reply unavailable"


class StepError(ArrowloopError):
    """A stage's step raised (or returned a bad value) on an item.

    The caller of :meth:`~arrowloop.runtime.Pipeline.call` gets this error;
    the item and the error also go to the dead-letter sink. ``stage`` names
    the stage, ``version`` its machine version, ``item`` the failing input.
    """

    def __init__(self, message: str, *, stage: str, version: str, item: object) -> None:
        super().__init__(message)
        self.stage = stage
        self.version = version
        self.item = item


class UpgradeError(ArrowloopError):
    """An upgrade was refused or failed; the old machine and state remain.

    ``stage`` names the stage (or stages) concerned and ``reason`` says why;
    ``__cause__`` holds the underlying error (a CheckError for an ill-typed
    machine or migration, the exception a migration raised, ...).
    """

    def __init__(self, message: str, *, stage: str, reason: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.reason = reason


class FrontendError(LocatedError, SyntaxError):
    """A Python function given to the front end is outside the supported subset.

    Raised at decoration time by :func:`arrowloop.statemachine` and
    :func:`arrowloop.arrow` when the function uses a construct the front end
    does not translate (a ``while`` loop, ``global``, attribute assignment,
    an unknown call, ...), or is ill-typed in the subset (``"a" + 1``, a
    missing ``return``, a ``match`` on a variant that reads a field before
    matching). The message says what was found and what to write instead.

    ``path`` is ``file:line:column`` (both 1-based). It is also a
    :class:`SyntaxError`, with ``filename``, ``lineno``, ``offset`` and
    ``text`` set, so tracebacks show the offending source line with a caret.

    The front end reports every refusal it finds in a function (up to
    :data:`MAX_REFUSALS`) at once: ``refusals`` holds one error per refusal,
    each with its own ``path``, ``construct`` (the source it is about) and
    ``reason`` (what was found and what to write instead). When there are
    several, ``str()`` is the whole block, one refusal per line, and the
    located fields (``path``, ``lineno``, ...) are those of the first.
    """

    #: The most refusals reported for one function.
    MAX_REFUSALS = 20

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        expected: str | None = None,
        found: str | None = None,
        filename: str | None = None,
        lineno: int | None = None,
        offset: int | None = None,
        text: str | None = None,
        end_lineno: int | None = None,
        end_offset: int | None = None,
        construct: str = "",
        reason: str | None = None,
    ) -> None:
        super().__init__(message, path=path, expected=expected, found=found)
        self.msg = message
        self.filename = filename
        self.lineno = lineno
        self.offset = offset
        self.text = text
        self.end_lineno = end_lineno
        self.end_offset = end_offset
        self.construct = construct
        self.reason = message if reason is None else reason
        self.refusals: tuple[FrontendError, ...] = (self,)

    @classmethod
    def combine(cls, function: str, refusals: list[FrontendError]) -> FrontendError:
        """One error for all of ``refusals`` (in source order), about ``function``."""
        if len(refusals) == 1:
            return refusals[0]
        ordered = sorted(refusals, key=lambda e: (e.lineno or 0, e.offset or 0))
        first = ordered[0]
        more = " (the first ones)" if len(refusals) >= cls.MAX_REFUSALS else ""
        lines = [f"in {function}: {len(refusals)} refusals{more}; each says what to write instead:"]
        for e in ordered:
            about = f" `{e.construct}`:" if e.construct else ""
            lines.append(f"  {e.path}:{about} {e.reason}")
        err = cls(
            "\n".join(lines),
            path=first.path,
            expected=first.expected,
            found=first.found,
            filename=first.filename,
            lineno=first.lineno,
            offset=first.offset,
            text=first.text,
            end_lineno=first.end_lineno,
            end_offset=first.end_offset,
            construct=first.construct,
            reason=first.reason,
        )
        err.refusals = tuple(ordered)
        return err

    def __str__(self) -> str:
        if len(self.refusals) > 1:
            return self.message
        return super().__str__()


class SupervisorError(LocatedError):
    """A supervisor was specified or used wrongly.

    Raised for a request to a supervisor that has stopped, a request naming
    a child it does not have, or an adapted call it cannot serve. ``path``
    names the place (``children[2].restart``) where that applies.
    """


class ChildSpecError(SupervisorError, ValueError):
    """A child or supervisor spec is invalid (checked field by field before
    anything runs, like OTP's ``supervisor:check_childspecs``).

    ``path`` names the field (``children[1].shutdown``).
    """


class EscalationError(SupervisorError):
    """A supervisor gave up: a child needed more restarts than its restart
    intensity allows. The supervisor terminated its children and exited with
    this error, which its parent sees as an abnormal exit of that child.

    ``supervisor`` and ``child`` name who gave up and which child's exit
    tipped it over; ``restarts`` and ``period`` are the limit exceeded.
    """

    def __init__(
        self, message: str, *, supervisor: str, child: str, restarts: int, period: float
    ) -> None:
        super().__init__(message, path=f"{supervisor}.{child}")
        self.supervisor = supervisor
        self.child = child
        self.restarts = restarts
        self.period = period


class InternalError(ArrowloopError):
    """A bug inside arrowloop stopped one request (a code change, say).

    Only that request fails, with this error; what runs is unchanged and
    the service goes on. ``__cause__`` holds the original exception, which
    is also logged with its traceback.
    """


class StoreError(LocatedError):
    """A state store cannot be used: the file is not an arrowloop store, is
    corrupt or of a newer format, or the disk refused a write. ``path`` names
    the file; nothing was overwritten."""


class ProtocolError(LocatedError):
    """A request to a server is malformed: not JSON, too large, an unknown
    operation, a missing or ill-typed field. ``path`` is a JSON path into the
    request. Nothing was changed."""


class AuthenticationError(ArrowloopError):
    """A control request did not carry the server's token. Nothing was changed."""


def error_data(exc: BaseException) -> dict[str, Any]:
    """An error as plain data for a reply to a client.

    ``type`` and ``message`` always; ``path``, ``expected`` and ``found``
    for errors about a place; ``stage`` and ``reason`` where the error names
    a stage; ``limit`` for a change over its budget; ``cause`` for the
    located error behind it (the check that refused an upgrade). An error
    that is not an :class:`ArrowloopError` is a bug on the server's side and
    is reported with the type ``InternalError``.
    """
    data: dict[str, Any] = {
        "type": type(exc).__name__ if isinstance(exc, ArrowloopError) else "InternalError",
        "message": str(exc) if isinstance(exc, ArrowloopError) else f"{type(exc).__name__}: {exc}",
    }
    if isinstance(exc, LocatedError):
        data.update(path=exc.path, expected=exc.expected, found=exc.found)
    for attr in ("stage", "reason", "limit"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            data[attr] = value
    cause = exc.__cause__
    if isinstance(cause, LocatedError):  # e.g. the CheckError behind a refused upgrade
        data["cause"] = error_data(cause)
    return data


class RaisedError(ArrowloopError):
    """A step ran a ``raise`` or a failed ``assert`` of the Python subset.

    The step is a program, not Python, so it cannot raise the user's own
    class; it raises a subclass of this one *named* like it (``ValueError``,
    ``InsufficientFunds``), so ``type(exc).__name__`` and ``str(exc)`` are
    what the plain Python function's exception shows, and a stage's
    :class:`StepError` reads ``...: ValueError: bad amount``. ``name`` is the
    class name, ``message`` the message given (empty when none was).
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class IterationLimitError(ArrowloopError):
    """A ``while`` loop of a program ran its most iterations (the arrow node
    ``While``, docs/arrows.md section 2) without its condition becoming false.

    Python would go on, perhaps forever; a step must end, so the step fails
    here (in a stage: a :class:`StepError`, the item rejected and the state
    kept). ``limit`` is the number of iterations run.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"a while loop ran {limit:,} iterations and its condition still held: a step "
            f"runs at most {limit:,} iterations of one loop (write a loop that ends sooner, "
            "or bound it with a for loop over range(n))"
        )
        self.limit = limit
