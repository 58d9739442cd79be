"""A placement file: which segment runs which stages, read by ``serve TARGET
--placement FILE --segment NAME``; every field checked, against the
pipeline too, with an error naming the file and the field."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import open_sink, open_source
from arrowloop.distributed._placement import PlacementError, check_placement, load_placement
from arrowloop.runtime import EndMsg
from arrowloop.typesys import INT
from tests.nats_pipeline import CONFIG, PIPELINE, SERVE_ARGS, SPEC, as_tuples, model
from tests.natsserver import NatsServer, nats_server
from tests.serving import run_arrowloop, start_server

__all__ = ["nats_server"]  # the fixture, imported for pytest

TARGET = "tests.nats_pipeline:SPEC"
GOOD = f"""
pipeline = "{PIPELINE}"
broker = "nats://127.0.0.1:4222"

[segments]
front = ["count", "total"]
back = ["check"]
"""


def _toml(tmp: Path, text: str) -> Path:
    path = tmp / "placement.toml"
    path.write_text(text)
    return path


def test_a_placement_file_names_each_segments_stages(tmp_path: Path) -> None:
    placement = load_placement(_toml(tmp_path, GOOD))
    check_placement(placement, SPEC, PIPELINE)
    assert placement.broker == "nats://127.0.0.1:4222"
    assert placement.stages_of("front") == ("count", "total")
    assert placement.stages_of("back") == ("check",)
    as_json = tmp_path / "placement.json"
    segments = {"front": ["count", "total"], "back": ["check"]}
    as_json.write_text(
        json.dumps({"pipeline": PIPELINE, "broker": "nats://h:1", "segments": segments})
    )
    assert load_placement(as_json).segments == placement.segments


SEGMENTS = '[segments]\nfront = ["count", "total"]\nback = ["check"]\n'
HEAD = f'pipeline = "{PIPELINE}"\nbroker = "nats://127.0.0.1:4222"\n'


@pytest.mark.parametrize(
    ("text", "where", "said"),
    [
        ("pipeline = ", "placement.toml", "expected TOML"),
        (HEAD + "brokers = 1\n" + SEGMENTS, "brokers", "only the fields"),
        ('broker = "nats://h:1"\n' + SEGMENTS, "pipeline", "the pipeline's name"),
        (f'pipeline = "{PIPELINE}"\nbroker = "http://h"\n' + SEGMENTS, "broker", "nats://"),
        (HEAD, "segments", "a table of segment names"),
        (HEAD + "[segments]\nfront = []\n", "segments.front", "a list of stage names"),
        (HEAD + '[segments]\nfront = ["count", 3]\n', "segments.front[1]", "a stage name"),
        (
            HEAD + '[segments]\nfront = ["count", "totl"]\nback = ["check"]\n',
            "segments.front[1]",
            "a stage of the pipeline",
        ),
        (
            HEAD + '[segments]\nfront = ["count", "total"]\nback = ["total", "check"]\n',
            "segments.back[0]",
            "'total' in segments 'front' and 'back'",
        ),
        (
            HEAD + '[segments]\nfront = ["count", "check"]\nback = ["total"]\n',
            "segments.front",
            "consecutive stages in pipeline order",
        ),
        (HEAD + '[segments]\nfront = ["count", "total"]\n', "segments", "['check'] in none"),
        (
            'pipeline = "other"\nbroker = "nats://h:1"\n' + SEGMENTS,
            "pipeline",
            "the name TARGET is served as",
        ),
    ],
    ids=[
        "not TOML",
        "unknown field",
        "no pipeline",
        "not a broker URL",
        "no segments",
        "empty segment",
        "not a name",
        "unknown stage",
        "stage in two segments",
        "not contiguous",
        "stage in none",
        "another pipeline",
    ],
)
def test_a_bad_placement_is_refused_naming_the_field(
    tmp_path: Path, text: str, where: str, said: str
) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(PlacementError) as info:
        check_placement(load_placement(path), SPEC, PIPELINE)
    assert info.value.path.startswith(str(path)), info.value
    assert info.value.path.endswith(where), info.value
    assert said in str(info.value), info.value


def test_serve_refuses_a_bad_placement_before_connecting(tmp_path: Path) -> None:
    bad = _toml(tmp_path, HEAD + '[segments]\nfront = ["count"]\nback = ["check"]\n')
    done = run_arrowloop(tmp_path, "serve", TARGET, "--placement", str(bad), "--segment", "front")
    assert done.returncode == 2
    assert f"placement: at {bad}: segments: expected every stage" in done.stderr
    good = _toml(tmp_path, GOOD)
    done = run_arrowloop(tmp_path, "serve", TARGET, "--placement", str(good))
    assert done.returncode == 2
    assert "--placement goes with --segment NAME, one of ['front', 'back']" in done.stderr
    done = run_arrowloop(tmp_path, "serve", TARGET, "--placement", str(good), "--segment", "mid")
    assert done.returncode == 2
    assert "expected one of the segments ['front', 'back'], found 'mid'" in done.stderr


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


@pytest.mark.e2e
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_segments_run_from_one_placement_file(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    path = _toml(tmp_path, GOOD.replace("nats://127.0.0.1:4222", url))
    procs = []
    try:
        for seg in ("front", "back"):
            where = tmp_path / seg
            where.mkdir()
            args = ["--placement", str(path), "--segment", seg, "--state-dir", str(where)]
            start = functools.partial(start_server, where, *SERVE_ARGS, *args, target=TARGET)
            proc, _ = await anyio.to_thread.run_sync(start)
            procs.append(proc)
        items = list(range(-50, 250))
        async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
            await src.send(items)
            await src.send(EndMsg())
        got: list[Any] = []
        async with open_sink(url, PIPELINE, "out", SPEC.stages[-1].machine.output) as sink:
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
            except anyio.EndOfStream:
                pass
        for proc in procs:
            await anyio.to_thread.run_sync(functools.partial(proc.wait, timeout=60))  # the end
        log = (tmp_path / "front" / "server.log").read_text()
        assert "serving stages count, total" in log
        assert f"broker   {url}" in log
    finally:
        for proc in procs:
            if proc.poll() is None:
                await anyio.to_thread.run_sync(_stop, proc)
    assert as_tuples(got) == model(items)
