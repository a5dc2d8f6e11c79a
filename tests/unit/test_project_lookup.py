"""Which folder is the project (ragctl/project.py find_project_root, issue #24 item 8)."""

from __future__ import annotations

from ragctl.project import find_project_root
from tests.support.suite import REPO


def test_the_nearest_ragctl_toml_upwards_is_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCTL_PROJECT", raising=False)
    (tmp_path / "ragctl.toml").write_text("[project]\n")
    deep = tmp_path / "docs" / "2026"
    deep.mkdir(parents=True)
    assert find_project_root(start=deep) == tmp_path


def test_the_search_stops_at_a_repository_root_but_honours_a_project_committed_there(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCTL_PROJECT", raising=False)
    (tmp_path / "ragctl.toml").write_text("[project]\n")  # a project above a checkout
    repo = tmp_path / "checkout"
    (repo / ".git").mkdir(parents=True)
    inside = repo / "src" / "pkg"
    inside.mkdir(parents=True)
    assert find_project_root(start=inside) == inside  # not captured by the folder above

    (repo / "ragctl.toml").write_text("[project]\n")  # a project kept in the repository on purpose
    assert find_project_root(start=inside) == repo


def test_this_checkout_is_not_a_project(monkeypatch):
    monkeypatch.delenv("RAGCTL_PROJECT", raising=False)
    assert not (REPO / "ragctl.toml").exists()
    assert find_project_root(start=REPO / "tests" / "unit") == REPO / "tests" / "unit"
