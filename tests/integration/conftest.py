"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.support.redis_server import start_redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A private redis-server on a free loopback port, for one module; its URL."""
    server, client = start_redis_server(tmp_path_factory)
    try:
        yield f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    finally:
        server.terminate()
        server.wait(10)
