"""``ragctl sync`` over a tree of small files (issue #26): the time of a pass with nothing changed
(goal <= 5 s for 10,000 files), and, with one file changed, the time until a search finds its new
text minus that file's own ingest time (goal <= 2 s plus the --watch interval).

The tree's documents are in the catalog as a first pass leaves them; only the changed file is
embedded (the packaged model), so the benchmark measures the sync, not 10,000 ingests."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import time

from _common import machine, temporary_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from ragctl import sync
    from ragctl.backends.embedded import EmbeddedBackend
    from ragctl.cli.sync import target_for
    from stack.pipeline.catalog import DocumentRecord

    pipeline, folder = temporary_pipeline()
    share = folder / "share"
    try:
        records = []
        for n in range(args.files):
            path = share / f"d{n % 100:02}" / f"note-{n:05}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = f"# note {n}\n\nrule {n} says {n * 7} days.\n".encode()
            path.write_bytes(data)
            records.append(DocumentRecord(id=hashlib.sha256(data).hexdigest(), collection="bench",
                                          file_name=path.relative_to(share).as_posix(), size=len(data),
                                          status="done", chunks=1))
        started = time.perf_counter()
        for record in records:
            pipeline.catalog.upsert(record)
        filled = time.perf_counter() - started
        target = target_for(EmbeddedBackend(pipeline, folder), "bench")
        cache = sync.StatCache(folder / "cache.json")
        started = time.perf_counter()
        first = sync.sync_once(share, target, cache, delete=False, dry_run=False)  # hashes every file
        first_pass = time.perf_counter() - started
        assert first.counts()["unchanged"] == args.files, first.counts()
        unchanged = []
        for _ in range(args.runs):
            started = time.perf_counter()
            plan = sync.sync_once(share, target, cache, delete=False, dry_run=False)
            unchanged.append(time.perf_counter() - started)
            assert plan.counts()["unchanged"] == args.files
        pipeline.warm_up()
        changed = share / "d07" / "note-00007.md"
        changed.write_bytes(b"# note 7\n\nrule 7 now says forty-two zebra days.\n")
        started = time.perf_counter()
        plan = sync.sync_once(share, target, cache, delete=False, dry_run=False)
        found = any("zebra" in hit.text for hit in pipeline.search("forty-two zebra days", collection="bench"))
        total = time.perf_counter() - started
        (step,) = plan.of(sync.CHANGED)
        ingest_s = sum(pipeline.document(step.document_id, collection="bench").timings.values())
        result = {
            "files": args.files, "catalog_fill_s": round(filled, 2), "first_pass_s": round(first_pass, 3),
            "unchanged_pass_s_median": round(statistics.median(unchanged), 3),
            "unchanged_pass_s_max": round(max(unchanged), 3),
            "one_changed_until_searchable_s": round(total, 3), "its_ingest_s": round(ingest_s, 3),
            "sync_overhead_s": round(total - ingest_s, 3), "found": found, "machine": machine(),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
