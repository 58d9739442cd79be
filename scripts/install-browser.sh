#!/usr/bin/env bash
# Installs what tests/test_dashboard_browser.py drives: Debian's Chromium and
# its WebDriver. Does nothing when they are there already; where they cannot
# be installed (no apt-get, not root) it says so and the test is skipped.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "install-browser: no apt-get or not root; the browser test will be skipped" >&2
    exit 0
fi
echo "install-browser: installing chromium and chromium-driver (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/tmp/install-browser.log 2>&1; then
    echo "install-browser: apt-get failed (see /tmp/install-browser.log); the browser test will be skipped" >&2
fi
exit 0
