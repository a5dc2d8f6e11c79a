"""API access control in-process (issues #13 item 2, #14): keys with roles, the audit log, abuse
limits.  Redis is the unit suite's stand-in (tests/unit/test_api_documents.py), which has no
counters: the limits run on their in-process fallback here, as they do when Redis is away.  The same
behaviour across two real API processes sharing Redis is tests/integration/test_access.py."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import openai
import pytest

from stack import audit, contract
from stack.api.limits import Limiter, client_address
from stack.keys import SqliteKeyStore, hash_key
from stack.settings import load_settings
from tests.support.access import ADMIN, client, new_key
from tests.support.suite import REPO


def note(tmp_path, name="a.md"):
    path = tmp_path / name
    path.write_text(f"# {name}\n\nalpha beta\n", encoding="utf-8")
    return path


def test_an_ask_key_reads_and_asks_but_changes_nothing(make_app, tmp_path):
    app = make_app()
    admin = client(app, ADMIN)
    assert admin.get("/api/whoami").json() == {"name": "admin", "role": "admin", "collections": None}
    key = new_key(app, "reader")
    assert key.startswith("rk_") and len(key) > 40
    asker = client(app, key)
    assert asker.get("/api/whoami").json() == {"name": "reader", "role": "ask", "collections": None}
    # Reads: the documents list, one document, its chunks, the models.
    document = admin.post("/api/documents", files=[("files", ("a.md", note(tmp_path).read_bytes()))]).json()
    document_id = document["documents"][0]["document_id"]
    task_id = document["documents"][0]["task_id"]
    assert asker.get("/api/documents").status_code == 200
    assert asker.get(f"/api/documents/{document_id}").json()["id"] == document_id
    assert asker.get(f"/api/documents/{document_id}/chunks").status_code == 200
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=asker, max_retries=0)
    assert [m.id for m in sdk.models.list().data] == ["ragctl", "ragctl/default"]
    # Everything that changes the stack, task logs, metrics and keys: 403 in the envelope.
    refused = [("POST", "/api/documents"), ("DELETE", f"/api/documents/{document_id}"),
               ("POST", f"/api/documents/{document_id}/retry"), ("DELETE", f"/api/tasks/{task_id}"),
               ("GET", f"/api/tasks/{task_id}"), ("GET", "/api/tasks"), ("GET", "/api/keys"),
               ("POST", "/api/keys"), ("DELETE", "/api/keys/reader"), ("GET", "/metrics"),
               ("GET", "/api/health/ready")]
    for method, path in refused:
        response = asker.request(method, path, json={"name": "x", "role": "admin"},
                                 files=[("files", ("b.md", b"# b\n"))] if method == "POST" and path == "/api/documents"
                                 else None)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden" and "reader" in error["message"] and error["hint"], error
    assert admin.get(f"/api/documents/{document_id}").status_code == 200  # nothing was deleted


def test_keys_are_stored_hashed_listed_without_secrets_and_revoked_at_once(make_app):
    app = make_app()
    key = new_key(app, "web-team")
    admin = client(app, ADMIN)
    (listed,) = admin.get("/api/keys").json()
    assert listed["name"] == "web-team" and listed["role"] == "ask" and listed["active"]
    assert key.startswith(listed["prefix"]) and len(listed["prefix"]) == 9 and "key" not in listed
    # What is on disk: the database and, in WAL mode, its log (a write sits there until a checkpoint).
    db = b"".join(path.read_bytes() for path in sorted(app.state.settings.data_path.glob("keys.sqlite*")))
    assert key.encode() not in db and hash_key(key).encode() in db
    assert client(app, key).get("/api/documents").status_code == 200
    assert admin.get("/api/keys").json()[0]["last_used_at"] is not None
    # Names are unique (also after revocation), 'admin' is the admin key's, roles are two.
    assert admin.post("/api/keys", json={"name": "web-team", "role": "ask"}).status_code == 409
    assert admin.post("/api/keys", json={"name": "admin", "role": "ask"}).json()["error"]["code"] == "invalid_key_name"
    assert admin.post("/api/keys", json={"name": "x", "role": "root"}).json()["error"]["code"] == "invalid_role"
    revoked = admin.delete("/api/keys/web-team")
    assert revoked.status_code == 200 and not revoked.json()["active"] and revoked.json()["revoked_at"]
    response = client(app, key).get("/api/documents")
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert admin.delete("/api/keys/nobody").status_code == 404
    # A second store over the same file (another replica) sees the revocation: no cache.
    assert SqliteKeyStore(app.state.settings.data_path / "keys.sqlite").lookup(key).revoked_at is not None
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client(app), max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_an_admin_role_key_may_do_everything(make_app, tmp_path):
    app = make_app()
    key = new_key(app, "ops", role="admin")
    ops = client(app, key)
    assert ops.get("/api/whoami").json() == {"name": "ops", "role": "admin", "collections": None}
    assert ops.get("/api/keys").status_code == 200
    assert ops.post("/api/documents", files=[("files", ("a.md", note(tmp_path).read_bytes()))]).status_code == 202


def test_the_21st_wrong_key_from_one_address_is_429_until_the_window_passes(make_app):
    app = make_app(rate_window_s=3)
    # Start at the beginning of a window, so that 21 tries fit in one.
    time.sleep(3 - time.time() % 3 + 0.05)
    attacker = client(app, "rk_wrong", address="203.0.113.9")
    for attempt in range(20):
        response = attacker.get("/api/documents")
        assert response.status_code == 401, (attempt, response.text)
    good_from_there = client(app, ADMIN, address="203.0.113.9")
    assert good_from_there.get("/api/documents").status_code == 200  # 20 failures: not yet refused
    response = attacker.get("/api/documents")
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3
    assert good_from_there.get("/api/documents").status_code == 429  # the address is refused, even a good key
    assert client(app, ADMIN, address="203.0.113.10").get("/api/documents").status_code == 200  # others are not
    time.sleep(int(response.headers["Retry-After"]) + 0.1)
    assert good_from_there.get("/api/documents").status_code == 200


def test_a_missing_key_is_401_but_not_counted_as_an_attack(make_app):
    app = make_app()
    anonymous = client(app, address="203.0.113.20")
    for _ in range(25):
        assert anonymous.get("/api/documents").status_code == 401
    assert client(app, ADMIN, address="203.0.113.20").get("/api/documents").status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_address_counts(make_app):
    app = make_app(auth_fail_limit=2)
    via_proxy = client(app, "wrong", address="10.1.2.3", **{"X-Real-IP": "203.0.113.30"})
    statuses = [via_proxy.get("/api/documents").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    # Another user behind the same proxy is not refused...
    assert client(app, ADMIN, address="10.1.2.3", **{"X-Real-IP": "203.0.113.31"}).get(
        "/api/documents").status_code == 200
    # ...and a client that is not a proxy cannot choose its address with the header.
    spoof = client(app, "wrong", address="198.51.100.50", **{"X-Real-IP": "203.0.113.32"})
    assert [spoof.get("/api/documents").status_code for _ in range(3)] == [401, 401, 429]
    assert client(app, ADMIN, address="198.51.100.50").get("/api/documents").status_code == 429
    assert client(app, ADMIN, address="10.1.2.3", **{"X-Real-IP": "203.0.113.32"}).get(
        "/api/documents").status_code == 200


def test_client_address_rules():
    trusted = "127.0.0.0/8,10.0.0.0/8,::1/128"
    assert client_address("198.51.100.1", {"x-real-ip": "1.2.3.4"}, trusted) == "198.51.100.1"
    assert client_address("10.0.0.5", {"x-real-ip": "1.2.3.4"}, trusted) == "1.2.3.4"
    assert client_address("10.0.0.5", {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.9"}, trusted) == "1.2.3.4"
    assert client_address("10.0.0.5", {"x-real-ip": "not an address"}, trusted) == "10.0.0.5"
    assert client_address("::1", {"x-real-ip": "2001:db8::1"}, trusted) == "2001:db8::1"
    assert client_address("10.0.0.5", {}, "") == "10.0.0.5"
    with pytest.raises(ValueError, match="bogus"):  # a bad setting fails at load, not on a request
        load_settings(REPO, {"trusted_proxies": "10.0.0.0/8, bogus"})


def test_uploads_per_key_are_limited(make_app, tmp_path):
    app = make_app(upload_rate_limit=3, rate_window_s=60)
    time.sleep(max(0.0, (60 - time.time() % 60) + 0.05) if time.time() % 60 > 55 else 0)
    admin = client(app, ADMIN)
    statuses = [admin.post("/api/documents", files=[("files", (f"{i}.md", note(tmp_path, f"{i}.md").read_bytes()))])
                for i in range(4)]
    assert [r.status_code for r in statuses] == [202, 202, 202, 429]
    assert statuses[3].json()["error"]["code"] == "rate_limited" and int(statuses[3].headers["Retry-After"]) >= 1
    other = client(app, new_key(app, "ops", role="admin"))  # another key has its own count
    assert other.post("/api/documents", files=[("files", ("z.md", note(tmp_path, "z.md").read_bytes()))]).status_code == 202


def test_the_audit_log_names_who_did_what_never_the_key(make_app, tmp_path):
    app = make_app()
    admin = client(app, ADMIN, address="198.51.100.60")
    key = new_key(app, "reader")
    entry = admin.post("/api/documents", files=[("files", ("보고서 [v2].md", note(tmp_path).read_bytes()))]).json()
    document_id = entry["documents"][0]["document_id"]
    asker = client(app, key, address="198.51.100.61")
    app.state.pipeline.ask = lambda question, **kw: __import__("stack.pipeline.answer", fromlist=["Answer"]).Answer(
        question, "no answer", "extractive", [])
    assert asker.post("/api/ask", json={"question": "비밀 질문입니다"}).status_code == 200
    assert admin.delete(f"/api/documents/{document_id}").status_code == 200
    assert admin.delete("/api/keys/reader").status_code == 200
    entries = contract.read_audit_events(app.state.settings.logs_path / "audit")
    assert [(e["event"], e["key"], e["role"]) for e in entries] == [
        ("key_create", "admin", "admin"), ("upload", "admin", "admin"), ("question", "reader", "ask"),
        ("delete", "admin", "admin"), ("key_revoke", "admin", "admin")]
    assert entries[1]["client"] == "198.51.100.60" and entries[1]["file_name"] == "보고서 [v2].md"
    assert entries[1]["document_id"] == entries[3]["document_id"] == document_id
    assert entries[2]["client"] == "198.51.100.61" and entries[2]["chars"] == 8 and "question" not in entries[2]
    assert entries[0]["key_name"] == entries[4]["key_name"] == "reader"
    raw = "".join(p.read_text(encoding="utf-8") for p in (app.state.settings.logs_path / "audit").iterdir())
    assert key not in raw and ADMIN not in raw and "비밀" not in raw
    times = [datetime.fromisoformat(e["time"]) for e in entries]
    assert times == sorted(times) and all(t.tzinfo == UTC for t in times)


def test_question_text_is_audited_only_when_asked_for(make_app):
    app = make_app(audit_questions=True)
    from stack.pipeline.answer import Answer

    app.state.pipeline.ask = lambda question, **kw: Answer(question, "no answer", "extractive", [])
    assert client(app, ADMIN).post("/api/ask", json={"question": "비밀 질문입니다"}).status_code == 200
    (entry,) = contract.read_audit_events(app.state.settings.logs_path / "audit", event="question")
    assert entry["question"] == "비밀 질문입니다" and entry["route"] == "ask"


def test_audit_files_merge_in_time_order_rotate_cut_and_expire(tmp_path):
    folder = tmp_path / "audit"
    first = audit.AuditLog(folder, max_bytes=400, retention_days=1)
    second = audit.AuditLog(folder, max_bytes=400, retention_days=1)  # another process's writer
    for i in range(6):
        (first if i % 2 else second).record("upload", key="k", role="admin", client="c", n=i)
    assert [e["n"] for e in contract.read_audit_events(folder)] == list(range(6))
    files = sorted(folder.glob("audit-*.jsonl"))
    assert len(files) >= 2 and all(p.stat().st_size <= 400 + 200 for p in files)
    big = first.record("upload", key="k", role="admin", client="c", file_name="x" * 10_000, names=["y" * 600] * 30)
    assert all(len(line.encode()) < contract.AUDIT_MAX_LINE for p in folder.iterdir() for line in p.read_text().splitlines())
    assert big["file_name"] == "x" * contract.AUDIT_MAX_VALUE + "…" and big["cut"] == ["names"]
    assert [e["n"] for e in contract.read_audit_events(folder, event="upload") if "n" in e] == list(range(6))
    assert contract.read_audit_events(folder, since=datetime.now(UTC) + timedelta(seconds=5)) == []
    old = folder / "audit-old-1-20000101T000000000000.jsonl"
    old.write_text(json.dumps({"time": "2000-01-01T00:00:00+00:00", "event": "delete"}) + "\n")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    audit.AuditLog(folder, retention_days=1).record("restore", key=None, role=None, client=None)
    assert not old.exists()


def test_the_clis_own_action_is_a_line_in_a_file_of_its_own_and_unknown_events_are_refused(tmp_path):
    """``ragctl restore`` records itself through the contract (no writer of the stack's in the CLI): the
    same line, read back by the same reader, beside the API's files; an event the reader's
    ``--event`` would not know is refused where lines are made."""
    folder = tmp_path / "audit"
    audit.AuditLog(folder).record("upload", key="k", role="admin", client="c", n=1)
    written = contract.write_audit_action(folder, "restore", archive="/b.tar.gz", problems=[])
    (api_file, cli_file) = sorted(folder.glob(contract.AUDIT_FILE_GLOB), key=lambda p: p.stat().st_mtime_ns)
    assert api_file != cli_file and len(cli_file.read_text().splitlines()) == 1
    (read,) = contract.read_audit_events(folder, event="restore")
    assert read == written and read["key"].startswith("local:") and read["role"] == "operator"
    assert read["archive"] == "/b.tar.gz" and read["client"].startswith("local:")
    with pytest.raises(ValueError, match="not an audit event"):
        audit.AuditLog(folder).record("made_up", key=None, role=None, client=None)


def test_parse_since():
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert contract.parse_since("1h", now=now) == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert contract.parse_since("90s", now=now) == now - timedelta(seconds=90)
    assert contract.parse_since("2026-11-28T08:30") == datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        contract.parse_since("yesterday")


def test_limits_count_in_redis_and_fall_back_to_memory_when_it_is_away():
    class Down:
        def pipeline(self):
            raise ConnectionError("redis is down")

    limiter = Limiter(Down(), window_s=60)
    assert [limiter.hit("authfail", "a").value for _ in range(3)] == [1, 2, 3]
    assert limiter.peek("authfail", "a").value == 3 and limiter.peek("authfail", "b").value == 0
