"""``health --deep``'s canary leaves nothing behind: its document goes whatever happened, a failed
removal is reported, and the emptied canary collection is not listed by doctor."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ragctl.client import StackError
from ragctl.ops.doctor import CANARY_COLLECTION, diagnose
from ragctl.ops.health import canary
from tests.support.fakes import FakeRuntime, healthy_probe


class FakeStack:
    """The API as the canary uses it: an in-memory collection of documents."""

    def __init__(self, *, ends: str = "done", delete_fails: bool = False) -> None:
        self.ends, self.delete_fails = ends, delete_fails
        self.docs: dict[str, dict[str, str]] = {}
        self.uploaded_from = None

    def upload(self, path, *, collection=None, replace=False):
        self.uploaded_from = path
        assert path.is_file()
        self.docs.setdefault(collection, {})["d" * 64] = path.read_text()
        return {"document_id": "d" * 64, "task_id": "t1"}

    def wait(self, task_ids, on_update, *, timeout_s=None):
        return {"t1": SimpleNamespace(status=self.ends, error=None if self.ends == "done" else "parse failed")}

    def search(self, query, *, collection=None, top_k=None, mode="hybrid"):
        return [SimpleNamespace(text=text) for text in self.docs.get(collection, {}).values()]

    def delete_document(self, id_prefix, *, collection=None):
        if self.delete_fails:
            raise StackError("unavailable", "Chroma did not answer")
        self.docs.get(collection, {}).pop(id_prefix, None)

    def documents(self, *, collection=None, status=None):
        return [SimpleNamespace(id=i) for i in self.docs.get(collection, {})]


@pytest.mark.parametrize("ends", ["done", "failed"])
def test_the_canary_removes_its_document_whatever_happened(ends):
    stack = FakeStack(ends=ends)
    check = canary("http://unused", None, client=stack)
    assert check.status == ("ok" if ends == "done" else "fail")
    assert stack.docs == {CANARY_COLLECTION: {}}
    assert not stack.uploaded_from.exists()  # nor its temporary file


def test_a_canary_that_cannot_remove_its_document_says_so_and_how_to_remove_it():
    stack = FakeStack(delete_fails=True)
    check = canary("http://unused", None, client=stack)
    assert check.status == "warn" and "was left in 'ragctl-canary'" in check.detail
    assert check.hint == f"ragctl documents delete {'d' * 12} --collection ragctl-canary --yes"


def test_doctor_does_not_list_the_emptied_canary_collection(project):
    collections = {"default": {"count": 7, "embed_model": None}, CANARY_COLLECTION: {"count": 0, "embed_model": None}}
    findings = {f.name: f for f in diagnose(project, runtime=FakeRuntime(
        project, probe=healthy_probe(chroma={"ok": True, "collections": collections})))}
    assert f"model {CANARY_COLLECTION}" not in findings and "model default" in findings
    assert findings["chroma"].detail.endswith("; 1 collection")


def test_a_canary_collection_that_still_holds_vectors_is_shown(project):
    collections = {"default": {"count": 7, "embed_model": None}, CANARY_COLLECTION: {"count": 2, "embed_model": None}}
    findings = {f.name: f for f in diagnose(project, runtime=FakeRuntime(
        project, probe=healthy_probe(chroma={"ok": True, "collections": collections})))}
    assert f"model {CANARY_COLLECTION}" in findings and findings["chroma"].detail.endswith("; 2 collections")
