"""Shared fixtures: runtime tests run on asyncio's own loop and on uvloop, both in
asyncio's debug mode; the hypothesis profile (tests/profiles.py) is loaded first;
every test is marked with the layer it tests (``pytest -m runtime``)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import tests.profiles  # noqa: F401 - registers and loads the hypothesis profiles


@pytest.fixture(
    params=[
        # Debug mode: a coroutine never awaited, a callback called from the
        # wrong thread or a slow step is reported instead of passing quietly.
        pytest.param(("asyncio", {"use_uvloop": False, "debug": True}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True, "debug": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """The event loops every ``@pytest.mark.anyio`` test runs on."""
    return request.param


#: The layer each test module tests (docs/architecture.md's table); ``api`` is the
#: public API and the layer rule, ``examples`` the shipped and embedding examples and
#: the README. Modules not listed are placed by their name's prefix (``PREFIXES``), so
#: a new ``test_server_x.py`` needs no entry.
LAYER_OF: dict[str, str] = {
    "test_typesys": "typesys",
    "test_jsonform": "typesys",
    "test_simplify": "arrows",
    "test_checker": "check",
    "test_properties": "compiler",
    "test_semantics": "compiler",
    "test_same_names": "typesys",
    "test_decode_fuzz": "wire",
    "test_counter": "machine",
    "test_channel": "runtime",
    "test_budget": "runtime",
    "test_pipeline": "runtime",
    "test_pipeline_properties": "runtime",
    "test_submit_many": "runtime",
    "test_iface_properties": "runtime",
    "test_soak_model": "runtime",
    "test_stays_up": "runtime",
    "test_request_keys": "runtime",
    "test_request_keys_model": "supervisor",
    "test_change_wire": "upgrade",
    "test_lines": "endpoints",
    "test_auth": "server",
    "test_protocol_terms": "server",
    "test_layers": "api",
    "test_public_api": "api",
    "test_demo": "cli",
    "test_readme": "examples",
    "test_asgi_service": "examples",
    "test_corpus": "frontend",
}
PREFIXES: dict[str, str] = {
    "test_frontend": "frontend",
    "test_pipeline": "runtime",
    "test_supervisor": "supervisor",
    "test_server": "server",
    "test_cli": "cli",
    "test_nats": "distributed",
}
#: Every layer marker, registered so that ``--strict-markers`` accepts them.
LAYER_MARKERS = (
    "typesys",
    "arrows",
    "check",
    "compiler",
    "wire",
    "machine",
    "frontend",
    "runtime",
    "supervisor",
    "upgrade",
    "endpoints",
    "distributed",
    "server",
    "cli",
    "api",
    "examples",
)


def layer_of(module: str) -> str | None:
    """The layer marker for the test module ``module`` (its last dotted part), if known."""
    name = module.rpartition(".")[2]
    if name in LAYER_OF:
        return LAYER_OF[name]
    return next((layer for p, layer in PREFIXES.items() if name.startswith(p)), None)


def pytest_configure(config: pytest.Config) -> None:
    """Register the layer markers."""
    for layer in LAYER_MARKERS:
        config.addinivalue_line("markers", f"{layer}: tests of the {layer} layer")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its module's layer."""
    for item in items:
        module = getattr(item, "module", None)
        layer = layer_of(module.__name__) if module is not None else None
        if layer is not None:
            item.add_marker(layer)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the corpus's acceptance rate (tests/test_corpus.py) when its pin test ran."""
    corpus = sys.modules.get("tests.test_corpus")
    for line in getattr(corpus, "SUMMARY", []):
        terminalreporter.write_line(line)
