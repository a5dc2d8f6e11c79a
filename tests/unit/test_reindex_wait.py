"""Waiting on a stack's reindex (ragctl/ops/gate.py ``_wait``, issue #28): the worker's heartbeat
(stack/worker/tasks.py ``_ReindexBeat``) runs in a real process writing to a real redis-server, and the
CLI reads the state as the API serves it (``stack.coordination``).  A long step that beats is waited on
until --wait-s; a worker killed with SIGKILL is noticed once its beat stops; a step no worker takes is
given up on; each says where the reindex stands and what to run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ragctl.ops import gate
from ragctl.ops.gate import ReindexStalled, _wait
from stack import coordination
from tests.support.redis_server import start_redis_server
from tests.support.suite import REPO

#: A worker's reindex step in its own process: the task's heartbeat, every 0.1 s, until killed.
BEATING = """
import sys, time
import redis
from stack.worker import tasks
tasks.REINDEX_BEAT_S = 0.1
tasks._ReindexBeat(redis.Redis(port=int(sys.argv[1])), "hr", {"state": "building", "action": "build", "done": 3})
print("beating", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory):
    server, client = start_redis_server(tmp_path_factory)
    yield client
    server.kill()
    server.wait(10)


class _Api:
    """What GET /api/collections/{name}/reindex answers: the state the worker wrote to Redis."""

    def __init__(self, r) -> None:
        self.r = r

    def reindex_state(self, collection: str) -> dict:
        return coordination.reindex_state(self.r, collection) or {"state": "queued"}


@pytest.mark.timeout(120)
def test_a_beating_step_is_waited_on_and_a_killed_worker_is_noticed(redis_client):
    worker = subprocess.Popen([sys.executable, "-c", BEATING, str(redis_client.connection_pool.connection_kwargs["port"])],
                              cwd=REPO, stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        assert worker.stdout.readline() == "beating\n"
        beats: list[int] = []

        def seen(state: dict) -> None:
            if state.get("beat") is not None and (not beats or beats[-1] != state["beat"]):
                beats.append(state["beat"])

        # Beating, with nothing rebuilt for longer than dead_after_s: alive; only --wait-s ends the wait.
        with pytest.raises(ReindexStalled, match="Stopped waiting") as waited:
            _wait(_Api(redis_client), "hr", seen, 0.05, wait_s=3.0, dead_after_s=1.5)
        assert len(beats) >= 3 and "3 documents rebuilt" in waited.value.message
        assert "--wait-s 6" in waited.value.hint

        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        with pytest.raises(ReindexStalled, match="stopped answering") as gone:
            _wait(_Api(redis_client), "hr", seen, 0.05, wait_s=None, dead_after_s=1.0)
        assert "building (3 documents rebuilt)" in gone.value.message and "old index answers" in gone.value.message
        assert "ragctl reindex -c hr" in gone.value.hint and gone.value.code == "reindex_stalled"
    finally:
        worker.kill()
        worker.wait(10)
        worker.stdout.close()


def test_a_step_no_worker_takes_is_given_up_and_a_settled_one_returns(redis_client, monkeypatch):
    monkeypatch.setattr(gate, "QUEUED_S", 0.5)
    coordination.set_reindex_state(redis_client, "queued-only", {"state": "queued", "action": "build"})
    with pytest.raises(ReindexStalled, match="No worker took") as nobody:
        _wait(_Api(redis_client), "queued-only", None, 0.05, wait_s=None)
    assert nobody.value.hint.startswith("ragctl ps")

    coordination.set_reindex_state(redis_client, "done", {"state": "built", "generation": 2, "beat": 7})
    assert _wait(_Api(redis_client), "done", None, 0.05)["generation"] == 2
