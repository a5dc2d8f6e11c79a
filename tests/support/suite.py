"""What many test modules share that is not a fixture: the repository's folders, the corpus, and the
rule that a suite skipped here fails under CI=true.  (Fixtures live in conftest.py; a module imports
helpers from tests/support/, never from a conftest or another test module.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


def corpus_path() -> Path | None:
    candidate = Path(os.environ.get("RAGCTL_CORPUS") or REPO.parent / "shared" / "corpus")
    return candidate if (candidate / "MANIFEST.tsv").is_file() else None


def skip_or_fail(reason: str, suite: str, *, module: bool = False) -> None:
    """Skip with the reason, but fail under CI=true: there every suite must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the {suite} suite must run)")
    pytest.skip(reason, allow_module_level=module)


def require_corpus() -> Path:
    """The real-world corpus; skips with the reason when absent, but fails under CI=true."""
    path = corpus_path()
    if path is None:
        skip_or_fail("real-world corpus not found: set RAGCTL_CORPUS or check it out at ../shared/corpus", "corpus")
    return path


#: The formats corpus_documents picks: the ones a stack's workers parse from real office files.
CORPUS_FORMATS = {"hwp", "hwpx", "docx", "pdf"}


def corpus_documents(count: int, *, suite: str) -> list[Path]:
    """``count`` real documents of the corpus that are neither locked nor distribution copies,
    small enough for a 2-CPU machine, in a fixed order (by path); the swarm suite and its benchmark
    (bench/swarm_throughput.py) ingest them."""
    corpus = corpus_path()
    if corpus is None:
        skip_or_fail("the corpus (../shared/corpus) is missing", suite)
    chosen = []
    for line in (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        local, size, _, container, notes, *_ = line.split("\t")
        if (local.rsplit(".", 1)[-1].lower() in CORPUS_FORMATS and 4_000 <= int(size) <= 150_000
                and "PASSWORD" not in notes and "DISTRIBUTION" not in notes and container != "text"):
            chosen.append(corpus / local)
    assert len(chosen) >= count, f"only {len(chosen)} corpus documents fit"
    return sorted(chosen)[:count]
