"""``python -m arrowloop serve``: run a supervised pipeline behind the TCP
server until SIGINT or SIGTERM, printing where it listens."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Final

import anyio
import attrs
import orjson

from arrowloop.arrows import ChangeBudget
from arrowloop.cli._coldstart import ColdStart, cold_start, install
from arrowloop.cli._commands import EXIT_OK, UsageError, say
from arrowloop.cli._format import short
from arrowloop.server import (
    DEFAULT_CONTROL_PORT,
    LOOPBACK,
    ControlLimits,
    ServerConfig,
    as_supervisor_spec,
    load_object,
    open_server,
    serve_http,
    server_token,
    with_state_budget,
)
from arrowloop.store import SqliteStore, StateStore
from arrowloop.wire import Limits

__all__ = ["serve"]

#: The collector's first-generation threshold while serving (Python's default: 700).
_YOUNG_THRESHOLD: Final = 50_000


class _Fields(logging.Formatter):
    """One line per record: time, level, logger, message, then the structured
    fields the library attaches (``stage=counter reason=...``)."""

    _FIELDS = ("supervisor", "stage", "version", "reason", "requested_by")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{k}={getattr(record, k)}" for k in self._FIELDS if hasattr(record, k)]
        return f"{line}  [{' '.join(extra)}]" if extra else line


class _Console(logging.StreamHandler):  # type: ignore[type-arg]
    """The server's console handler (one per process)."""


def configure_logging(level: str) -> None:
    """A plain console handler on the ``arrowloop`` loggers (stderr)."""
    logger = logging.getLogger("arrowloop")
    if not any(isinstance(h, _Console) for h in logger.handlers):
        handler = _Console(sys.stderr)
        handler.setFormatter(_Fields("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def _write_ready(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    Path(tmp).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)  # readers never see a half-written file


def _open_store(state_dir: str, name: str, fsync: str) -> SqliteStore:
    """The supervisor's store file in ``state_dir`` (made if missing)."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    return SqliteStore(
        Path(state_dir) / f"{name}.db", synchronous="normal" if fsync == "normal" else "full"
    )


def _exempt(given: list[str] | None) -> frozenset[str]:
    if given is None:
        return LOOPBACK
    return frozenset(a for a in given if a != "none")


async def serve(args: argparse.Namespace) -> int:
    """Serve ``args.target`` until SIGINT or SIGTERM, then stop gracefully."""
    configure_logging(getattr(args, "log_level", "info"))
    obj, name = load_object(args.target)
    spec = as_supervisor_spec(obj, name)
    if args.max_state_size > 0:
        spec = with_state_budget(spec, args.max_state_size)
    budget = ChangeBudget(
        max_nodes=args.change_max_nodes,
        max_type_size=args.change_max_type_size,
        max_source_bytes=args.change_max_source_bytes,
        max_seconds=args.change_max_seconds,
    )
    # Decoding a change (control port) and checking it (supervisor) each get it.
    spec = attrs.evolve(spec, change_budget=budget)
    token = server_token(Path(args.token_file) if args.token_file else None)
    savepoints = args.savepoint_dir or (
        str(Path(args.state_dir) / "savepoints") if args.state_dir else None
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        control_host=args.control_host,
        control_port=DEFAULT_CONTROL_PORT if args.control_port is None else args.control_port,
        max_line=args.max_line_bytes,
        window=args.window,
        max_connections=args.max_connections,
        control_connections=args.control_connections,
        idle_timeout=args.idle_timeout if args.idle_timeout > 0 else None,
        auth_timeout=args.auth_timeout if args.auth_timeout > 0 else None,
        send_timeout=args.send_timeout if args.send_timeout > 0 else None,
        drain_timeout=args.drain_timeout,
        max_buffered=args.max_buffered_bytes,
        max_per_address=args.max_per_address,
        per_address_exempt=_exempt(args.per_address_exempt),
        control=ControlLimits(
            max_request=args.max_request_bytes,
            program=Limits(max_bytes=args.max_request_bytes, max_nodes=args.max_program_nodes),
            savepoint_dir=savepoints,
        ),
    )
    if args.http_port is not None:
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise UsageError(
                "--http-port needs the web extra (Starlette and uvicorn): "
                "pip install 'arrowloop[web]'"
            ) from None
    cold: ColdStart | None = None
    if args.from_savepoint:
        # Everything is checked (and the cold upgrades applied) before any
        # port opens or anything is written.
        cold = await cold_start(spec, args.from_savepoint, args.upgrade or [])
        if args.state_dir:
            stored = cold.store.load()
            assert stored is not None  # seeded from the savepoint
            db = Path(args.state_dir) / f"{spec.name}.db"
            install(stored, db, fsync=args.fsync, replace=args.replace_state)
    elif args.upgrade or args.replace_state:
        raise UsageError("--upgrade and --replace-state go with --from-savepoint FILE")
    store: StateStore | None = None
    if args.state_dir:
        store = _open_store(args.state_dir, spec.name, args.fsync)
    elif cold is not None:
        store = cold.store  # the savepoint's state, kept in memory only
    fresh = store is None or store.load() is None
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            open_server(spec, token, config, store=store, request_keys=args.request_keys) as srv,
            anyio.create_task_group() as web,
        ):
            http = None
            if args.http_port is not None:
                http = await web.start(serve_http, srv, args.http_host, args.http_port)
            sup = srv.supervisor
            dh, dp = srv.data_address
            ch, cp = srv.control_address
            stages = sup.pipeline.stage_names
            say(f"arrowloop: serving {args.target} (supervisor {spec.name})")
            say(f"  data     {dh}:{dp}  (JSON lines, docs/protocol.md)")
            say(f"  control  {ch}:{cp}  (token from {token.source})")
            if token.generated:
                say(
                    f"  generated a control token and saved it to {token.source} (readable by "
                    "you only; the CLI reads it from there)"
                )
            if ch not in ("127.0.0.1", "::1", "localhost"):
                say(f"  warning: the control port listens on {ch}, not only on loopback")
            if http is not None:
                say(f"  http     http://{http[0]}:{http[1]}/  (dashboard; /metrics for Prometheus)")
            if store is not None:
                how = "starting fresh" if fresh else "resumed"
                if cold is not None:
                    how = f"from the savepoint {cold.savepoint}"
                    if cold.upgrades:
                        how += f" with {len(cold.upgrades)} cold upgrade(s)"
                say(f"  state    {store.location}  ({how}; fsync {args.fsync})")
            if savepoints is not None:
                say(f"  savepoints go to {savepoints}")
            lim = srv.limits
            say(f"  connections: up to {lim['data']} data, {lim['control']} control")
            for s in stages:
                say(f"  stage {s}: version {short(sup.pipeline.version(s))}")
            # What start-up made (modules, compiled machines, the pipeline)
            # lives as long as the process: frozen out of the collector, a
            # full collection scans only what serving makes, instead of
            # pausing every data connection for tens of milliseconds.
            gc.collect()
            gc.freeze()
            # A pipelining connection keeps a few objects per request alive
            # for the milliseconds its reply takes; collected every 700
            # allocations, each survives several young collections and is
            # promoted. With a larger first threshold most die by reference
            # counting before a collection looks at them (measured: the
            # collector's share of a request fell from 6% to under 1%).
            gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            if args.ready_file:
                _write_ready(
                    args.ready_file,
                    {
                        "pid": os.getpid(),
                        "data": {"host": dh, "port": dp},
                        "control": {"host": ch, "port": cp},
                        "token_file": token.source if not token.source.startswith("$") else None,
                        "stages": stages,
                        "http": None if http is None else {"host": http[0], "port": http[1]},
                    },
                )
            async for signum in signals:
                say(
                    f"arrowloop: {signal.Signals(signum).name}: stopping (answering the "
                    "requests already admitted, then draining the pipeline)"
                )
                break
            web.cancel_scope.cancel()
    say("arrowloop: stopped")
    return EXIT_OK
