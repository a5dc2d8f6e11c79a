"""A private redis-server on a free loopback port, for tests that need a real Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest


def start_redis_server(tmp_path_factory):
    """(process, client) of a fresh redis-server; skips without one, but fails under CI=true."""
    if shutil.which("redis-server") is None:
        reason = "redis-server not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: these tests must run)")
        pytest.skip(reason)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, socket_timeout=5)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    return server, client
