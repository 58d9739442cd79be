"""Reading a decorated function: its syntax tree, source locations and names.

Part of the Python front end (above :mod:`arrowloop.machine`). The function's
source is read with :mod:`inspect` and parsed with :mod:`ast`; it is never
executed by the front end. Errors point at ``file:line:column`` of the node
they are about. Names the body does not bind are resolved once, here, at
decoration time: closure cells, then module globals, then builtins.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import types
import typing
from typing import Any, Final

from arrowloop.errors import FrontendError, TypeDefinitionError
from arrowloop.typesys import Type, from_annotation

__all__ = ["Source", "MISSING"]

#: Marks a name that resolves to nothing.
MISSING: Final = object()


def _char_col(line: str, byte_col: int) -> int:
    # ast columns are UTF-8 byte offsets; people count characters.
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


class Source:
    """The parsed source of one function, with helpers to report errors in it.

    Raises:
        FrontendError: the source cannot be read, or is not a plain ``def``.
    """

    def __init__(self, fn: Any, decorator: str) -> None:
        self.fn = fn
        self.decorator = decorator
        self.name: str = getattr(fn, "__qualname__", repr(fn))
        if not inspect.isfunction(fn):
            raise FrontendError(
                f"expected a function defined with def under @{decorator}, "
                f"found {type(fn).__name__}",
                expected="def function",
                found=type(fn).__name__,
            )
        code = fn.__code__
        self.filename: str = inspect.getsourcefile(fn) or code.co_filename
        try:
            lines, start = inspect.getsourcelines(fn)
        except (OSError, TypeError) as exc:
            raise FrontendError(
                f"cannot read the source of {self.name} ({exc}); the front end compiles "
                "source code, so define the function in a file",
                path=self.filename,
                expected="a function defined in a source file",
                found="no source",
            ) from None
        self.lines = lines
        indented = lines[0][:1] in (" ", "\t")
        text = "".join(lines)
        # An indented def (in a class or a function) is parsed inside an
        # ``if 1:`` block, which keeps every column as it is in the file.
        self.shift = 1 if indented else 0
        self.line_offset = start - 1 - self.shift
        try:
            tree = ast.parse(("if 1:\n" + text) if indented else text)
        except SyntaxError:  # the source of a lambda inside a larger expression
            tree = ast.parse("pass")
        node: ast.stmt = tree.body[0]
        if indented and isinstance(node, ast.If):
            node = node.body[0]
        if isinstance(node, ast.AsyncFunctionDef):
            raise self.error(node, "async functions are not supported; write a plain def")
        if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
            raise FrontendError(
                f"expected {self.name} to be a def statement, found other source "
                "(lambdas are not supported)",
                path=self._where(start, 0),
                expected="def",
                found="other source",
            )
        self.tree: ast.FunctionDef = node
        cells = fn.__closure__ or ()
        self.closure: dict[str, Any] = {}
        for name, cell in zip(code.co_freevars, cells, strict=True):
            try:
                self.closure[name] = cell.cell_contents
            except ValueError:
                self.closure[name] = MISSING

    # -- locations ------------------------------------------------------------

    def _where(self, lineno: int, col: int) -> str:
        fname = self.filename
        try:
            rel = os.path.relpath(fname)
            if not rel.startswith(".."):
                fname = rel
        except ValueError:
            pass
        return f"{fname}:{lineno}:{col + 1}"

    def error(
        self,
        node: ast.AST,
        message: str,
        *,
        expected: str | None = None,
        found: str | None = None,
    ) -> FrontendError:
        """A :class:`FrontendError` about ``node``, located in the file."""
        rel_line: int = getattr(node, "lineno", 1)
        text_line = self._line(rel_line)
        col = _char_col(text_line, getattr(node, "col_offset", 0))
        lineno = rel_line + self.line_offset
        end_rel: int = getattr(node, "end_lineno", None) or rel_line
        end_col = getattr(node, "end_col_offset", None)
        end_offset = _char_col(self._line(end_rel), end_col) + 1 if end_col is not None else None
        stop = end_offset - 1 if end_offset is not None and end_rel == rel_line else None
        construct = text_line[col:stop].strip()
        if len(construct) > 60:
            construct = construct[:57] + "..."
        return FrontendError(
            f"in {self.name}: {message}",
            path=self._where(lineno, col),
            expected=expected,
            found=found,
            filename=self.filename,
            lineno=lineno,
            offset=col + 1,
            text=text_line,
            end_lineno=end_rel + self.line_offset,
            end_offset=end_offset,
            construct=construct,
            reason=message,
        )

    def file_line(self, node: ast.AST) -> int:
        """The line of the file that ``node`` starts on."""
        rel: int = getattr(node, "lineno", 1)
        return rel + self.line_offset

    def _line(self, rel_line: int) -> str:
        """The file's text of line ``rel_line`` of the parsed snippet."""
        index = rel_line - 1 - self.shift
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    # -- names --------------------------------------------------------------

    def lookup(self, name: str) -> tuple[str, Any]:
        """Where a free name comes from (``closure``, ``global``, ``builtin``) and its value.

        Returns ``("missing", MISSING)`` for an unknown name.
        """
        if name in self.closure:
            return "closure", self.closure[name]
        g = self.fn.__globals__
        if name in g:
            return "global", g[name]
        b = g.get("__builtins__", builtins)
        table = b if isinstance(b, dict) else vars(b)
        if name in table:
            return "builtin", table[name]
        return "missing", MISSING

    def static(self, node: ast.expr, local: typing.Container[str]) -> Any:
        """The object a name or dotted name denotes, when it is not a local value.

        Only modules and classes are looked into (``mod.Count``,
        ``Color.RED``). Returns :data:`MISSING` when ``node`` is not such a
        name (for example a local variable, or a field of a local record).
        """
        if isinstance(node, ast.Name):
            if node.id in local:
                return MISSING
            where, value = self.lookup(node.id)
            return value if where != "missing" else MISSING
        if isinstance(node, ast.Attribute):
            base = self.static(node.value, local)
            if isinstance(base, types.ModuleType | type):
                return getattr(base, node.attr, MISSING)
        return MISSING

    # -- annotations --------------------------------------------------------

    def annotation(self, node: ast.expr | None, what: str) -> Type:
        """The arrowloop type written by the annotation expression ``node``.

        The annotation is read from the syntax tree (names, dotted names,
        subscripts, ``|``, string annotations), never evaluated as code.
        """
        if node is None:
            raise self.error(
                self.tree,
                f"expected an annotation for {what}, found none; annotate every parameter "
                "and the return type",
                expected="annotation",
                found="none",
            )
        obj = self._annotation_object(node)
        try:
            return from_annotation(obj, what)
        except TypeDefinitionError as exc:
            raise self.error(node, str(exc), expected=exc.expected, found=exc.found) from None

    def _annotation_object(self, node: ast.expr) -> Any:
        match node:
            case ast.Constant(value=None):
                return None
            case ast.Constant(value=str(text)):
                try:
                    inner = ast.parse(text, mode="eval").body
                except SyntaxError:
                    raise self.error(node, f"cannot parse the annotation {text!r:.60}") from None
                return self._annotation_object(inner)
            case ast.Name() | ast.Attribute():
                obj = self.static(node, ())
                if obj is MISSING:
                    raise self.error(
                        node,
                        f"the annotation {ast.unparse(node)} names nothing defined when the "
                        "function is decorated; define the type at module level, above the "
                        "function",
                        expected="a defined type",
                        found=ast.unparse(node),
                    )
                return obj
            case ast.Subscript(value=base, slice=index):
                origin = self._annotation_object(base)
                args = index.elts if isinstance(index, ast.Tuple) else [index]
                params = tuple(self._annotation_object(a) for a in args)
                try:
                    return origin[params if len(params) != 1 else params[0]]
                except TypeError as exc:
                    raise self.error(node, f"bad annotation: {exc}") from None
            case ast.Tuple(elts=[]):
                return ()
            case ast.BinOp(left=left, op=ast.BitOr(), right=right):
                a, b = self._annotation_object(left), self._annotation_object(right)
                try:
                    return a | b
                except TypeError as exc:
                    raise self.error(node, f"bad annotation: {exc}") from None
        raise self.error(
            node,
            f"the annotation {ast.unparse(node)} is not supported; write a type such as int, "
            "tuple[int, bool], list[str], a record class or a union of them",
            expected="a type annotation",
            found=ast.unparse(node),
        )
