"""Retrieval on slices of the real QA sets, through bench/retrieval.py (the real pipeline).

The full runs are in docs/benchmarks.md; here a slice checks in CI that the fused ranking is
never worse than its better input on either language, and that it stays near the goals.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.suite import REPO, require_corpus

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def run_bench(dataset: str, limit: int) -> dict:
    corpus = require_corpus()
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "retrieval.py"), "--dataset", str(corpus / "eval" / dataset),
         "--limit", str(limit), "--json"],
        capture_output=True, text=True, check=False, timeout=1200, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("dataset", "limit", "goal_r5"),
    [("korquad_v1_dev_a.json", 80, 0.975), ("squad_v1.1_dev_a.json", 80, 0.93)],
)
def test_fusion_is_never_worse_than_its_better_input(dataset, limit, goal_r5):
    result = run_bench(dataset, limit)
    assert result["n_questions"] > 200
    for k in ("recall@1", "recall@5", "recall@10", "mrr"):
        better = max(result["bm25"][k], result["dense"][k])
        assert result[k] >= better - 0.005, (k, result[k], result["bm25"][k], result["dense"][k])
    assert result["recall@5"] >= goal_r5 - 0.02
