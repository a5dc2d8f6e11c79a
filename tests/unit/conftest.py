from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _HealthyApi(BaseHTTPRequestHandler):
    """Answers 200 with a JSON body on every GET: the API's health routes, as a client sees them."""

    def do_GET(self):
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api_url():
    """An HTTP server on loopback standing in for a healthy API (for tests on the fake runtime)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthyApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def deployment(tmp_path):
    """A rendered Compose deployment (ragctl.toml, compose.yaml, Dockerfile …) with one worker."""
    from ragctl.deploy import write_rendered
    from ragctl.project import init_project

    root = tmp_path / "deploy"
    init_project(root, runtime="docker", stack={"workers": 1})
    write_rendered(root)
    return root


@pytest.fixture
def project(tmp_path):
    """An embedded project with nothing but its ragctl.toml (name "fake") in the test's tmp_path: what the
    fake runtime of tests/support/fakes.py runs over (a module that needs another project defines its own)."""
    (tmp_path / "ragctl.toml").write_text('[project]\nname = "fake"\nruntime = "embedded"\n')
    return tmp_path
