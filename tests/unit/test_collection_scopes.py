"""Keys scoped to collections (issue #26, part 2) in-process: an ``editor`` on ``hr``, an ``ask`` key on
``finance`` and the admin walk every route with ids, task ids and collection names of the others.  A
document, task or collection outside a key's scope answers exactly as one that does not exist: the
same status, the same headers, the same body once the id asked about is replaced by a placeholder.
A hypothesis test draws roles, scopes and requests.  Real catalog, key store, Chroma and audit log;
the queue is the unit suite's recorder (tests/support/access.py)."""

from __future__ import annotations

import itertools
import json
import secrets
import uuid

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack import contract
from tests.support.access import ADMIN, client, new_key

COLLECTIONS = ("hr", "finance", "legal")


@pytest.fixture
def stack(make_app, tmp_path):
    """Three collections with two queued documents each, their task ids, and three keys."""
    app = make_app()
    admin = client(app, ADMIN)
    ids, tasks = {}, {}
    for name in COLLECTIONS:
        assert admin.post("/api/collections", json={"name": name}).status_code == 201
        files = [("files", (f"{name}-{n}.md", f"# {name} {n}\n\n{name} rule {n}\n".encode())) for n in (1, 2)]
        body = admin.post("/api/documents", params={"collection": name}, files=files).json()
        ids[name] = [d["document_id"] for d in body["documents"]]
        tasks[name] = [d["task_id"] for d in body["documents"]]

    def ask(question, *, collection=None, top_k=None):  # no model in the unit suite: the pipeline's answer
        from stack.pipeline.answer import Answer

        return Answer(question, f"answer from {collection}", "extractive", [])

    app.state.pipeline.ask = ask
    app.state.pipeline.search = lambda query, *, collection=None, top_k=None, mode="hybrid": []
    keys = {"admin": ADMIN, "editor": new_key(app, "hr-team", "editor", ["hr"]),
            "ask": new_key(app, "finance-readers", "ask", ["finance"])}
    return app, ids, tasks, keys


def same_answer(a, b, secret: str, stand_in: str) -> None:
    """Two responses are the same once the id each asked about is replaced by a placeholder."""
    assert a.status_code == b.status_code, (a.status_code, b.status_code, a.text, b.text)
    assert a.text.replace(secret, "<id>") == b.text.replace(stand_in, "<id>"), (a.text, b.text)
    skip = {"date", "content-length"}
    assert {k: v for k, v in a.headers.items() if k not in skip} == {k: v for k, v in b.headers.items() if k not in skip}
    assert a.headers.get("content-length") == b.headers.get("content-length") or len(secret) != len(stand_in)


def routes_of_a_document(document_id: str, collection: str | None) -> list[tuple[str, str, dict]]:
    query = {"collection": collection} if collection else {}
    return [("GET", f"/api/documents/{document_id}", query), ("GET", f"/api/documents/{document_id}/chunks", query),
            ("GET", f"/api/documents/{document_id}/text", query), ("DELETE", f"/api/documents/{document_id}", query),
            ("POST", f"/api/documents/{document_id}/retry", query)]


def test_out_of_scope_documents_and_tasks_answer_as_missing_ones(stack):
    app, ids, tasks, keys = stack
    editor = client(app, keys["editor"])
    missing_doc, missing_task = secrets.token_hex(32), str(uuid.uuid4())
    for secret in ids["finance"] + ids["legal"]:
        for collection in (None, "hr", "finance", "legal"):
            for (method, path, query), (_, stand_in_path, _) in zip(
                    routes_of_a_document(secret, collection), routes_of_a_document(missing_doc, collection),
                    strict=True):
                if method != "GET" and collection in (None, "hr"):
                    continue  # below: the writes, once
                same_answer(editor.request(method, path, params=query),
                            editor.request(method, stand_in_path, params=query), secret, missing_doc)
        same_answer(editor.get(f"/api/documents/{secret[:12]}"), editor.get(f"/api/documents/{missing_doc[:12]}"),
                    secret[:12], missing_doc[:12])
    for secret in tasks["finance"] + tasks["legal"]:
        for method in ("GET", "DELETE"):
            same_answer(editor.request(method, f"/api/tasks/{secret}"),
                        editor.request(method, f"/api/tasks/{missing_task}"), secret, missing_task)
        prefix = secret[:8]
        if not any(t.startswith(prefix) for t in tasks["hr"]):
            same_answer(editor.get(f"/api/tasks/{prefix}"), editor.get(f"/api/tasks/{missing_task[:8]}"),
                        prefix, missing_task[:8])
    # Deletes and retries of other collections' documents changed nothing.
    admin = client(app, ADMIN)
    for secret in ids["finance"] + ids["legal"]:
        for collection in ("finance", "legal"):
            editor.delete(f"/api/documents/{secret}", params={"collection": collection})
    assert sum(len(admin.get("/api/documents", params={"collection": c}).json()) for c in COLLECTIONS) == 6


def test_lists_counts_and_models_show_only_the_scope(stack):
    app, ids, tasks, keys = stack
    editor, asker, admin = client(app, keys["editor"]), client(app, keys["ask"]), client(app, ADMIN)
    assert {d["id"] for d in editor.get("/api/documents").json()} == set(ids["hr"])
    assert {d["id"] for d in asker.get("/api/documents").json()} == set(ids["finance"])
    assert {d["id"] for d in admin.get("/api/documents").json()} == set(itertools.chain(*ids.values()))
    assert {t["task_id"] for t in editor.get("/api/tasks").json()} == set(tasks["hr"])
    assert [c["name"] for c in editor.get("/api/collections").json()] == ["hr"]
    assert [c["name"] for c in asker.get("/api/collections").json()] == ["finance"]
    assert [c["name"] for c in admin.get("/api/collections").json()] == ["default", "finance", "hr", "legal"]
    assert editor.get("/api/whoami").json() == {"name": "hr-team", "role": "editor", "collections": ["hr"]}
    for other in ("finance", "legal", "no-such"):
        same_answer(editor.get(f"/api/collections/{other}"), editor.get("/api/collections/no-such"), other, "no-such")
        same_answer(editor.get("/api/documents", params={"collection": other}),
                    editor.get("/api/documents", params={"collection": "no-such"}), other, "no-such")
        same_answer(editor.get("/api/tasks", params={"collection": other}),
                    editor.get("/api/tasks", params={"collection": "no-such"}), other, "no-such")
        for route, field in (("/api/search", "query"), ("/api/ask", "question")):
            same_answer(editor.post(route, json={field: "rule", "collection": other}),
                        editor.post(route, json={field: "rule", "collection": "no-such"}), other, "no-such")
    assert editor.get("/api/collections/hr").json()["documents"] == 2
    # The OpenAI interface: models by key; the model picks the collection; another's is model_not_found.
    def sdk(key):
        return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client(app), max_retries=0)

    assert [m.id for m in sdk(keys["editor"]).models.list().data] == ["ragctl", "ragctl/hr"]
    assert [m.id for m in sdk(keys["ask"]).models.list().data] == ["ragctl", "ragctl/finance"]
    assert [m.id for m in sdk(ADMIN).models.list().data] == [
        "ragctl", "ragctl/default", "ragctl/finance", "ragctl/hr", "ragctl/legal"]
    chat = sdk(keys["ask"]).chat.completions.create(model="ragctl", messages=[{"role": "user", "content": "rule?"}])
    assert "answer from finance" in chat.choices[0].message.content  # 'ragctl': the key's own default
    with pytest.raises(openai.NotFoundError) as hidden:
        sdk(keys["ask"]).chat.completions.create(model="ragctl/hr", messages=[{"role": "user", "content": "rule?"}])
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(keys["ask"]).chat.completions.create(model="ragctl/nope", messages=[{"role": "user", "content": "q"}])
    assert hidden.value.body == json.loads(json.dumps(missing.value.body).replace("ragctl/nope", "ragctl/hr"))


def test_roles_editor_writes_in_its_collections_and_audit_names_the_collection(stack):
    app, ids, tasks, keys = stack
    editor, asker = client(app, keys["editor"]), client(app, keys["ask"])
    upload = [("files", ("new.md", b"# new\n\nhr text\n"))]
    made = editor.post("/api/documents", params={"collection": "hr"}, files=upload)
    assert made.status_code == 202, made.text
    assert editor.post("/api/documents", files=[("files", ("b.md", b"# b\n\nx\n"))]).status_code == 202  # hr: its default
    same_answer(editor.post("/api/documents", params={"collection": "finance"}, files=upload),
                editor.post("/api/documents", params={"collection": "no-such"}, files=upload), "finance", "no-such")
    assert asker.post("/api/documents", params={"collection": "finance"}, files=upload).status_code == 403
    assert editor.post("/api/collections", json={"name": "mine"}).status_code == 403
    assert editor.delete("/api/collections/hr").status_code == 403
    assert editor.delete(f"/api/documents/{ids['hr'][0]}", params={"collection": "hr"}).status_code == 200
    assert editor.delete(f"/api/tasks/{tasks['hr'][1]}").status_code == 200  # cancel a queued task of its own
    lines = [json.loads(line) for path in sorted((app.state.settings.logs_path / "audit").glob(contract.AUDIT_FILE_GLOB))
             for line in path.read_text().splitlines()]
    data_events = [e for e in lines if e["event"] in ("upload", "delete", "cancel", "retry", "question")]
    assert data_events and all(e.get("collection") for e in data_events), data_events
    assert {(e["event"], e["collection"]) for e in data_events if e["key"] == "hr-team"} >= {
        ("upload", "hr"), ("delete", "hr"), ("cancel", "hr")}
    # Keys: an editor's scope is checked; an admin key takes none.
    admin = client(app, ADMIN)
    refused = admin.post("/api/keys", json={"name": "x", "role": "admin", "collections": ["hr"]})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_scope"
    refused = admin.post("/api/keys", json={"name": "x", "role": "ask", "collections": ["a b"]})
    assert refused.status_code == 422 and "not a valid collection name" in refused.json()["error"]["message"]
    listed = {k["name"]: k["collections"] for k in admin.get("/api/keys").json()}
    assert listed == {"hr-team": ["hr"], "finance-readers": ["finance"]}


_names = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(role=st.sampled_from(["ask", "editor"]), scope=st.sets(st.sampled_from(COLLECTIONS), min_size=1),
       target=st.sampled_from(COLLECTIONS), which=st.integers(0, 1),
       route=st.sampled_from(["doc", "chunks", "text", "delete", "retry", "task", "cancel", "collection", "search"]))
def test_generated_keys_and_requests_never_tell_out_of_scope_from_missing(stack, role, scope, target, which, route):
    app, ids, tasks, _ = stack
    key = new_key(app, f"gen-{next(_names)}", role, sorted(scope))
    caller = client(app, key)
    document_id, task_id = ids[target][which], tasks[target][which]
    missing_doc, missing_task = secrets.token_hex(32), str(uuid.uuid4())
    query = {"collection": target}
    requests = {
        "doc": (("GET", f"/api/documents/{document_id}", query), ("GET", f"/api/documents/{missing_doc}", query)),
        "chunks": (("GET", f"/api/documents/{document_id}/chunks", query),
                   ("GET", f"/api/documents/{missing_doc}/chunks", query)),
        "text": (("GET", f"/api/documents/{document_id}/text", query),
                 ("GET", f"/api/documents/{missing_doc}/text", query)),
        "delete": (("DELETE", f"/api/documents/{document_id}", query),
                   ("DELETE", f"/api/documents/{missing_doc}", query)),
        "retry": (("POST", f"/api/documents/{document_id}/retry", query),
                  ("POST", f"/api/documents/{missing_doc}/retry", query)),
        "task": (("GET", f"/api/tasks/{task_id}", {}), ("GET", f"/api/tasks/{missing_task}", {})),
        "cancel": (("DELETE", f"/api/tasks/{task_id}", {}), ("DELETE", f"/api/tasks/{missing_task}", {})),
        "collection": (("GET", f"/api/collections/{target}", {}), ("GET", "/api/collections/no-such", {})),
        "search": (("POST", "/api/search", {"query": "rule", "collection": target}),
                   ("POST", "/api/search", {"query": "rule", "collection": "no-such"})),
    }
    (method, path, params), (_, stand_in_path, stand_in_params) = requests[route]
    secret, stand_in = {"task": (task_id, missing_task), "cancel": (task_id, missing_task),
                        "collection": (target, "no-such"), "search": (target, "no-such")}.get(
        route, (document_id, missing_doc))
    send = (lambda m, p, q: caller.request(m, p, json=q)) if route == "search" else (
        lambda m, p, q: caller.request(m, p, params=q))
    if target in scope:
        if route in ("delete", "retry", "task", "cancel") and role == "ask":
            assert send(method, path, params).status_code == 403  # the role, whatever the id
        elif route in ("doc", "chunks", "text", "collection", "search"):
            assert send(method, path, params).status_code == 200
        return
    same_answer(send(method, path, params), send(method, stand_in_path, stand_in_params), secret, stand_in)
    assert client(app, ADMIN).get(f"/api/documents/{document_id}", params=query).status_code == 200  # still there
