"""The stack's layering: ``stack`` never imports ``ragctl``; ``stack.names`` is standard library only."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

from tests.support.suite import REPO


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_stack_never_imports_ragctl():
    code = """
import importlib, pkgutil, sys
import stack, stack.api.app
assert not [m for m in sys.modules if m.startswith('ragctl')], 'stack.api.app imported ragctl'
for module in pkgutil.walk_packages(stack.__path__, 'stack.'):
    importlib.import_module(module.name)
leaked = sorted(m for m in sys.modules if m == 'ragctl' or m.startswith('ragctl.'))
assert not leaked, leaked
"""
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_names_import_nothing_heavy():
    code = """
import sys
import stack.names
heavy = {'celery', 'kombu', 'redis', 'chromadb', 'torch', 'fastapi', 'starlette', 'pydantic', 'ragctl'}
loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)
assert not loaded, loaded
"""
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_worker_app_still_exports_the_names():
    from stack import names
    from stack.worker.app import INGEST_QUEUE, INGEST_TASK, REAP_TASK

    assert (INGEST_QUEUE, INGEST_TASK, REAP_TASK) == (names.INGEST_QUEUE, names.INGEST_TASK, names.REAP_TASK)


def test_api_status_schema_matches_the_enum():
    from stack.api.schemas import Status
    from stack.names import DocumentStatus
    from stack.pipeline.catalog import STATUSES

    assert list(get_args(Status)) == [s.value for s in DocumentStatus] == list(STATUSES)


def test_api_reports_the_installed_version():
    from importlib import metadata

    from stack.version import version

    assert version() == metadata.version("ragctl")
