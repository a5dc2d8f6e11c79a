"""Issue #15 / #10 item 6: every task id the API handed out answers with its document's current
state; prefixes; ambiguity; the recent list; the catalog's task history as a fencing token.  The
routes in-process (queue and Redis stood in for, as in test_api_documents), the catalog on disk."""

from __future__ import annotations

import sqlite3

import pytest

from stack.names import DocumentStatus
from stack.pipeline.catalog import Catalog, DocumentRecord
from tests.support.documents_api import note, set_status, upload

T1 = "abcd1111-0000-4000-8000-000000000001"
T2 = "abcd2222-0000-4000-8000-000000000002"


def record(doc: str, task: str | None, status=DocumentStatus.QUEUED) -> DocumentRecord:
    return DocumentRecord(id=doc, collection="default", file_name=f"{doc}.md", size=1, status=status, task_id=task)


def test_history_fences_writes_of_a_superseded_or_deleted_task(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    first = catalog.upsert(record("d1", T1, DocumentStatus.EMBEDDING))
    assert not first.fenced
    catalog.upsert(record("d1", T2))  # re-queued under a new id: the new id is current
    late = catalog.upsert(record("d1", T1, DocumentStatus.DONE))  # the old worker comes back
    assert late.fenced and catalog.get("default", "d1").task_id == T2
    assert catalog.task_ids("default", "d1") == [T1, T2]
    assert catalog.by_task(T1).task_id == T2 and catalog.by_task(T2).status == DocumentStatus.QUEUED
    catalog.touch("default", "d1", "old-worker", task_id=T1)  # a superseded worker does not speak for it
    assert catalog.get("default", "d1").worker is None
    catalog.delete("default", "d1")
    assert catalog.upsert(record("d1", T2, DocumentStatus.DONE)).fenced  # deleted: never written back
    assert catalog.get("default", "d1") is None and catalog.by_task(T1) is None
    assert not catalog.upsert(record("d2", None)).fenced  # embedded records carry no task: unfenced


def test_prefixes_and_recent_tasks(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.upsert(record("d1", T1))
    catalog.upsert(record("d2", T2))
    assert [e.task_id for e in catalog.find_tasks("ABCD")] == [T2, T1]
    assert [e.task_id for e in catalog.find_tasks("abcd1")] == [T1]
    assert catalog.find_tasks("abc") == [] and catalog.find_tasks("ab%") == [] and catalog.find_tasks("abcd_") == []
    recent = catalog.recent_tasks(10)
    assert [(e.task_id, e.current, e.record.id) for e in recent] == [(T2, True, "d2"), (T1, True, "d1")]


def test_a_catalog_from_before_the_history_keeps_its_task_ids(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).upsert(record("d1", T1))
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE task_ids")
    assert Catalog(path).by_task(T1).id == "d1" and Catalog(path).task_ids("default", "d1") == [T1]


def test_every_task_id_handed_out_answers_after_a_retry(api, tmp_path):
    path = note(tmp_path, "a.md", "alpha")
    first = upload(api, path).json()["documents"][0]
    set_status(api, first["document_id"], DocumentStatus.FAILED)
    second = api.post(f"/api/documents/{first['document_id']}/retry").json()
    assert second["task_id"] != first["task_id"]
    old = api.get(f"/api/tasks/{first['task_id']}")
    assert old.status_code == 200
    body = old.json()
    assert body["task_id"] == first["task_id"] and body["current_task_id"] == second["task_id"]
    assert body["superseded"] and body["status"] == "queued"
    assert body["task_ids"] == [first["task_id"], second["task_id"]]
    current = api.get(f"/api/tasks/{second['task_id'][:8]}").json()  # a prefix
    assert current["task_id"] == second["task_id"] and not current["superseded"]
    listed = api.get("/api/tasks").json()
    assert [t["task_id"] for t in listed] == [second["task_id"], first["task_id"]]
    assert [t["current"] for t in listed] == [True, False]
    assert listed[1]["reason"] == "registered" and listed[0]["reason"].startswith("registered again")
    # Cancel through the old id cancels the document's current task.
    assert api.delete(f"/api/tasks/{first['task_id']}").json()["status"] == "cancelled"
    assert api.delete(f"/api/documents/{first['document_id']}").status_code == 200
    assert api.get(f"/api/tasks/{first['task_id']}").status_code == 404  # the document is gone


def test_an_ambiguous_prefix_names_the_matches(api):
    api.catalog.upsert(record("d1", T1))
    api.catalog.upsert(record("d2", T2))
    response = api.get("/api/tasks/abcd")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "ambiguous" and T1 in error["message"] and T2 in error["message"]
    assert api.get("/api/tasks/abcd2").json()["task_id"] == T2
    assert api.get("/api/tasks/abc").status_code == 404  # too short to look up
    assert api.get("/api/tasks", params={"limit": 1}).json()[0]["task_id"] == T2


@pytest.mark.parametrize("garbage", ["%", "_", "x" * 300, "한글", "[/]"])
def test_odd_task_ids_are_404(api, garbage):
    assert api.get(f"/api/tasks/{garbage}").status_code == 404
