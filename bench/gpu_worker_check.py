"""The GPU worker pool, checked on a machine with a GPU: a Celery worker with the pool ragctl's
workers use (threads: no fork, so CUDA is never initialised in a parent and inherited by a child)
loads the embedding model inside a pool thread, on CUDA, and serves concurrent tasks with one
model per process.

    python bench/gpu_worker_check.py --model DIR

Uses Celery's in-memory broker (no Redis on that machine); the last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()

    import torch
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery("gpu-check", broker="memory://", backend="cache+memory://")
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)

    @app.task(name="gpu.embed")
    def embed(texts: list[str]) -> dict:
        from stack.pipeline.embed import get_embedder

        embedder = get_embedder(args.model, "auto", 64)
        vectors = embedder.encode(texts)
        return {"device": str(embedder.model.device), "pid": os.getpid(), "thread": threading.current_thread().name,
                "model_id": id(embedder.model), "n": int(vectors.shape[0]), "dim": int(vectors.shape[1])}

    result: dict = {"cuda_available": torch.cuda.is_available(),
                    "cuda_initialized_before_worker": torch.cuda.is_initialized()}
    texts = [f"Record {i}: backups of host h{i % 7} run at {i % 24:02d}:00." for i in range(256)]
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30):
        started = time.perf_counter()
        pending = [embed.delay(texts) for _ in range(args.tasks)]
        answers = [p.get(timeout=300) for p in pending]
        result["seconds"] = round(time.perf_counter() - started, 2)
    result["devices"] = sorted({a["device"] for a in answers})
    result["pids"] = sorted({a["pid"] for a in answers})
    result["main_pid"] = os.getpid()
    result["threads"] = sorted({a["thread"] for a in answers})
    result["models_loaded"] = len({a["model_id"] for a in answers})
    result["vectors"] = sum(a["n"] for a in answers)
    result["ok"] = (result["devices"] == (["cuda:0"] if torch.cuda.is_available() else ["cpu"])
                    and result["pids"] == [os.getpid()] and result["models_loaded"] == 1
                    and not result["cuda_initialized_before_worker"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
