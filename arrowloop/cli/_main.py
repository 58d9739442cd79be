"""``python -m arrowloop``: serve a pipeline, and drive a running server.

Exit codes: 0 success; 1 the server refused the request (or replied with
an error); 2 bad usage or local input (a module, file or token that cannot
be used); 3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import anyio
import orjson

from arrowloop.cli._client import ControlClient, DataClient, RemoteError, Unreachable
from arrowloop.cli._format import (
    short,
    show_error,
    show_history,
    show_json,
    show_state,
    show_status,
)
from arrowloop.cli._load import FUNCTION_PARTS, ChangeOptions, build_change, read_change_file
from arrowloop.errors import ArrowloopError, AuthenticationError
from arrowloop.runtime import run
from arrowloop.server import (
    DEFAULT_CONTROL_PORT,
    DEFAULT_PORT,
    DEFAULT_WINDOW,
    ControlLimits,
    ServerConfig,
    TargetError,
    as_supervisor_spec,
    load_object,
    load_token,
    open_server,
    server_token,
)
from arrowloop.wire import Limits

__all__ = ["main", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_UNREACHABLE"]

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


class UsageError(ArrowloopError):
    """The command line cannot be carried out as given."""


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- where the server is -------------------------------------------------------------


def _read_ready(path: str) -> dict[str, Any]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageError(f"cannot read the server's ready file {path}: {exc}") from None
    if type(data) is not dict or "data" not in data or "control" not in data:
        raise UsageError(f"{path} is not a ready file written by 'arrowloop serve'")
    return data


def _data_address(args: argparse.Namespace) -> tuple[str, int]:
    if args.ready_file:
        d = _read_ready(args.ready_file)["data"]
        return str(d["host"]), int(d["port"])
    return args.host, args.port


def _control_address(args: argparse.Namespace) -> tuple[str, int]:
    if args.ready_file:
        d = _read_ready(args.ready_file)["control"]
        return str(d["host"]), int(d["port"])
    return args.host, args.control_port


def _token(args: argparse.Namespace) -> str:
    path = Path(args.token_file) if args.token_file else None
    if path is None and args.ready_file:
        named = _read_ready(args.ready_file).get("token_file")
        path = Path(named) if named else None
    token = load_token(path)
    if token is None:
        where = path or "ARROWLOOP_TOKEN or the default token file"
        raise UsageError(
            f"no control token found (looked in {where}); pass --token-file with the "
            "file the server printed at start, or set ARROWLOOP_TOKEN"
        )
    return token.value


def _control(args: argparse.Namespace) -> ControlClient:
    host, port = _control_address(args)
    return ControlClient(host, port, _token(args), timeout=args.timeout)


# -- serve ---------------------------------------------------------------------------


def _write_ready(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    Path(tmp).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)  # readers never see a half-written file


async def _serve(args: argparse.Namespace) -> int:
    obj, name = load_object(args.target)
    spec = as_supervisor_spec(obj, name)
    token = server_token(Path(args.token_file) if args.token_file else None)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        control_host=args.control_host,
        control_port=args.control_port,
        max_line=args.max_line_bytes,
        window=args.window,
        max_connections=args.max_connections,
        send_timeout=args.send_timeout if args.send_timeout > 0 else None,
        drain_timeout=args.drain_timeout,
        control=ControlLimits(
            max_request=args.max_request_bytes,
            program=Limits(max_bytes=args.max_request_bytes, max_nodes=args.max_program_nodes),
        ),
    )
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_server(spec, token, config) as srv:
            sup = srv.supervisor
            dh, dp = srv.data_address
            ch, cp = srv.control_address
            stages = sup.pipeline.stage_names
            _out(f"arrowloop: serving {args.target} (supervisor {spec.name})")
            _out(f"  data     {dh}:{dp}  (JSON lines, docs/protocol.md)")
            _out(f"  control  {ch}:{cp}  (token from {token.source})")
            if token.generated:
                _out(f"  generated a control token and saved it to {token.source}: {token.value}")
            if ch not in ("127.0.0.1", "::1", "localhost"):
                _out(f"  warning: the control port listens on {ch}, not only on loopback")
            for s in stages:
                _out(f"  stage {s}: version {short(sup.pipeline.version(s))}")
            if args.ready_file:
                _write_ready(
                    args.ready_file,
                    {
                        "pid": os.getpid(),
                        "data": {"host": dh, "port": dp},
                        "control": {"host": ch, "port": cp},
                        "token_file": token.source if not token.source.startswith("$") else None,
                        "stages": stages,
                    },
                )
            async for signum in signals:
                _out(
                    f"arrowloop: {signal.Signals(signum).name}: stopping (answering the "
                    "requests already admitted, then draining the pipeline)"
                )
                break
    _out("arrowloop: stopped")
    return EXIT_OK


# -- data port -----------------------------------------------------------------------


def _item(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if text.isidentifier():  # shorthand: ReadCount means {"tag": "ReadCount"}
            return {"tag": text}
        raise UsageError(
            f"expected an item as JSON (or a bare tag such as ReadCount), found {text!r:.60}"
        ) from None


async def _call(args: argparse.Namespace) -> int:
    texts = list(args.items)
    if texts == ["-"]:
        texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
    items = [_item(t) for t in texts]
    host, port = _data_address(args)
    failed = 0
    async with DataClient(host, port, timeout=args.timeout) as client:
        await client.send(items, version=args.version)
        for _ in items:
            reply = await client.reply()
            if args.json:
                _out(show_json(reply))
            elif "error" in reply:
                for line in show_error(reply["error"]):
                    _err(line)
            else:
                _out(show_json(reply.get("output")))
            failed += "error" in reply
    return EXIT_REFUSED if failed else EXIT_OK


# -- control port --------------------------------------------------------------------


def _only_stage(status: dict[str, Any], what: str) -> dict[str, Any]:
    stages: list[dict[str, Any]] = [c for c in status["children"] if c["kind"] == "stage"]
    if len(stages) != 1:
        names = [c["name"] for c in stages]
        raise UsageError(f"the pipeline has the stages {names}: say which to {what} with --stage")
    return stages[0]


async def _upgrade(args: argparse.Namespace) -> int:
    if args.change_file:
        if args.source:
            raise UsageError("give either SOURCE or --change-file, not both")
        doc = read_change_file(args.change_file)
        if args.dump:
            _out(show_json(doc))
            return EXIT_OK
        async with _control(args) as ctl:
            result = await ctl.request("upgrade", change=doc)
        return _report_change(args, "upgrade", result, {})
    if not args.source:
        raise UsageError("give the new machine: SOURCE (a module or a JSON file) or --change-file")
    parts = {p: getattr(args, p) for p in FUNCTION_PARTS}
    if args.no_migrate:
        parts["migrate"] = "none"
    if args.dump and args.stage and args.expect:
        doc = build_change(_options(args, args.stage, args.expect, parts))
        _out(show_json(doc))
        return EXIT_OK
    async with _control(args) as ctl:
        stage, expect = args.stage, args.expect
        if stage is None or expect is None:
            status = await ctl.request("status")
            if stage is None:
                stage = _only_stage(status, "upgrade")["name"]
            if expect is None:
                match = [c for c in status["children"] if c["name"] == stage]
                if not match or match[0]["kind"] != "stage":
                    raise UsageError(f"the server has no stage {stage!r}")
                expect = match[0]["version"]
                if not args.json and not args.dump:
                    _out(f"stage {stage} runs {short(expect)}: replacing that version")
        doc = build_change(_options(args, stage, expect, parts))
        if args.dump:
            _out(show_json(doc))
            return EXIT_OK
        result = await ctl.request("upgrade", change=doc)
    return _report_change(args, "upgrade", result, {stage: expect})


def _options(
    args: argparse.Namespace, stage: str, expect: str, parts: dict[str, str | None]
) -> ChangeOptions:
    return ChangeOptions(
        args.source,
        stage,
        expect,
        parts,
        requested_by=args.by,
        change_interface=args.change_interface,
    )


def _report_change(args: argparse.Namespace, what: str, result: Any, before: dict[str, str]) -> int:
    if args.json:
        _out(show_json(result))
        return EXIT_OK
    for stage, version in result["versions"].items():
        was = before.get(stage)
        moved = f"{short(was)} -> {short(version)}" if was else f"now {short(version)}"
        _out(f"{what} of stage {stage}: succeeded ({moved})")
    return EXIT_OK


async def _rollback(args: argparse.Namespace) -> int:
    async with _control(args) as ctl:
        stage = args.stage
        status = await ctl.request("status")
        if stage is None:
            stage = _only_stage(status, "roll back")["name"]
        before = {c["name"]: c["version"] for c in status["children"] if c["kind"] == "stage"}
        result = await ctl.request("rollback", stage=stage, requested_by=args.by)
    return _report_change(args, "rollback", result, before)


async def _status(args: argparse.Namespace) -> int:
    return await _query(args, "status", show_status)


async def _history(args: argparse.Namespace) -> int:
    return await _query(args, "history", show_history)


async def _query(args: argparse.Namespace, op: str, render: Callable[[Any], list[str]]) -> int:
    async with _control(args) as ctl:
        result = await ctl.request(op)
    for line in [show_json(result)] if args.json else render(result):
        _out(line)
    return EXIT_OK


async def _state(args: argparse.Namespace) -> int:
    async with _control(args) as ctl:
        stage = args.stage
        if stage is None:
            stage = _only_stage(await ctl.request("status"), "read")["name"]
        result = await ctl.request("get_state", stage=stage)
    for line in [show_json(result)] if args.json else show_state(result):
        _out(line)
    return EXIT_OK


# -- the parser ----------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, control: bool) -> None:
    p.add_argument("--host", default="127.0.0.1", help="the server's address (127.0.0.1)")
    if control:
        p.add_argument(
            "--control-port", type=int, default=DEFAULT_CONTROL_PORT, help="(%(default)s)"
        )
        p.add_argument("--token-file", help="file holding the control token")
    else:
        p.add_argument("--port", type=int, default=DEFAULT_PORT, help="data port (%(default)s)")
    p.add_argument("--ready-file", help="take the ports (and token file) from this ready file")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (%(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


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
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="data port, 0 for any")
    p.add_argument("--control-host", default="127.0.0.1", help="control address (%(default)s)")
    p.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT, help="0 for any")
    p.add_argument("--token-file", help="control token file (made on first start if missing)")
    p.add_argument("--ready-file", help="write the bound ports here (JSON) once listening")
    p.add_argument("--max-line-bytes", type=int, default=1 << 20, help="(%(default)s)")
    p.add_argument("--max-request-bytes", type=int, default=4 << 20, help="(%(default)s)")
    p.add_argument("--max-program-nodes", type=int, default=200_000, help="(%(default)s)")
    p.add_argument("--max-connections", type=int, default=1024, help="(%(default)s)")
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
    p.set_defaults(run=_serve)

    p = sub.add_parser("call", help="send items to the data port and print the outputs")
    p.add_argument("items", nargs="+", metavar="ITEM", help="JSON value, bare tag, or - (stdin)")
    p.add_argument("--version", help="the machine version this client was written for")
    _common(p, control=False)
    p.set_defaults(run=_call)

    p = sub.add_parser("upgrade", help="change a stage's code, checked at the server")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="upgrade file, MODULE:NAME or .json")
    p.add_argument("--stage", help="the stage to change (default: the only one)")
    p.add_argument("--expect", help="the version it must run (default: the one it runs now)")
    for part in FUNCTION_PARTS:
        flag = "--" + part.replace("_", "-")
        p.add_argument(flag, dest=part, metavar="REF", help="MODULE:NAME, .json, or none")
    p.add_argument("--no-migrate", action="store_true", help="send no migration")
    p.add_argument("--change-file", help="send this change document (several stages)")
    p.add_argument("--change-interface", action="store_true", help="allow a new interface")
    p.add_argument("--by", default=os.environ.get("USER", "cli"), help="recorded as requester")
    p.add_argument("--dump", action="store_true", help="print the change document, send nothing")
    _common(p, control=True)
    p.set_defaults(run=_upgrade)

    p = sub.add_parser("rollback", help="undo a stage's latest code change")
    p.add_argument("stage", nargs="?", help="the stage (default: the only one)")
    p.add_argument("--by", default=os.environ.get("USER", "cli"), help="recorded as requester")
    _common(p, control=True)
    p.set_defaults(run=_rollback)

    for name, fn, text in (
        ("status", _status, "the supervisor's and stages' status"),
        ("history", _history, "the code-change history"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p, control=True)
        p.set_defaults(run=fn)

    p = sub.add_parser("state", help="a stage's current state")
    p.add_argument("stage", nargs="?", help="the stage (default: the only one)")
    _common(p, control=True)
    p.set_defaults(run=_state)

    p = sub.add_parser("demo", help="the counter demo: a server upgraded live over TCP")
    p.set_defaults(run=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from arrowloop.cli._demo import run_demo

        return run_demo(_out)
    command: Callable[[argparse.Namespace], Any] = args.run
    try:
        code: int = run(
            command, args, use_uvloop=False if getattr(args, "no_uvloop", False) else None
        )
    except RemoteError as exc:
        if getattr(args, "json", False):
            _out(show_json({"error": exc.error}))
        for line in show_error(exc.error):
            _err(line)
        return EXIT_REFUSED
    except Unreachable as exc:
        _err(f"unreachable: {exc}")
        return EXIT_UNREACHABLE
    except (UsageError, TargetError, AuthenticationError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a port already in use
        _err(f"error: {exc}")
        return EXIT_USAGE
    return code
