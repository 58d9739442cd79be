"""``python -m arrowloop``: serve a pipeline, and drive a running server.

Exit codes: 0 success; 1 the server refused the request (or replied with
an error); 2 bad usage or local input (a module, file or token that cannot
be used); 3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

from arrowloop.arrows import DEFAULT_BUDGET
from arrowloop.cli._client import RemoteError, Unreachable
from arrowloop.cli._commands import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    UsageError,
    call,
    complain,
    history,
    rollback,
    savepoint,
    say,
    state,
    status,
    upgrade,
)
from arrowloop.cli._distributed import history_over_nats, rollback_over_nats, watch_over_nats
from arrowloop.cli._format import show_error, show_json
from arrowloop.cli._load import FUNCTION_PARTS
from arrowloop.cli._segment import serve_segment, status_over_nats, upgrade_over_nats
from arrowloop.cli._serving import serve
from arrowloop.endpoints import DEFAULT_MAX_BUFFERED
from arrowloop.errors import AuthenticationError, StoreError
from arrowloop.runtime import DEFAULT_REQUEST_KEYS, run
from arrowloop.server import (
    DEFAULT_CONTROL_PORT,
    DEFAULT_PORT,
    DEFAULT_WINDOW,
    TargetError,
    add_import_paths,
)

__all__ = ["main", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_UNREACHABLE"]


# -- the parser ----------------------------------------------------------------------


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, found {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _common(p: argparse.ArgumentParser, *, control: bool) -> None:
    p.add_argument("--host", default="127.0.0.1", help="the server's address (127.0.0.1)")
    if control:
        p.add_argument(
            "--control-port",
            type=int,
            default=DEFAULT_CONTROL_PORT,
            help="control port (%(default)s)",
        )
        p.add_argument("--token-file", help="file holding the control token")
    else:
        p.add_argument("--port", type=int, default=DEFAULT_PORT, help="data port (%(default)s)")
    p.add_argument("--ready-file", help="take the ports (and token file) from this ready file")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (%(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _import_path(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="also import the user's modules from DIR (repeatable; the working directory "
        "always counts, and a file inside a package is found from its own location)",
    )


def _nats(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "distributed (docs/distributed.md; needs the nats extra)",
        "with --nats, this process runs some stages between channels on NATS JetStream "
        "instead of serving over TCP; their state survives crashes in --state-dir, or "
        "without it in the broker's key-value store",
    )
    g.add_argument("--nats", metavar="URL", help="the broker, e.g. nats://127.0.0.1:4222")
    g.add_argument(
        "--segment",
        metavar="A,B",
        help="the stages to run here (default: all); with --placement, the segment's name",
    )
    g.add_argument(
        "--placement",
        metavar="FILE",
        help="a placement file (TOML or JSON): the pipeline's name, the broker and each "
        "segment's stages",
    )
    g.add_argument(
        "--shards",
        metavar="0,1",
        help="with --segment naming a sharded stage: the shards to run here, each as a "
        "task with its own channel and store (default: all)",
    )
    g.add_argument(
        "--nats-frame-items", type=_positive(int), default=256, help="items per broker message"
    )
    g.add_argument(
        "--nats-window",
        type=_positive(int),
        default=64,
        help="broker messages in flight per channel (max_ack_pending) (%(default)s)",
    )
    g.add_argument(
        "--nats-max-msgs",
        type=_positive(int),
        default=1024,
        help="broker messages a channel holds before producers wait (%(default)s)",
    )
    g.add_argument(
        "--nats-ack-wait",
        type=_positive(float),
        default=30.0,
        help="seconds before an unacked message is redelivered (%(default)s)",
    )
    g.add_argument(
        "--nats-state",
        choices=("kv", "memory"),
        default="kv",
        help="without --state-dir, where the segment's state is committed: the broker's "
        "key-value store, or this process's memory (a crash loses it) (%(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arrowloop",
        description="Serve supervised pipelines and upgrade them live.",
        epilog="exit codes: 0 ok, 1 refused by the server, 2 usage or local input, "
        "3 server unreachable",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve a pipeline over TCP")
    p.add_argument("target", metavar="MODULE:NAME", help="a supervisor spec, pipeline or machine")
    p.add_argument("--host", default="127.0.0.1", help="data port address (%(default)s)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="data port, 0 for any (%(default)s)"
    )
    p.add_argument("--control-host", default="127.0.0.1", help="control address (%(default)s)")
    p.add_argument(
        "--control-port",
        type=int,
        default=None,
        help=f"control port, 0 for any ({DEFAULT_CONTROL_PORT}); with --nats, a segment "
        "has one only when given",
    )
    p.add_argument("--token-file", help="control token file (made on first start if missing)")
    p.add_argument("--ready-file", help="write the bound ports here (JSON) once listening")
    p.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="serve the dashboard (/) and Prometheus metrics (/metrics) on this port, "
        "0 for any (default: off; needs the web extra)",
    )
    p.add_argument("--http-host", default="127.0.0.1", help="dashboard address (%(default)s)")
    p.add_argument(
        "--state-dir",
        help="keep the stages' machines and states and the change history here (one SQLite "
        "file per supervisor) and resume from it on start; replies are durable first",
    )
    p.add_argument(
        "--fsync",
        choices=("full", "normal"),
        default="full",
        help="with --state-dir: full survives power loss, normal only a crash of the "
        "process, for a higher commit rate (%(default)s)",
    )
    p.add_argument(
        "--savepoint-dir",
        help="where the savepoint command writes (default: the state directory's savepoints/)",
    )
    p.add_argument(
        "--from-savepoint",
        metavar="FILE",
        help="start from this savepoint (seeding --state-dir, which must be fresh or absent)",
    )
    p.add_argument(
        "--upgrade",
        action="append",
        metavar="SOURCE",
        help="with --from-savepoint: a cold upgrade (upgrade file, MODULE:NAME, .json; "
        "STAGE=SOURCE for one of several stages), checked and applied before the ports open; "
        "repeat for several, applied in order",
    )
    p.add_argument(
        "--replace-state",
        action="store_true",
        help="with --from-savepoint: replace what --state-dir holds (refused otherwise)",
    )
    p.add_argument(
        "--request-keys",
        type=_positive(int),
        default=DEFAULT_REQUEST_KEYS,
        metavar="N",
        help="how many request keys each stage remembers, the most recent (a resent key "
        "is answered with its first reply; kept in --state-dir) (%(default)s)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="what the arrowloop loggers print to stderr (%(default)s; debug adds every "
        "failed item)",
    )
    p.add_argument("--max-line-bytes", type=int, default=1 << 20, help="(%(default)s)")
    p.add_argument("--max-request-bytes", type=int, default=4 << 20, help="(%(default)s)")
    p.add_argument("--max-program-nodes", type=int, default=200_000, help="(%(default)s)")
    # The change budget (docs/protocol.md, Limits): what one code change may cost.
    p.add_argument(
        "--change-max-nodes",
        type=_positive(int),
        default=DEFAULT_BUDGET.max_nodes,
        help="program nodes checked per change, shared parts expanded (%(default)s)",
    )
    p.add_argument(
        "--change-max-type-size",
        type=_positive(int),
        default=DEFAULT_BUDGET.max_type_size,
        help="nodes of the largest type a change's programs infer (%(default)s)",
    )
    p.add_argument(
        "--change-max-source-bytes",
        type=_positive(int),
        default=DEFAULT_BUDGET.max_source_bytes,
        help="bytes of Python generated per change (%(default)s)",
    )
    p.add_argument(
        "--change-max-seconds",
        type=_positive(float),
        default=DEFAULT_BUDGET.max_seconds,
        help="seconds to decode, or to check and compile, one change (%(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="most data connections at once (default: what the open-file limit allows)",
    )
    p.add_argument(
        "--max-state-size",
        type=int,
        default=0,
        help="bound every stage's state (scalars, characters, elements); a step over it "
        "fails and the state is kept (0: no bound, the default)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="close a connection that sends nothing while owed nothing for this many "
        "seconds (%(default)s; 0: never)",
    )
    p.add_argument(
        "--auth-timeout",
        type=float,
        default=10.0,
        help="close a control connection without an authenticated request after this "
        "many seconds (%(default)s; 0: never)",
    )
    p.add_argument(
        "--control-connections",
        type=int,
        default=16,
        help="control connections reserved for operators (%(default)s)",
    )
    p.add_argument(
        "--max-buffered-bytes",
        type=int,
        default=DEFAULT_MAX_BUFFERED,
        help="most unprocessed input all connections may hold together; over it the "
        "connections holding most are closed (%(default)s)",
    )
    p.add_argument(
        "--max-per-address",
        type=int,
        default=None,
        help="most connections one client address may hold on a port (default: a quarter "
        "of the port's cap)",
    )
    p.add_argument(
        "--per-address-exempt",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="an address not limited per address, e.g. a load balancer (repeatable; "
        "default: loopback; 'none' exempts nothing)",
    )
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="(%(default)s)")
    p.add_argument(
        "--send-timeout",
        type=float,
        default=60.0,
        help="disconnect a data client that takes no reply for this long, 0 never (%(default)s)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="on stop, seconds to answer requests already admitted (%(default)s)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    _nats(p)
    _import_path(p)
    p.set_defaults(run=serve)

    p = sub.add_parser("call", help="send items to the data port and print the outputs")
    p.add_argument("items", nargs="+", metavar="ITEM", help="JSON value, bare tag, or - (stdin)")
    p.add_argument("--version", help="the machine version this client was written for")
    _common(p, control=False)
    p.set_defaults(run=call)

    p = sub.add_parser("upgrade", help="change a stage's code, checked at the server")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="upgrade file, MODULE:NAME or .json")
    p.add_argument("--stage", help="the stage to change (default: the only one)")
    p.add_argument(
        "--expect",
        metavar="VERSION",
        help="the version it must run: 64 hex digits, or a unique prefix of at least 12 "
        "(default: the one it runs now)",
    )
    for part in FUNCTION_PARTS:
        flag = "--" + part.replace("_", "-")
        p.add_argument(flag, dest=part, metavar="REF", help="MODULE:NAME, .json, or none")
    p.add_argument("--no-migrate", action="store_true", help="send no migration")
    p.add_argument("--change-file", help="send this change document (several stages)")
    p.add_argument("--change-interface", action="store_true", help="allow a new interface")
    p.add_argument("--by", default=os.environ.get("USER", "cli"), help="recorded as requester")
    p.add_argument("--dump", action="store_true", help="print the change document, send nothing")
    g = p.add_argument_group(
        "distributed (docs/distributed.md)",
        "send the change in-band into a pipeline served with serve --nats",
    )
    g.add_argument("--nats", metavar="URL", help="the broker")
    g.add_argument("--nats-pipeline", metavar="NAME", help="the pipeline's name on the broker")
    g.add_argument("--nats-channel", metavar="STAGE", help="the pipeline's first stage")
    g.add_argument(
        "--nats-shards",
        metavar="N",
        type=int,
        help="the first stage is sharded in N shards: a copy into each shard's channel",
    )
    _import_path(p)
    _common(p, control=True)
    p.set_defaults(run=upgrade)

    p = sub.add_parser("rollback", help="undo a stage's latest code change")
    p.add_argument("stage", nargs="?", help="the stage (default: the only one)")
    p.add_argument("--by", default=os.environ.get("USER", "cli"), help="recorded as requester")
    g = p.add_argument_group(
        "distributed (docs/distributed.md)",
        "send the rollback in-band into a pipeline served with serve --nats",
    )
    g.add_argument("--nats", metavar="URL", help="the broker")
    g.add_argument("--nats-pipeline", metavar="NAME", help="the pipeline's name on the broker")
    g.add_argument("--nats-channel", metavar="STAGE", help="the pipeline's first stage")
    g.add_argument(
        "--nats-shards",
        metavar="N",
        type=int,
        help="the first stage is sharded in N shards: a copy into each shard's channel",
    )
    _common(p, control=True)
    p.set_defaults(run=rollback)

    for name, fn, text in (
        ("status", status, "the supervisor's and stages' status"),
        ("history", history, "the code-change history"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p, control=True)
        p.set_defaults(run=fn)
        if name == "history":
            g = p.add_argument_group(
                "distributed (docs/distributed.md)",
                "gather the change history of every segment of a pipeline served with serve --nats",
            )
            g.add_argument("--nats", metavar="URL", help="the broker")
            g.add_argument("--nats-pipeline", metavar="NAME", help="the pipeline's name")
        if name == "status":
            p.add_argument(
                "--watch", action="store_true", help="keep redrawing a live view (Ctrl-C ends it)"
            )
            p.add_argument(
                "--interval", type=float, default=1.0, help="seconds between redraws (%(default)s)"
            )
            p.add_argument("--count", type=int, default=None, help="stop after this many redraws")
            g = p.add_argument_group(
                "distributed (docs/distributed.md)",
                "gather the status of every segment of a pipeline served with serve --nats",
            )
            g.add_argument("--nats", metavar="URL", help="the broker")
            g.add_argument("--nats-pipeline", metavar="NAME", help="the pipeline's name")

    p = sub.add_parser("savepoint", help="write a consistent cut of every stage to a file")
    p.add_argument("name", nargs="?", help="its name (default: from the time)")
    _common(p, control=True)
    p.set_defaults(run=savepoint)

    p = sub.add_parser("state", help="a stage's current state")
    p.add_argument("stage", nargs="?", help="the stage (default: the only one)")
    _common(p, control=True)
    p.set_defaults(run=state)

    p = sub.add_parser("demo", help="the counter demo: a server upgraded live over TCP")
    p.set_defaults(run=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from arrowloop.cli._demo import run_demo

        return run_demo(say)
    command: Callable[[argparse.Namespace], Any] = args.run
    if args.command == "serve" and (args.nats or args.segment or args.placement):
        if not args.nats and not args.placement:
            complain("error: --segment goes with --nats URL")
            return EXIT_USAGE
        command = serve_segment
    if args.command == "upgrade" and args.nats and not args.dump:
        command = upgrade_over_nats
    if args.command == "status" and args.nats:
        command = watch_over_nats if args.watch else status_over_nats
    if args.command == "history" and args.nats:
        command = history_over_nats
    if args.command == "rollback" and args.nats:
        command = rollback_over_nats
    try:
        add_import_paths(getattr(args, "path", []))
        code: int = run(
            command, args, use_uvloop=False if getattr(args, "no_uvloop", False) else None
        )
    except RemoteError as exc:
        if getattr(args, "json", False):
            say(show_json({"error": exc.error}))
        for line in show_error(exc.error):
            complain(line)
        return EXIT_REFUSED
    except Unreachable as exc:
        complain(f"unreachable: {exc}")
        return EXIT_UNREACHABLE
    except (UsageError, TargetError, AuthenticationError, StoreError) as exc:
        complain(f"error: {exc}")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a port already in use
        complain(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # e.g. ending `status --watch`
        return EXIT_OK
    return code
