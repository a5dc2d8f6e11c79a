"""The uploaded bytes are stored under one safe name, whoever stores them: the API when it receives a
file, and the pipeline when it ingests one under a display name (a worker, or an embedded ingest).
A 92-character Korean name is 279 bytes: stored as it is, it failed the worker with ``File name too
long`` after the API had accepted the upload."""

from __future__ import annotations

import pytest

from stack.api.uploads import display_name
from stack.pipeline.storage import MAX_STORED_NAME_BYTES, FolderBlobs, safe_file_name

LONG_KOREAN = "가" * 92 + ".md"


def test_the_folder_store_keeps_the_bytes_under_the_safe_name(tmp_path):
    source = tmp_path / "received.part"
    source.write_bytes(b"# note\n")
    blobs = FolderBlobs(tmp_path / "uploads")
    ref = blobs.put("abc", LONG_KOREAN, source)
    assert ref == str(tmp_path / "uploads" / "abc" / safe_file_name(LONG_KOREAN))
    assert len(safe_file_name(LONG_KOREAN).encode()) <= MAX_STORED_NAME_BYTES
    assert blobs.exists(ref) and blobs.local(ref, tmp_path / "scratch").read_bytes() == b"# note\n"
    # Where the API already stored it (under the safe form of the record's name): nothing is copied.
    assert blobs.put("abc", display_name(LONG_KOREAN), source) == ref
    assert [p.name for p in (tmp_path / "uploads" / "abc").iterdir()] == [safe_file_name(LONG_KOREAN)]


@pytest.mark.slow
def test_a_document_ingested_under_a_long_korean_name_is_done(make_pipeline, tmp_path):
    pipeline = make_pipeline()
    received = tmp_path / "incoming" / safe_file_name(LONG_KOREAN)
    received.parent.mkdir()
    received.write_text("# 휴가\n\n입사 1년 이상 직원의 연차 휴가는 연 15일이다.\n", encoding="utf-8")
    result = pipeline.ingest_file(received, collection="default", force=True, display_name=LONG_KOREAN)
    assert result.status == "done", result
    (record,) = pipeline.documents(collection="default")
    assert record.file_name == LONG_KOREAN and record.status == "done"
    assert record.stored_path.endswith(safe_file_name(LONG_KOREAN))
