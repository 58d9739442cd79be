"""Layer 12, server: a supervised pipeline served over TCP.

A data port speaking JSON lines (items in, outputs out) and a separate,
token-authenticated control port for code changes, rollback, status,
history and state. docs/protocol.md describes both protocols.
"""

from __future__ import annotations

from arrowloop.server._auth import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    Token,
    check_token,
    default_token_file,
    load_token,
    server_token,
)
from arrowloop.server._control import OPERATIONS, ControlLimits
from arrowloop.server._data import DEFAULT_WINDOW
from arrowloop.server._guards import LOOPBACK, AddressCounts, AuthThrottle
from arrowloop.server._http import WebUnavailable, dashboard_app, serve_http, status_snapshot
from arrowloop.server._metrics import ServerCollector, metrics_registry
from arrowloop.server._serve import (
    DEFAULT_CONTROL_PORT,
    DEFAULT_PORT,
    Server,
    ServerConfig,
    connection_limits,
    open_server,
    per_address_limit,
)
from arrowloop.server._target import (
    TargetError,
    add_import_paths,
    as_supervisor_spec,
    load_module,
    load_object,
    with_state_budget,
)

__all__ = [
    "Server",
    "ServerConfig",
    "ControlLimits",
    "open_server",
    "connection_limits",
    "per_address_limit",
    "serve_http",
    "dashboard_app",
    "status_snapshot",
    "WebUnavailable",
    "ServerCollector",
    "metrics_registry",
    "AddressCounts",
    "AuthThrottle",
    "LOOPBACK",
    "DEFAULT_PORT",
    "DEFAULT_CONTROL_PORT",
    "DEFAULT_WINDOW",
    "OPERATIONS",
    "Token",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "default_token_file",
    "load_token",
    "server_token",
    "check_token",
    "TargetError",
    "add_import_paths",
    "load_module",
    "load_object",
    "as_supervisor_spec",
    "with_state_budget",
]
