"""Collections and scoped keys against a real stack (issue #26): the local runtime's redis-server,
Chroma server, uvicorn API and Celery workers.  Three collections with ingested documents and three
keys (the admin; an ``editor`` on ``hr``; an ``ask`` key on ``finance``) walk every route with the
ids, task ids, chunk ids and names of the other collections: nothing out of scope appears in any
status, header or body, and out of scope answers as missing.  The same walk in-process, with a
hypothesis test over keys and scopes, is tests/unit/test_collection_scopes.py."""

from __future__ import annotations

import secrets
import shutil
import uuid

import httpx
import openai
import pytest

from tests.support.cli import FREE_PORTS, as_json, output, ragctl
from tests.support.local_stack import Stack
from tests.support.suite import skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

if shutil.which("redis-server") is None:
    skip_or_fail("redis-server not installed (apt-get install redis-server)", "stack", module=True)

TEXTS = {"hr": ("leave.md", "# 휴가\n\n연차 휴가는 15일이다. 병가는 30일까지다.\n"),
         "finance": ("travel-costs.md", "# 출장\n\n출장비는 하루 10만 원까지 정산한다.\n"),
         "legal": ("contracts.md", "# 계약\n\n계약서는 법무팀이 5일 안에 검토한다.\n")}


@pytest.fixture(scope="module")
def teams(tmp_path_factory):
    root = tmp_path_factory.mktemp("teams")
    (root / "ragctl.toml").write_text('[project]\nname = "teams"\n' + FREE_PORTS, encoding="utf-8")
    stack = Stack(root)
    try:
        owned = {}
        for collection, (name, text) in TEXTS.items():
            assert stack.http.post("/api/collections", json={"name": collection}).status_code == 201
            (entry,) = stack.http.post("/api/documents", params={"collection": collection},
                                       files=[("files", (name, text.encode()))]).json()["documents"]
            stack.wait_for(entry["task_id"], ("done",), 180)
            chunks = stack.http.get(f"/api/documents/{entry['document_id']}/chunks",
                                    params={"collection": collection}).json()
            owned[collection] = {"document": entry["document_id"], "task": entry["task_id"], "file": name,
                                 "chunks": [c["chunk_id"] for c in chunks]}
        keys = {"admin": stack.key}
        for name, role, scope in (("hr-team", "editor", "hr"), ("finance-readers", "ask", "finance")):
            made = ragctl(root, "keys", "create", "--role", role, "--collections", scope, "--name", name, "--json")
            assert made.exit_code == 0, output(made)
            assert as_json(made)["collections"] == [scope]
            keys[role] = as_json(made)["key"]
        yield stack, owned, keys
    finally:
        stack.runtime.down()


def secrets_of(owned: dict, collections) -> list[str]:
    """Everything that would reveal a collection: its document id (and its 12-character form), task
    id, chunk ids and file name."""
    found = []
    for name in collections:
        item = owned[name]
        found += [item["document"], item["document"][:12], item["task"], item["file"], *item["chunks"]]
    return found


def requests_for(owned: dict) -> list[tuple[str, str, dict]]:
    """Every route, with every other collection's ids and names."""
    calls = [("GET", "/api/documents", {}), ("GET", "/api/tasks", {}), ("GET", "/api/collections", {}),
             ("GET", "/v1/models", {}), ("GET", "/api/whoami", {}), ("GET", "/metrics", {})]
    for collection, item in owned.items():
        doc, task = item["document"], item["task"]
        for params in ({}, {"collection": collection}):
            calls += [("GET", f"/api/documents/{doc}", params), ("GET", f"/api/documents/{doc}/chunks", params),
                      ("GET", f"/api/documents/{doc}/text", params),
                      ("POST", f"/api/documents/{doc}/retry", params), ("GET", f"/api/documents/{doc[:12]}", params)]
        calls += [("GET", f"/api/documents/{chunk}", {}) for chunk in item["chunks"]]
        calls += [("GET", f"/api/tasks/{task}", {}), ("GET", f"/api/tasks/{task[:8]}", {}),
                  ("GET", "/api/tasks", {"collection": collection}),
                  ("GET", "/api/documents", {"collection": collection}),
                  ("GET", f"/api/collections/{collection}", {}), ("GET", f"/v1/models/ragctl/{collection}", {}),
                  ("POST", "/api/search", {"json": {"query": "규정 일", "collection": collection}}),
                  ("POST", "/api/ask", {"json": {"question": "며칠인가요?", "collection": collection}}),
                  ("POST", "/v1/chat/completions", {"json": {"model": f"ragctl/{collection}",
                                                             "messages": [{"role": "user", "content": "며칠?"}]}})]
    calls += [("POST", "/api/search", {"json": {"query": "규정 일"}}),
              ("POST", "/v1/chat/completions", {"json": {"model": "ragctl",
                                                         "messages": [{"role": "user", "content": "며칠?"}]}})]
    return calls


def send(client: httpx.Client, method: str, path: str, params: dict) -> httpx.Response:
    if "json" in params:
        return client.request(method, path, json=params["json"])
    return client.request(method, path, params=params)


def test_every_route_with_every_key_shows_nothing_out_of_scope(teams):
    stack, owned, keys = teams
    scopes = {"editor": ["hr"], "ask": ["finance"]}
    for role, scope in scopes.items():
        client = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=60)
        hidden = secrets_of(owned, [c for c in owned if c not in scope])
        for method, path, params in requests_for(owned):
            response = send(client, method, path, params)
            asked = path + " " + str(params)
            seen = " ".join(f"{k}: {v}" for k, v in response.headers.items()) + " " + response.text
            # The request's own words are echoed ("No document with id '…'"): nothing else of another collection.
            for word in hidden:
                if word in asked:
                    seen = seen.replace(word, "<asked>")
                assert word not in seen, (role, method, path, params, word, response.status_code, response.text)
            assert response.status_code < 500, (method, path, response.text)
        # What a key may see it does see: its documents, and answers cite only them.
        mine = owned[scope[0]]
        listed = client.get("/api/documents").json()
        assert [d["id"] for d in listed] == [mine["document"]]
        hits = client.post("/api/search", json={"query": "일", "collection": scope[0]}).json()["hits"]
        assert hits and {h["document_id"] for h in hits} == {mine["document"]}


def test_out_of_scope_ids_answer_as_missing_and_the_sdk_sees_models_by_key(teams):
    stack, owned, keys = teams
    editor = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {keys['editor']}"}, timeout=60)
    missing_doc, missing_task = secrets.token_hex(32), str(uuid.uuid4())
    for collection in ("finance", "legal"):
        doc, task = owned[collection]["document"], owned[collection]["task"]
        for method, suffix in (("GET", ""), ("GET", "/chunks"), ("GET", "/text"), ("DELETE", ""), ("POST", "/retry")):
            a = editor.request(method, f"/api/documents/{doc}{suffix}", params={"collection": collection})
            b = editor.request(method, f"/api/documents/{missing_doc}{suffix}", params={"collection": collection})
            assert (a.status_code, a.text.replace(doc, "<id>")) == (b.status_code, b.text.replace(missing_doc, "<id>"))
        a, b = editor.get(f"/api/tasks/{task}"), editor.get(f"/api/tasks/{missing_task}")
        assert (a.status_code, a.text.replace(task, "<id>")) == (b.status_code, b.text.replace(missing_task, "<id>"))
    assert stack.http.get(f"/api/documents/{owned['finance']['document']}",
                          params={"collection": "finance"}).json()["status"] == "done"  # nothing was deleted

    def sdk(key):
        return openai.OpenAI(base_url=stack.api_url.rstrip("/") + "/v1", api_key=key, max_retries=0)

    assert [m.id for m in sdk(keys["editor"]).models.list().data] == ["ragctl", "ragctl/hr"]
    assert [m.id for m in sdk(keys["ask"]).models.list().data] == ["ragctl", "ragctl/finance"]
    chat = sdk(keys["admin"]).chat.completions.create(model="ragctl/hr",
                                                     messages=[{"role": "user", "content": "연차 휴가는 며칠인가요?"}])
    assert {s["file"] for s in chat.ragctl["sources"]} == {"leave.md"} and "15일" in chat.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        sdk(keys["ask"]).chat.completions.create(model="ragctl/hr", messages=[{"role": "user", "content": "며칠?"}])


def test_collections_and_sync_through_the_stack_cli(teams, tmp_path):
    """The CLI against the running stack: collections list/show/delete over /api/collections, and
    ``ragctl sync`` through the API (uploads named by their path in the folder, a move renamed with
    PATCH, the old version of a changed file deleted after the new one is done)."""
    stack, owned, _ = teams
    root = stack.root
    listed = as_json(ragctl(root, "collections", "list", "--json"))
    assert {c["name"]: c["documents"] for c in listed} == {"default": 0, "finance": 1, "hr": 1, "legal": 1}
    assert as_json(ragctl(root, "collections", "show", "hr", "--json"))["chunks"] == len(owned["hr"]["chunks"])
    share = tmp_path / "share"
    (share / "a").mkdir(parents=True)
    (share / "a" / "rule.md").write_text("# 규정\n\n복지 포인트는 연 100만 원이다.\n", encoding="utf-8")
    (share / "a" / "memo.md").write_text("# 메모\n\n회의는 월요일이다.\n", encoding="utf-8")
    first = ragctl(root, "sync", str(share), "-c", "synced", "--json")
    assert first.exit_code == 0, output(first)
    names = {d["file_name"]: d["status"] for d in stack.http.get("/api/documents", params={"collection": "synced"}).json()}
    assert names == {"a/rule.md": "done", "a/memo.md": "done"}
    (share / "b").mkdir()
    (share / "a" / "memo.md").rename(share / "b" / "memo.md")
    (share / "a" / "rule.md").write_text("# 규정\n\n복지 포인트는 연 200만 원으로 올랐다.\n", encoding="utf-8")
    second = ragctl(root, "sync", str(share), "-c", "synced", "--json")
    assert second.exit_code == 0, output(second)
    summary = as_json(second)["summary"]
    assert (summary["changed"], summary["moved"]) == (1, 1)
    documents = stack.http.get("/api/documents", params={"collection": "synced"}).json()
    assert sorted(d["file_name"] for d in documents) == ["a/rule.md", "b/memo.md"]
    hits = stack.http.post("/api/search", json={"query": "회의 월요일", "collection": "synced"}).json()["hits"]
    assert hits[0]["file"] == "b/memo.md"  # the citation follows the move
    deleted = ragctl(root, "collections", "delete", "synced", "--yes", "--json")
    assert deleted.exit_code == 0 and as_json(deleted)["documents"] == 2
    assert stack.http.get("/api/collections/synced").status_code == 404
    assert stack.http.get("/api/documents", params={"collection": "synced"}).json() == []
