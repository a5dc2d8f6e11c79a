"""``ragctl sync --watch`` as a service runs it: a pass the stack cannot take (its API down or
restarting) is reported and tried again at the next interval; the watch does not end (a Compose
service that exits is restarted with a growing delay, and shows as down meanwhile)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.support.cli import free_port, make_project


def test_a_watching_sync_outlives_a_stack_it_cannot_reach(tmp_path):
    project = make_project(tmp_path / "p")
    share = tmp_path / "share"
    share.mkdir()
    (share / "a.txt").write_text("연차 휴가는 15일이다.", encoding="utf-8")
    env = {**os.environ, "RAGCTL_API_URL": f"http://127.0.0.1:{free_port()}", "RAG_API_KEY": "rk_test",
           "RAGCTL_PROJECT": str(project), "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "ragctl", "sync", str(share), "--watch", "--interval", "1s"],
                               cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(15)
        still_watching = process.poll() is None
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert still_watching, err
    assert err.count("This pass failed") >= 2, err
    assert "not reachable" in err and "Trying again in 1s" in err, err
