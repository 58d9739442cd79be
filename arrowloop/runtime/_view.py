"""A client's view of a pipeline: the types it speaks and how to adapt them.

A :class:`ClientView` is resolved when an item is admitted, and the item
then enters the pipeline before any change that would make the view wrong
(see :meth:`~arrowloop.runtime.Pipeline.submit`), so its output always has
the view's output type: whoever decoded the item through a view encodes
the reply through the same view, with no guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from arrowloop.typesys import Type, json_reader, json_writer, validate

__all__ = ["ClientView"]


@attrs.frozen
class ClientView:
    """The interface one client version sees.

    Attributes:
        version: the version the client named (``None``: what runs now).
        input: the type of the items it sends.
        output: the type of the outputs it receives.
        adapt_in: its items to the running input type (``None``: identity).
        adapt_out: running outputs to its output type (``None``: identity).
    """

    version: str | None
    input: Type
    output: Type
    adapt_in: tuple[Callable[[Any], Any], ...] = ()
    adapt_out: tuple[Callable[[Any], Any], ...] = ()

    def admit(self, item: Any, where: str = "item") -> Any:
        """``item`` checked against :attr:`input` and adapted in.

        Raises:
            ValidationError: ``item`` is not of the input type.
        """
        validate(self.input, item, where)
        return self._in(item)

    def decode(self, data: Any, where: str = "$.item") -> Any:
        """An item built from its JSON form with :attr:`input`, adapted in.

        Raises:
            ValidationError: naming the place in ``data`` that does not fit.
        """
        return self._in(json_reader(self.input)(data, where))

    def decoder(self) -> Callable[[Any, str], Any]:
        """:meth:`decode` as one function ``(data, where) -> item``, for
        decoding many items in a row (``where`` names the item in an error,
        as :meth:`decode`'s)."""
        read = json_reader(self.input)
        if not self.adapt_in:
            return read  # no wrapper: a call less per item
        return lambda data, where: self._in(read(data, where))

    def _in(self, item: Any) -> Any:
        for f in self.adapt_in:
            item = f(item)
        return item

    def emit(self, output: Any) -> Any:
        """A running output adapted out to :attr:`output`."""
        for f in self.adapt_out:
            output = f(output)
        return output

    def encode(self, output: Any) -> Any:
        """The JSON form of an (already adapted) output, checked against :attr:`output`.

        Raises:
            ValidationError: the output is not of the output type (a native
                machine returned something its type does not allow).
        """
        return json_writer(self.output)(output, "output")

    def encoder(self) -> Callable[[Any, str], Any]:
        """:meth:`encode` as one function ``(output, path) -> JSON``, for
        encoding many outputs in a row (the path names the output in an
        error; :meth:`encode` passes ``"output"``)."""
        return json_writer(self.output)
