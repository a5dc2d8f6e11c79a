"""The cost of collection scopes on a search (issue #26): p50/p95 of ``POST /api/search`` through the
in-process API with a key that sees every collection and a key scoped to two collections, requests
interleaved.  The pipeline's search itself is replaced by a constant answer, so the difference is
the access checks (key lookup, scope, collection name), not retrieval noise.  Goal: <= 1 ms at p95."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from stack.api.app import create_app
    from stack.settings import load_settings

    folder = Path(tempfile.mkdtemp(prefix="ragctl-bench-"))
    app = create_app(load_settings(folder, {"api_key": "bench-admin", "rate_window_s": 3600,
                                            "auth_fail_limit": 10**6}))
    app.state.pipeline.search = lambda query, *, collection=None, top_k=None, mode="hybrid": []
    admin = TestClient(app)
    keys = {}
    for name, scope in (("all", None), ("scoped", ["hr", "finance"])):
        body = {"name": name, "role": "ask"} | ({"collections": scope} if scope else {})
        keys[name] = admin.post("/api/keys", json=body, headers={"Authorization": "Bearer bench-admin"}).json()["key"]
    clients = {name: TestClient(app, headers={"Authorization": f"Bearer {key}"}) for name, key in keys.items()}
    times: dict[str, list[float]] = {name: [] for name in clients}
    for n in range(args.requests + 200):
        for name, client in (list(clients.items()) if n % 2 else list(clients.items())[::-1]):
            started = time.perf_counter()
            response = client.post("/api/search", json={"query": "연차 휴가", "collection": "hr"})
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            if n >= 200:  # warm-up
                times[name].append(elapsed * 1000)
    result = {name: {"p50_ms": round(statistics.median(v), 3), "p95_ms": round(p95(v), 3)} for name, v in times.items()}
    result["p95_added_ms"] = round(result["scoped"]["p95_ms"] - result["all"]["p95_ms"], 3)
    result["requests"] = args.requests
    result["machine"] = machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
