"""Layer 12, cli: ``python -m arrowloop`` and clients of the server protocols.

``serve`` runs a supervised pipeline behind the TCP server; ``call``,
``upgrade``, ``rollback``, ``status``, ``history`` and ``state`` drive a
running server; ``demo`` runs the counter demo. :class:`DataClient` and
:class:`ControlClient` are the protocol clients the commands use, for
scripts and tests.
"""

from __future__ import annotations

from arrowloop.cli._client import ControlClient, DataClient, RemoteError, Unreachable
from arrowloop.cli._load import ChangeOptions, build_change, read_change_file
from arrowloop.cli._main import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, main

__all__ = [
    "main",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_UNREACHABLE",
    "ControlClient",
    "DataClient",
    "RemoteError",
    "Unreachable",
    "ChangeOptions",
    "build_change",
    "read_change_file",
]
