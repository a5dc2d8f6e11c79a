"""Worker-side cross-document batching (issue #9 item 5), through the real pipeline and model.

A worker runs several ingest tasks as threads of one process; each task announces its chunks
(``Embedder.expect``) and calls ``Pipeline.ingest_file`` as stack/worker/tasks.py does, and their
chunks meet in shared embedding batches.  What must hold: each document ends done with exactly its
own chunks (ids, count, vectors), and a cancel or a failure of one leaves the others alone."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tests.support.texts import TOPICS


def long_text(sentences: int) -> str:
    return " ".join(f"Record {i}: the nightly job on host h{i % 50} copied {i * 7 % 1000} files to vault {i % 9} "
                    f"and finished at {i % 24:02d}:{i % 60:02d}." for i in range(sentences))


def ingest_together(pipeline, paths: list[Path], cancel_after_first_batch: Path | None = None):
    """Each path ingested by its own thread, all at once, as the worker's tasks are."""
    embedder = pipeline.embedder_for("default")
    results, barrier = {}, threading.Barrier(len(paths))

    def run(path: Path) -> None:
        seen = {"batches": 0}

        def progress(stage: str, fraction: float) -> None:
            if stage == "embedding" and fraction > 0.2:  # one of its batches is done
                seen["batches"] += 1

        def should_cancel() -> bool:
            return path == cancel_after_first_batch and seen["batches"] > 0

        with embedder.expect():
            barrier.wait()
            results[path] = pipeline.ingest_file(path, progress=progress, should_cancel=should_cancel)

    threads = [threading.Thread(target=run, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


def assert_own_chunks(pipeline, path: Path, result) -> None:
    """Done, with the chunks of a clean run of this file alone, ids <doc>:<n>, and the vectors of its
    own texts."""
    assert result.status == "done", result.error
    expected = [chunk.text for chunk in pipeline.chunk(pipeline.parse(path))]
    record = pipeline.catalog.get("default", result.document_id)
    assert record.status == "done" and record.chunks == result.chunks == len(expected)
    rows = pipeline.store("default").document_chunks(result.document_id)
    assert [cid for cid, _, _ in rows] == [f"{result.document_id}:{n}" for n in range(len(expected))]
    assert [text for _, text, _ in rows] == expected
    stored = pipeline.store("default").get([cid for cid, _, _ in rows], with_vectors=True)
    alone = pipeline.embedder_for("default").encode(expected)
    for n, (cid, _, _) in enumerate(rows):
        assert float(np.dot(np.asarray(stored[cid][2]), alone[n])) > 0.999, (path.name, cid)


def test_documents_in_shared_batches_each_end_done_with_their_own_chunks(make_pipeline, tmp_path):
    pipeline = make_pipeline(embed_share_wait_ms=3000)
    paths = []
    for i, text in enumerate(TOPICS):
        path = tmp_path / f"small-{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    embedder = pipeline.embedder_for("default")
    before = embedder.shared.shared_batches
    results = ingest_together(pipeline, paths)
    assert embedder.shared.shared_batches > before  # they did meet in one batch
    for path in paths:
        assert_own_chunks(pipeline, path, results[path])


def test_a_cancel_or_a_failure_of_one_leaves_the_others_done(make_pipeline, tmp_path):
    pipeline = make_pipeline(embed_share_wait_ms=3000, embed_batch_size=8)
    small = []
    for i, text in enumerate(TOPICS[:4]):
        path = tmp_path / f"small-{i}.txt"
        path.write_text(text, encoding="utf-8")
        small.append(path)
    cancelled = tmp_path / "long.txt"
    cancelled.write_text(long_text(400), encoding="utf-8")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)  # fails in parsing, before embedding
    results = ingest_together(pipeline, [*small, cancelled, broken], cancel_after_first_batch=cancelled)
    assert results[cancelled].status == "cancelled"
    record = pipeline.catalog.get("default", results[cancelled].document_id)
    assert record.status == "cancelled"
    assert pipeline.store("default").document_chunks(results[cancelled].document_id) == []
    assert results[broken].status == "failed"
    for path in small:
        assert_own_chunks(pipeline, path, results[path])
    shared = pipeline.embedder_for("default").shared
    assert shared._queue == [] and not shared._leading
