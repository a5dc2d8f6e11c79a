"""The embedded ingest (Pipeline.ingest_file) follows the same intake policy as the API: skip what is
done or being ingested, take over what failed, was cancelled or was abandoned.  No model is loaded:
an admitted file is stopped at the model check."""

from __future__ import annotations

import time

import pytest

from stack.names import DocumentStatus, IngestOutcome
from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.errors import PipelineError
from stack.pipeline.service import Pipeline, sha256_file
from stack.settings import load_settings


class Admitted(PipelineError):
    code = "admitted"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    pipeline = Pipeline(load_settings(tmp_path / "project"))

    def stop(collection):
        raise Admitted("admitted: would parse now")

    monkeypatch.setattr(pipeline, "check_model", stop)
    path = tmp_path / "n.md"
    path.write_text("# N\n\nnote\n", encoding="utf-8")

    def with_record(status, **fields):
        record = DocumentRecord(id=sha256_file(path), collection="default", file_name="n.md", size=1,
                                status=status, task_id="t-9", **fields)
        pipeline.catalog.upsert(record)
        return pipeline.ingest_file(path)

    return pipeline, path, with_record


@pytest.mark.parametrize(("status", "note"), [(DocumentStatus.DONE, "already ingested"),
                                              (DocumentStatus.QUEUED, "already queued"),
                                              (DocumentStatus.EMBEDDING, "already embedding")])
def test_done_queued_or_busy_is_skipped(setup, status, note):
    pipeline, _, with_record = setup
    result = with_record(status, heartbeat_at=time.time())
    assert result.status == IngestOutcome.SKIPPED and note in result.note and "--force" in result.note
    assert pipeline.catalog.list()[0].status == status  # untouched


@pytest.mark.parametrize("status", [DocumentStatus.FAILED, DocumentStatus.CANCELLED])
def test_failed_or_cancelled_is_ingested_again(setup, status):
    result = setup[2](status)
    assert result.status == IngestOutcome.FAILED and result.error["code"] == "admitted"


def test_an_abandoned_ingest_is_taken_over(setup):
    pipeline, _, with_record = setup
    result = with_record(DocumentStatus.PARSING, heartbeat_at=time.time() - pipeline.settings.stale_after_s - 5)
    assert result.error["code"] == "admitted"


def test_force_ingests_whatever_the_status(setup):
    pipeline, path, with_record = setup
    with_record(DocumentStatus.DONE)
    assert pipeline.ingest_file(path, force=True).error["code"] == "admitted"
