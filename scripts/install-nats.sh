#!/usr/bin/env bash
# Installs what tests/test_nats_*.py start on loopback: Debian's nats-server
# (JetStream, `nats-server -js`). Does nothing when it is there already;
# where it cannot be installed (no apt-get, not root) it says so and those
# tests are skipped.
set -uo pipefail
if command -v nats-server >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "install-nats: no apt-get or not root; the distributed tests will be skipped" >&2
    exit 0
fi
echo "install-nats: installing nats-server (Debian package)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq nats-server; } >/tmp/install-nats.log 2>&1; then
    echo "install-nats: apt-get failed (see /tmp/install-nats.log); the distributed tests will be skipped" >&2
fi
exit 0
