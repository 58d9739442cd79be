"""The commands that drive a running server: ``call``, ``upgrade``,
``rollback``, ``status``, ``history`` and ``state``, with what they share
(finding the server and its token, printing, the exit codes)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import anyio
import orjson

from arrowloop.cli._client import ControlClient, DataClient
from arrowloop.cli._format import (
    short,
    show_error,
    show_history,
    show_json,
    show_state,
    show_status,
)
from arrowloop.cli._load import FUNCTION_PARTS, ChangeOptions, build_change, read_change_file
from arrowloop.errors import ArrowloopError
from arrowloop.server import load_token

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_UNREACHABLE",
    "UsageError",
    "say",
    "complain",
    "call",
    "upgrade",
    "rollback",
    "status",
    "history",
    "state",
    "savepoint",
]

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


class UsageError(ArrowloopError):
    """The command line cannot be carried out as given."""


def say(line: str = "") -> None:
    """Print a result line (stdout, flushed: the demo and scripts read it live)."""
    print(line, flush=True)


def complain(line: str) -> None:
    """Print an error line (stderr)."""
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
        if d is None:  # a segment of a distributed pipeline (serve --nats)
            raise UsageError(f"the server of {args.ready_file} has no data port")
        return str(d["host"]), int(d["port"])
    return args.host, args.port


def _control_address(args: argparse.Namespace) -> tuple[str, int]:
    if args.ready_file:
        d = _read_ready(args.ready_file)["control"]
        if d is None:  # a segment served without --control-port
            raise UsageError(f"the server of {args.ready_file} has no control port")
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


def _show_reply(args: argparse.Namespace, reply: dict[str, Any]) -> bool:
    """Print one reply; whether it was an error."""
    if args.json:
        say(show_json(reply))
    elif "error" in reply:
        for line in show_error(reply["error"]):
            complain(line)
    else:
        say(show_json(reply.get("output")))
    return "error" in reply


async def call(args: argparse.Namespace) -> int:
    """Send items to the data port; print each output (or error). ``-`` streams
    stdin: each line is sent as it arrives and its reply printed as it comes."""
    texts = list(args.items)
    if texts == ["-"]:
        return await _call_stream(args)
    items = [_item(t) for t in texts]
    host, port = _data_address(args)
    failed = 0
    async with DataClient(host, port, timeout=args.timeout) as client:
        await client.send(items, version=args.version)
        for _ in items:
            failed += _show_reply(args, await client.reply())
    return EXIT_REFUSED if failed else EXIT_OK


async def _call_stream(args: argparse.Namespace) -> int:
    """``call -``: a feed, not a batch. A reader sends each stdin line as soon
    as it is read, so ``call -`` can sit at the end of a live pipe; the
    replies are printed in order as they come. A line that is not an item is
    reported and skipped (the feed goes on), and makes the exit code 2."""
    host, port = _data_address(args)
    counts = {"failed": 0, "bad": 0}
    sent, owed = anyio.create_memory_object_stream[None](256)

    async def feed(client: DataClient) -> None:
        async with sent:
            number = 0
            while line := await anyio.to_thread.run_sync(
                sys.stdin.readline, abandon_on_cancel=True
            ):
                number += 1
                if not line.strip():
                    continue
                try:
                    item = _item(line.strip())
                except UsageError as exc:
                    complain(f"stdin line {number}: {exc}")
                    counts["bad"] += 1
                    continue
                await client.send([item], version=args.version)
                await sent.send(None)  # one reply owed, in order

    async with (
        DataClient(host, port, timeout=args.timeout) as client,
        anyio.create_task_group() as tg,
        owed,
    ):
        tg.start_soon(feed, client)
        async for _ in owed:
            counts["failed"] += _show_reply(args, await client.reply())
    if counts["bad"]:
        return EXIT_USAGE
    return EXIT_REFUSED if counts["failed"] else EXIT_OK


# -- control port --------------------------------------------------------------------


def _only_stage(status: dict[str, Any], what: str, how: str) -> dict[str, Any]:
    """The one stage, or a UsageError saying how to name one (``how``: the
    command's own way, ``--stage NAME`` or a positional ``STAGE``)."""
    stages: list[dict[str, Any]] = [c for c in status["children"] if c["kind"] == "stage"]
    if len(stages) != 1:
        names = [c["name"] for c in stages]
        raise UsageError(f"the pipeline has the stages {names}: say which to {what}: {how}")
    return stages[0]


_VERSION = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{12,64}")


def _check_expect(expect: str, *, known: list[str] | None) -> str:
    """``--expect`` as a full version: 64 lowercase hex digits, or a prefix of
    at least 12 (as the CLI prints them) that one of the ``known`` versions
    starts with (without a server to ask, ``known`` is ``None``).

    Raises:
        UsageError: not a version, or no single known version has that prefix.
    """
    if _VERSION.fullmatch(expect):
        return expect
    if known is None or not _PREFIX.fullmatch(expect):
        shape = "64 lowercase hex digits" + (
            "" if known is None else ", or a unique prefix of at least 12"
        )
        raise UsageError(f"--expect: expected a version ({shape}), found {expect!r:.80}")
    matches = sorted({v for v in known if v.startswith(expect)})
    if len(matches) != 1:
        found = "none" if not matches else f"{len(matches)} versions"
        raise UsageError(
            f"--expect {expect}: expected one version of the stage (current or in the "
            f"history) starting with it, found {found}; give more digits or all 64"
        )
    return matches[0]


async def _stage_versions(ctl: ControlClient, stage: str, status: dict[str, Any]) -> list[str]:
    """Every version the stage runs or has run, as far as status and history tell."""
    known = [c["version"] for c in status["children"] if c["name"] == stage and c["version"]]
    for record in await ctl.request("history"):
        for name, old, new in zip(
            record["stages"], record["from_versions"], record["to_versions"], strict=False
        ):
            if name == stage:
                known += [v for v in (old, new) if v]
    return known


async def upgrade(args: argparse.Namespace) -> int:
    """Send a code change built from a module or JSON file; print the versions."""
    if args.change_file:
        if args.source:
            raise UsageError("give either SOURCE or --change-file, not both")
        doc = read_change_file(args.change_file)
        if args.dump:
            say(show_json(doc))
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
        expect = _check_expect(args.expect, known=None)
        doc = build_change(_options(args, args.stage, expect, parts))
        say(show_json(doc))
        return EXIT_OK
    async with _control(args) as ctl:
        stage, expect = args.stage, args.expect
        if stage is None or expect is None or not _VERSION.fullmatch(expect):
            status = await ctl.request("status")
            if stage is None:
                stage = _only_stage(status, "upgrade", "--stage NAME")["name"]
            if expect is None:
                match = [c for c in status["children"] if c["name"] == stage]
                if not match or match[0]["kind"] != "stage":
                    raise UsageError(f"the server has no stage {stage!r}")
                expect = match[0]["version"]
                if not args.json and not args.dump:
                    say(f"stage {stage} runs {short(expect)}: replacing that version")
            elif not _VERSION.fullmatch(expect):
                known = await _stage_versions(ctl, stage, status)
                expect = _check_expect(expect, known=known)
        doc = build_change(_options(args, stage, expect, parts))
        if args.dump:
            say(show_json(doc))
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
        say(show_json(result))
        return EXIT_OK
    for stage, version in result["versions"].items():
        was = before.get(stage)
        moved = f"{short(was)} -> {short(version)}" if was else f"now {short(version)}"
        say(f"{what} of stage {stage}: succeeded ({moved})")
    return EXIT_OK


async def rollback(args: argparse.Namespace) -> int:
    """Undo a stage's latest change; print the versions."""
    async with _control(args) as ctl:
        stage = args.stage
        status = await ctl.request("status")
        if stage is None:
            stage = _only_stage(status, "roll back", "rollback STAGE")["name"]
        before = {c["name"]: c["version"] for c in status["children"] if c["kind"] == "stage"}
        result = await ctl.request("rollback", stage=stage, requested_by=args.by)
    return _report_change(args, "rollback", result, before)


async def status(args: argparse.Namespace) -> int:
    """Print the supervisor's status (or, with ``--watch``, keep redrawing it)."""
    if getattr(args, "watch", False):
        from arrowloop.cli._watch import watch_status

        async with _control(args) as ctl:
            await watch_status(ctl, args.interval, args.count)
        return EXIT_OK
    return await _query(args, "status", show_status)


async def history(args: argparse.Namespace) -> int:
    """Print the code-change history."""
    return await _query(args, "history", show_history)


async def _query(args: argparse.Namespace, op: str, render: Callable[[Any], list[str]]) -> int:
    async with _control(args) as ctl:
        result = await ctl.request(op)
    for line in [show_json(result)] if args.json else render(result):
        say(line)
    return EXIT_OK


async def savepoint(args: argparse.Namespace) -> int:
    """Have the server write a savepoint; print its path."""
    fields = {} if args.name is None else {"name": args.name}
    async with _control(args) as ctl:
        result = await ctl.request("savepoint", **fields)
    if args.json:
        say(show_json(result))
        return EXIT_OK
    say(f"savepoint {result['name']}: {result['path']}")
    for stage, seq in result["seqs"].items():
        say(f"  stage {stage}: after {seq} items")
    return EXIT_OK


async def state(args: argparse.Namespace) -> int:
    """Print a stage's state."""
    async with _control(args) as ctl:
        stage = args.stage
        if stage is None:
            stage = _only_stage(await ctl.request("status"), "read", "state STAGE")["name"]
        result = await ctl.request("get_state", stage=stage)
    for line in [show_json(result)] if args.json else show_state(result):
        say(line)
    return EXIT_OK
