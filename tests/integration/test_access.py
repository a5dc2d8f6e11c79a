"""API access control on real services (issues #13 item 2, #14): a local stack (redis-server, the
Chroma gate, uvicorn; no workers: nothing here needs a document ingested) plus a SECOND uvicorn API
process over the same project folder and Redis, as two replicas.  The CLI (``ragctl keys``,
``ragctl audit``) runs against it through the local runtime, as a user's would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from ragctl.project import read_dotenv
from ragctl.runtime.local import PLAN_FILE, LocalRuntime, run_dir
from tests.support.cli import FREE_PORTS, free_port
from tests.support.suite import skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

if shutil.which("redis-server") is None:
    reason = "redis-server not installed (apt-get install redis-server)"
    skip_or_fail(reason, "access", module=True)

UPLOAD_LIMIT = 4
SETTINGS = FREE_PORTS + f"""
[settings]
upload_rate_limit = {UPLOAD_LIMIT}
"""
runner = CliRunner()


def ragctl(project: Path, *args: str):
    from ragctl.cli import app

    return runner.invoke(app, ["--project", str(project), *args], catch_exceptions=False)


class Replicas:
    """The local stack's API (``a``) and a second API process (``b``) on the same data and Redis."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = LocalRuntime(root)
        self.runtime.up(workers=0, wait_s=180)
        self.key = read_dotenv(root / ".env")["RAG_API_KEY"]
        self.a = self.runtime.status().api_url
        plan = json.loads((run_dir(root) / PLAN_FILE).read_text(encoding="utf-8"))
        port = free_port()
        self.log = (root / "logs" / "api-b.log").open("ab")
        self.second = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "stack.api.app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root, env={**os.environ, **plan["env"]}, stdout=self.log, stderr=subprocess.STDOUT)
        self.b = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.b}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.second.poll() is None and time.monotonic() < deadline, (root / "logs" / "api-b.log").read_text()
            time.sleep(0.3)

    def http(self, base: str, key: str | None = None, source: str = "127.0.0.1") -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=base, headers=headers, timeout=60,
                            transport=httpx.HTTPTransport(local_address=source))

    def close(self) -> None:
        self.second.terminate()
        self.second.wait(timeout=30)
        self.log.close()
        self.runtime.down()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    (root / "ragctl.toml").write_text('[project]\nname = "access-test"\n' + SETTINGS, encoding="utf-8")
    running = Replicas(root)
    yield running
    running.close()


def start_of_a_window(window_s: int = 60, needed_s: float = 20) -> None:
    """Fixed windows: wait for a fresh one when fewer than ``needed_s`` seconds are left in this one."""
    left = window_s - time.time() % window_s
    if left < needed_s:
        time.sleep(left + 0.1)


def test_keys_from_the_cli_work_on_both_replicas_and_revocation_holds_at_the_next_request(replicas):
    made = ragctl(replicas.root, "keys", "create", "--role", "ask", "--name", "analyst", "--json")
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)["key"]
    assert key.startswith("rk_")
    for base in (replicas.a, replicas.b):
        assert replicas.http(base, key).get("/api/whoami").json() == {"name": "analyst", "role": "ask", "collections": None}
    listed = ragctl(replicas.root, "keys", "list", "--json")
    assert [(k["name"], k["role"], k["active"]) for k in json.loads(listed.stdout)] == [("analyst", "ask", True)]
    assert key not in listed.stdout
    human = ragctl(replicas.root, "keys", "list")
    assert "analyst" in human.stdout and key[:9] in human.stdout
    # Destructive: without a terminal it wants --yes (exit 6), and nothing changes.
    refused = ragctl(replicas.root, "keys", "revoke", "analyst")
    assert refused.exit_code == 6
    assert replicas.http(replicas.b, key).get("/api/whoami").status_code == 200
    revoked = ragctl(replicas.root, "keys", "revoke", "analyst", "--yes", "--json")
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["active"] is False
    # The very first request to each replica after the revocation is refused: no window at all (the
    # key store is read on every request). Not timed: on a loaded CI machine one request alone took
    # 0.6 s, and its latency says nothing about how fast a revocation spreads.
    statuses = {base: replicas.http(base, key).get("/api/documents").status_code for base in (replicas.a, replicas.b)}
    assert statuses == {replicas.a: 401, replicas.b: 401}
    missing = ragctl(replicas.root, "keys", "revoke", "nobody", "--yes")
    assert missing.exit_code == 1 and "No key named 'nobody'" in missing.output


def test_an_ask_key_searches_asks_and_uses_the_openai_sdk_but_changes_nothing(replicas, tmp_path):
    admin = replicas.http(replicas.a, replicas.key)
    key = admin.post("/api/keys", json={"name": "reader", "role": "ask"}).json()["key"]
    asker = replicas.http(replicas.b, key)
    assert asker.post("/api/search", json={"query": "backup retention"}).status_code == 200
    answer = asker.post("/api/ask", json={"question": "How long are backups kept?"})
    assert answer.status_code == 200 and answer.json()["mode"] == "extractive"
    sdk = openai.OpenAI(base_url=f"{replicas.b}/v1", api_key=key, max_retries=0, timeout=120)
    assert [m.id for m in sdk.models.list().data] == ["ragctl", "ragctl/default"]
    completion = sdk.chat.completions.create(model="ragctl:default",
                                             messages=[{"role": "user", "content": "How long are backups kept?"}])
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    path = tmp_path / "note.md"
    path.write_text("# note\n\nkept 30 days\n", encoding="utf-8")
    document = admin.post("/api/documents", files=[("files", (path.name, path.read_bytes()))]).json()["documents"][0]
    for method, url in (("POST", "/api/documents"), ("DELETE", f"/api/documents/{document['document_id']}"),
                        ("DELETE", f"/api/tasks/{document['task_id']}"), ("GET", f"/api/tasks/{document['task_id']}"),
                        ("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys/reader")):
        kwargs = {"files": [("files", (path.name, path.read_bytes()))]} if url == "/api/documents" else {}
        response = asker.request(method, url, **kwargs)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden", (method, url)
    assert admin.get(f"/api/documents/{document['document_id']}").json()["status"] == "queued"


def test_the_21st_wrong_key_from_one_address_is_429_on_every_replica(replicas):
    start_of_a_window()
    attacker = {base: replicas.http(base, "rk_guessed", source="127.0.0.3") for base in (replicas.a, replicas.b)}
    for attempt in range(20):  # alternating replicas: the count is Redis's, shared
        response = attacker[(replicas.a, replicas.b)[attempt % 2]].get("/api/documents")
        assert response.status_code == 401, (attempt, response.text)
    response = attacker[replicas.b].get("/api/documents")
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    for base in (replicas.a, replicas.b):
        # That address is refused even with the good key; another address with it is not.
        assert replicas.http(base, replicas.key, source="127.0.0.3").get("/api/documents").status_code == 429
        assert replicas.http(base, replicas.key, source="127.0.0.2").get("/api/documents").status_code == 200
    sdk = openai.OpenAI(base_url=f"{replicas.a}/v1", api_key=replicas.key, max_retries=0,
                        http_client=replicas.http(replicas.a, source="127.0.0.3"))
    with pytest.raises(openai.RateLimitError):
        sdk.models.list()


def test_uploads_per_key_are_counted_across_replicas(replicas, tmp_path):
    admin = replicas.http(replicas.a, replicas.key)
    key = admin.post("/api/keys", json={"name": "uploader", "role": "admin"}).json()["key"]
    start_of_a_window()
    statuses = []
    for i in range(UPLOAD_LIMIT + 1):
        path = tmp_path / f"n{i}.md"
        path.write_text(f"# n{i}\n\nnote {i}\n", encoding="utf-8")
        client = replicas.http((replicas.a, replicas.b)[i % 2], key)
        statuses.append(client.post("/api/documents", files=[("files", (path.name, path.read_bytes()))]))
    assert [r.status_code for r in statuses] == [202] * UPLOAD_LIMIT + [429]
    assert statuses[-1].json()["error"]["code"] == "rate_limited" and int(statuses[-1].headers["Retry-After"]) >= 1


def test_the_audit_log_of_a_session_in_order(replicas, tmp_path):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    admin_a, admin_b = replicas.http(replicas.a, replicas.key), replicas.http(replicas.b, replicas.key)
    key = admin_a.post("/api/keys", json={"name": "auditee", "role": "ask"}).json()["key"]
    path = tmp_path / "감사 [v2].md"
    path.write_text("# 감사\n\n보존 기간은 30일이다.\n", encoding="utf-8")
    document = admin_b.post("/api/documents", files=[("files", (path.name, path.read_bytes()))]).json()["documents"][0]
    assert replicas.http(replicas.a, key).post("/api/ask", json={"question": "보존 기간은?"}).status_code == 200
    assert admin_b.delete(f"/api/documents/{document['document_id']}").status_code == 200
    assert admin_a.delete("/api/keys/auditee").status_code == 200
    result = ragctl(replicas.root, "audit", "--since", since, "--json")
    assert result.exit_code == 0, result.output
    entries = [e for e in json.loads(result.stdout)
               if e.get("key") == "auditee" or e.get("key_name") == "auditee" or e.get("file_name") == path.name]
    assert [(e["event"], e["key"], e["role"], e["client"]) for e in entries] == [
        ("key_create", "admin", "admin", "127.0.0.1"), ("upload", "admin", "admin", "127.0.0.1"),
        ("question", "auditee", "ask", "127.0.0.1"), ("delete", "admin", "admin", "127.0.0.1"),
        ("key_revoke", "admin", "admin", "127.0.0.1")]
    assert entries[1]["document_id"] == entries[3]["document_id"] == document["document_id"]
    assert "question" not in entries[2] and entries[2]["route"] == "ask"
    # Two processes wrote them: two files (one per process), merged by time.
    writers = {p.name.split("-")[2] for p in (replicas.root / "logs" / "audit").glob("audit-*.jsonl")}
    assert len(writers) >= 2
    raw = "".join(p.read_text(encoding="utf-8") for p in (replicas.root / "logs" / "audit").glob("*.jsonl"))
    assert key not in raw and replicas.key not in raw and "보존 기간은?" not in raw
    only = ragctl(replicas.root, "audit", "--since", since, "--event", "key_revoke", "--json")
    assert {e["event"] for e in json.loads(only.stdout)} == {"key_revoke"}
    human = ragctl(replicas.root, "audit", "--since", since)
    assert "감사 [v2].md" in human.stdout and "auditee (ask) from 127.0.0.1" in human.stdout


def test_keys_in_an_embedded_project_say_they_are_for_the_stack(tmp_path):
    project = tmp_path / "embedded"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    result = ragctl(project, "keys", "list")
    assert result.exit_code == 5
    assert "API keys are for the stack's API" in result.stderr and "ragctl up --runtime local" in result.stderr
    as_json = json.loads(ragctl(project, "keys", "create", "--name", "x", "--json").stdout)
    assert as_json["error"]["code"] == "not_running"
