"""End-to-end ingest throughput of a swarm stack with workers on one node vs two (issue #12).

A real three-engine swarm on this machine (tests/support/swarm_cluster.py: each engine in its own network,
PID, mount and UTS namespaces): n1 holds the data services, the workers run on n2 (and n3).  Each
worker replica is limited to ``--worker-cpus`` CPUs.  Phase "1 node": n3 drained, one worker on n2.
Phase "2 nodes": n3 active, one worker on each of n2 and n3.  Each phase ingests the same corpus
documents through Nginx and the API (``ragctl ingest``, waiting for the last document), into a fresh
collection per run, ``--runs`` times, alternating the phases; throughput = chunks / wall seconds from
the first upload to the last document done.

    python bench/swarm_throughput.py --documents 40 --runs 2

Needs root, Docker (the host engine holds ragctl:e2e: pytest tests/swarm builds it) and the corpus.
The last line is one JSON object: per phase, the runs' chunks/s and docs/s, the median ratio, and the
machine.  On one physical machine both nodes share its cores: the ratio says how well the stack
spreads work across nodes, not what a second server's own cores would add.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ragctl(root: Path, env: dict, *args: str, timeout: float = 1800) -> dict | list:
    done = subprocess.run([sys.executable, "-m", "ragctl", "-p", str(root), *args, "--json"], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env, "NO_COLOR": "1"}, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"ragctl {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--worker-cpus", type=float, default=1.0)
    parser.add_argument("--image", default="ragctl:e2e")
    args = parser.parse_args()

    from tests.support.suite import corpus_documents
    from tests.support.swarm_cluster import SwarmCluster

    documents = corpus_documents(args.documents, suite="swarm")
    results: dict[str, list[dict]] = {"1 node": [], "2 nodes": []}
    with SwarmCluster(3) as cluster, tempfile.TemporaryDirectory(prefix="ragctl-bench-swarm-") as work:
        loaded = cluster.load_image(args.image)
        env = cluster.env("n1")
        root = Path(work) / "stack"
        subprocess.run([sys.executable, "-m", "ragctl", "init", str(root), "--runtime", "swarm", "--workers", "1",
                        "--no-gpu", "--yes"], check=True, capture_output=True, env={**os.environ, **env})
        from ragctl.project import set_config_value

        tag = args.image.split(":", 1)[1]
        for key, value in {"tag": tag, "api_cpus": 1, "worker_cpus": args.worker_cpus, "worker_memory": "3g",
                               "nginx_port": 8443, "nginx_http_port": 0, "swarm_encrypted": False}.items():
            set_config_value(root, "stack", key, value)
        ragctl(root, env, "nodes", "label", "n1", "data=true")
        ragctl(root, env, "up", "--wait", "900", timeout=1200)
        folder = Path(work) / "docs"
        folder.mkdir()
        for path in documents:
            (folder / path.name).symlink_to(path)
        for run in range(args.runs):
            for phase in (("1 node", "2 nodes") if run % 2 == 0 else ("2 nodes", "1 node")):
                cluster.docker("n1", "node", "update", "--availability",
                               "drain" if phase == "1 node" else "active", "n3")
                ragctl(root, env, "scale", f"worker={1 if phase == '1 node' else 2}", timeout=900)
                collection = f"bench{run}{phase[0]}"
                started = time.monotonic()
                ingested = ragctl(root, env, "ingest", str(folder), "--collection", collection, timeout=3600)
                seconds = time.monotonic() - started
                rows = ingested["results"]
                chunks = sum(int(r.get("chunks") or 0) for r in rows)
                done = sum(1 for r in rows if r.get("status") == "done")
                results[phase].append({"seconds": round(seconds, 1), "documents": done, "chunks": chunks,
                                       "chunks_per_s": round(chunks / seconds, 2), "docs_per_s": round(done / seconds, 3)})
                print(phase, results[phase][-1], flush=True)
        ragctl(root, env, "down", "--volumes", "--yes", timeout=600)
    one = statistics.median(r["chunks_per_s"] for r in results["1 node"])
    two = statistics.median(r["chunks_per_s"] for r in results["2 nodes"])
    print(json.dumps({"phases": results, "ratio_2_over_1": round(two / one, 2), "worker_cpus": args.worker_cpus,
                      "image_load_s": round(max(loaded.values()), 1), "machine": machine()}, ensure_ascii=False))


if __name__ == "__main__":
    main()
