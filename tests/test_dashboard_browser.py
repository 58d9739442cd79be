"""The dashboard in a real browser: headless Chromium, driven by Selenium.

The real server process with ``--http-port``; the page is loaded, an upgrade
is made from the CLI, and the page must show the new version and the
history line by itself (it polls). A screenshot is saved as
``docs/img/dashboard.png`` for the README.

Chromium and its driver come from Debian's packages; ``make test`` installs
them when it can (``scripts/install-browser.sh``). Where no browser can be
installed the test is skipped, saying why.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ROOT, server_env, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium and chromedriver here (scripts/install-browser.sh installs "
    "Debian's chromium and chromium-driver; it needs apt-get and root)",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    proc, info = start_server(tmp_path, "--http-port", "0")
    try:
        info["env"] = server_env(tmp_path)
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Headless, and none of Chromium's own network traffic: the machine may
    # have no way out, and the page needs none.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1300",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(DRIVER)), options=options)


def _wait_for(driver: Any, condition: Any, what: str, timeout: float = 20.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=what)


class _Load:
    """A data client in a thread, sending increments in batches until stopped."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.stop = threading.Event()
        self.replies = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        batch = b'{"item": {"tag": "IncrCount"}}\n' * 50
        with socket.create_connection(self.address, timeout=10) as s:
            while not self.stop.is_set():
                s.sendall(batch)
                got = 0
                while got < 50:
                    got += s.recv(65536).count(b"\n")
                self.replies += got
                time.sleep(0.005)  # a steady trickle, not a flood


def test_the_dashboard_shows_an_upgrade_made_from_the_cli(server: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    from examples.counter import v1, v2

    http = server["http"]
    load = _Load((server["data"]["host"], server["data"]["port"]))
    load.thread.start()
    driver = _browser()
    try:
        driver.get(f"http://{http['host']}:{http['port']}/")
        _wait_for(
            driver,
            lambda d: v1.machine.version[:12] in d.find_element(By.ID, "pipeline").text,
            "the page shows the running version",
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "arrowloop",
                "upgrade",
                "examples/counter/v2.py",
                "--ready-file",
                server["ready_file"],
                "--by",
                "browser-test",
            ],
            cwd=ROOT,
            env=server["env"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        _wait_for(
            driver,
            lambda d: v2.machine.version[:12] in d.find_element(By.ID, "pipeline").text,
            "the page shows the new version",
        )
        _wait_for(
            driver,
            lambda d: (
                "browser-test" in d.find_element(By.ID, "history").text
                and "succeeded" in d.find_element(By.ID, "history").text
            ),
            "the page shows the history line",
        )
        _wait_for(
            driver,
            lambda d: d.find_element(By.ID, "rps").text not in ("", "-", "0"),
            "the page shows the load",
        )
        time.sleep(2)  # a few points on the charts for the screenshot
        shot = ROOT / "docs" / "img" / "dashboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
        load.stop.set()
        load.thread.join(timeout=10)
    assert load.replies > 0
