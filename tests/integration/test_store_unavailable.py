"""A Chroma server that goes away is a transient StoreUnavailable (retried by workers), not a
crash and not a bad-input failure.  Real `chroma run` on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stack.pipeline.errors import StoreUnavailable
from stack.pipeline.store import VectorStore, open_chroma
from stack.settings import load_settings
from tests.support.cli import free_port

pytestmark = pytest.mark.timeout(120)


def test_a_vanished_chroma_server_is_store_unavailable(tmp_path):
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert chroma, "the chroma CLI comes with chromadb"
    port = free_port()
    server = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        client = open_chroma(load_settings(tmp_path, {"chroma_url": f"http://127.0.0.1:{port}"}))
        store = VectorStore(client, "default", model_name="m", dimension=3)
        store.upsert(["d:0"], [[1.0, 0.0, 0.0]], ["text"], [{"doc_id": "d"}])
        assert store.count() == 1
    finally:
        server.kill()
        server.wait(timeout=30)
    with pytest.raises(StoreUnavailable, match="unreachable") as caught:
        store.upsert(["d:1"], [[0.0, 1.0, 0.0]], ["more"], [{"doc_id": "d"}])
    assert caught.value.transient and "ragctl ps" in caught.value.hint
