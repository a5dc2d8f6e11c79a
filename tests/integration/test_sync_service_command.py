"""The sync service's own command against a real stack, without Docker (issue #26 part 4).

The command and environment of a rendered ``sync-hr`` service (templates/compose.yaml.j2, read
back through ``docker compose config``) are run here as a process, with the container's paths
(/sync, /tmp/project) and the API's address put in for this host's; the stack is the local runtime
(redis-server, the Chroma server, uvicorn, a Celery worker) given the rendered RAG_SYNC_KEYS, as
the rendered API is.  A file copied into the folder is ingested into ``hr`` with
that key; the key sees nothing outside ``hr``.  (The Compose service itself is in tests/compose.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from ragctl.project import read_dotenv
from ragctl.runtime.local import LocalRuntime
from stack.contract import RagError
from stack.keys import hash_key
from tests.support.cli import FREE_PORTS
from tests.support.suite import REPO, SAMPLES, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def rendered_sync_service(root, share):
    """The ``sync-hr`` service and the API's RAG_SYNC_KEYS of a Compose project syncing ``share``,
    as ``docker compose config`` reads the rendered file ($$ in it is a literal $ at run time)."""
    from ragctl.deploy import validate, write_rendered
    from ragctl.project import init_project

    try:
        init_project(root, {}, runtime="docker", stack={"workers": 1, "nginx": True})
        with (root / "ragctl.toml").open("a", encoding="utf-8") as handle:
            handle.write(f'\n[[sync]]\npath = "{share}"\ncollection = "hr"\ninterval = "10s"\n')
        write_rendered(root)
        model = validate(root)
    except RagError as exc:
        skip_or_fail(f"cannot render the Compose file here: {exc.message}", "sync service")
    service = model["services"]["sync-hr"]
    service["command"] = [part.replace("$$", "$") for part in service["command"]]
    return service, model["services"]["api"]["environment"]["RAG_SYNC_KEYS"]


def here_paths(text: str, here: dict[str, str]) -> str:
    for container, host in here.items():
        text = text.replace(container, host)
    return text


def test_the_sync_services_command_ingests_a_copied_file_with_its_own_key(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    root = tmp_path / "stack"
    root.mkdir()
    (root / "ragctl.toml").write_text('[project]\nname = "sync-service"\n' + FREE_PORTS, encoding="utf-8")
    share, scratch = tmp_path / "share", tmp_path / "container-tmp"
    share.mkdir()
    scratch.mkdir()
    service, registered = rendered_sync_service(tmp_path / "compose-project", share)
    key = service["environment"]["RAG_API_KEY"]
    assert registered == f"sync-hr=hr={hash_key(key)}"
    (root / ".env").write_text(f"RAG_SYNC_KEYS={registered}\n", encoding="utf-8")
    runtime = LocalRuntime(root)
    runtime.up(workers=1, wait_s=180)
    process = None
    try:
        url = runtime.status().api_url.rstrip("/")
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {read_dotenv(root / '.env')['RAG_API_KEY']}"},
                             timeout=30)
        here = {"/tmp/project": str(scratch / "project"), "/sync": str(share), "python ": f"{sys.executable} "}
        command = [here_paths(part, here) for part in service["command"]]
        env = {name: here_paths(value, here) for name, value in service["environment"].items()}
        env |= {"PATH": os.environ["PATH"], "HOME": str(scratch), "PYTHONPATH": str(REPO), "RAGCTL_API_URL": url,
                "SYNC_INTERVAL": "1s"}  # the rendered interval is 10s: a shorter one for the test
        process = subprocess.Popen(command, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        time.sleep(3)  # a first pass over the empty folder
        assert process.poll() is None, process.stdout.read()
        (share / "rules").mkdir()
        shutil.copyfile(SAMPLES / "휴가_규정.hwpx", share / "rules" / "휴가_규정.hwpx")
        deadline = time.monotonic() + 240
        while True:
            documents = admin.get("/api/documents", params={"collection": "hr"}).json()
            if [(d["file_name"], d["status"]) for d in documents] == [("rules/휴가_규정.hwpx", "done")]:
                break
            assert time.monotonic() < deadline and process.poll() is None, (documents, process.poll())
            time.sleep(1)
        keys = {k["name"]: k for k in admin.get("/api/keys").json()}
        assert (keys["sync-hr"]["role"], keys["sync-hr"]["collections"]) == ("editor", ["hr"])
        scoped = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert scoped.get("/api/documents", params={"collection": "default"}).status_code == 404
        hits = scoped.post("/api/search", json={"query": "연차 휴가", "collection": "hr"}).json()["hits"]
        assert hits and hits[0]["file"] == "rules/휴가_규정.hwpx"
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the watch loop's own way out
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        runtime.down()
    output = process.stdout.read() if process is not None else ""
    assert "Synced: 1 new" in output, output
