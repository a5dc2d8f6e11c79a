"""``ragctl top`` in a real terminal (tmux) over a real local stack (redis-server, Chroma, uvicorn,
one Celery worker): the queue it shows fills and falls back to 0 as the worker takes a folder of
documents, the worker's current document appears, and ``q`` ends it with the terminal as it was."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragctl.runtime.local import LocalRuntime
from tests.support.cli import FREE_PORTS
from tests.support.suite import skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

for tool, package in (("redis-server", "redis-server"), ("tmux", "tmux")):
    if shutil.which(tool) is None:
        reason = f"{tool} not installed (apt-get install {package}; scripts/setup-test-host.sh does)"
        skip_or_fail(reason, "top", module=True)

FILES = 20


class Tmux:
    """One tmux server of our own (its own socket), one 120×40 session running bash."""

    def __init__(self, folder: Path) -> None:
        self.socket = f"ragctl-top-{os.getpid()}"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("NO_COLOR", None)
        env.pop("TMUX", None)
        self.env = env
        self("new-session", "-d", "-s", "top", "-x", "120", "-y", "40", "-c", str(folder),
             "bash --noprofile --norc")

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              env=self.env, timeout=30).stdout

    def type(self, text: str) -> None:
        self("send-keys", "-t", "top", "-l", text)
        self("send-keys", "-t", "top", "Enter")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "top")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.search(pattern, screen := self.screen())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen after {timeout_s} s:\n{screen}")
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("top")
    (root / "ragctl.toml").write_text('[project]\nname = "top-test"\nruntime = "local"\n\n' + FREE_PORTS,
                                      encoding="utf-8")
    runtime = LocalRuntime(root)
    runtime.up(workers=1, wait_s=240)
    yield root
    runtime.down()


def _inbox(folder: Path) -> list[str]:
    """Small documents of a few chunks each: long enough that the worker is seen holding one."""
    folder.mkdir()
    names = []
    for n in range(FILES):
        name = f"memo-{n:02d} [v2].txt"
        lines = [f"Memo {n}, item {i}: the backup of shelf {i % 7} moved {n * i % 97} boxes to room {i % 5}, "
                 f"and the audit of week {i % 52} closed with {i % 3} open questions." for i in range(6)]
        (folder / name).write_text("\n".join(lines), encoding="utf-8")
        names.append(name)
    return names


def ragctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragctl", "-p", str(root), *args], capture_output=True, text=True,
                          timeout=300, check=False, stdin=subprocess.DEVNULL)


def test_top_follows_the_queue_and_quits_on_q(project, tmp_path):
    # --once and --json read the same /metrics
    once = ragctl(project, "top", "--json")
    assert once.returncode == 0, once.stdout + once.stderr
    first = json.loads(once.stdout)
    assert first["queue_depth"] == 0 and len(first["workers"]) == 1, first

    names = _inbox(tmp_path / "inbox")
    tmux = Tmux(tmp_path)
    try:
        command = f"{shlex.quote(sys.executable)} -m ragctl -p {shlex.quote(str(project))} top"
        tmux.type(f"stty -g > before.txt; {command}; echo top-exit=$?; stty -g > after.txt")
        tmux.wait_for(r"queue 0\b", 60)
        tmux.wait_for(r"@\S+ .*idle", 30)  # the one worker, with nothing in hand

        queued = ragctl(project, "ingest", str(tmp_path / "inbox"), "--no-wait")
        assert queued.returncode == 0, queued.stdout + queued.stderr

        depths, holding, screens, started = [], set(), [], time.monotonic()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            screen = tmux.screen()
            screens.append(screen)
            depth = re.search(r"queue (\d+)\b", screen)
            if depth:
                depths.append(int(depth.group(1)))
            holding |= {name for name in names if re.search(rf"@\S+ .*{re.escape(name)}", screen)}
            if max(depths, default=0) > 0 and depths[-1] == 0 and re.search(rf"done {FILES}\b", screen):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the queue never emptied on the screen: depths {depths}\n{screens[-1]}")

        print(f"queue of {FILES} drained in {time.monotonic() - started:.1f} s; depths seen: {depths}; "
              f"held: {len(holding)}")
        peak = depths.index(max(depths))
        assert max(depths) >= 2, depths  # the folder was queued faster than one worker takes it
        falling = depths[peak:]
        # It falls step by step (beat's reaper message may add one for a moment: not strictly monotonic)
        assert falling[-1] == 0 and len(set(falling)) >= 3, depths
        assert holding, "no capture showed the worker holding a document:\n" + "\n----\n".join(screens[-5:])
        last = screens[-1]
        assert "API p95" in last and "recent failures" in last

        tmux("send-keys", "-t", "top", "q")
        exited = tmux.wait_for(r"top-exit=(\d+)", 30)
        assert exited.group(1) == "0"
        tmux.wait_for(r"top-exit=0\s*\n.*[$#]", 30)  # the shell's prompt is back
        before, after = ((tmp_path / n).read_text().strip() for n in ("before.txt", "after.txt"))
        assert before and before == after, (before, after)  # cbreak mode undone: the terminal as it was
        assert "queue" not in tmux.screen()  # the alternate screen is gone
    finally:
        tmux.close()


def test_top_on_a_stack_that_is_down_says_so_and_keeps_trying(project, tmp_path):
    """Ctrl-C quits too; --once on a stack that is down exits 5 with the command to start it."""
    runtime = LocalRuntime(project)
    runtime.down()
    try:
        once = ragctl(project, "top", "--once")
        assert once.returncode == 5, once.stdout + once.stderr
        assert "ragctl up --runtime local" in once.stderr
        tmux = Tmux(tmp_path)
        try:
            command = f"{shlex.quote(sys.executable)} -m ragctl -p {shlex.quote(str(project))} top"
            tmux.type(f"stty -g > before.txt; {command}; echo top-exit=$?; stty -g > after.txt")
            tmux.wait_for(r"stack down: the stack is not running", 60)
            time.sleep(2.5)  # it keeps asking: still there, no traceback
            screen = tmux.screen()
            assert "stack down" in screen and "Traceback" not in screen
            tmux("send-keys", "-t", "top", "C-c")
            tmux.wait_for(r"top-exit=0", 30)
            before, after = ((tmp_path / n).read_text().strip() for n in ("before.txt", "after.txt"))
            assert before and before == after
        finally:
            tmux.close()
    finally:
        runtime.down()  # idempotent: the module's fixture stops it again
