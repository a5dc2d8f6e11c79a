"""Where a Compose stack keeps its state (issue #12): its own PostgreSQL service, or, for a stack
from before PostgreSQL, SQLite files in data/ until ``ragctl upgrade`` moves them.  The rendered
compose.yaml is checked by the real ``docker compose config``."""

from __future__ import annotations

import sqlite3

import pytest

from ragctl.deploy import compose_command, load_deploy_config, validate, write_rendered
from ragctl.errors import DockerError
from ragctl.project import init_project, read_dotenv, set_config_value
from stack import db_server
from tests.support.suite import skip_or_fail

APP_SERVICES = ("api", "worker")


def project(tmp_path, **stack):
    root = tmp_path / "pg"
    init_project(root, {}, runtime="docker", stack={"workers": 1, **stack})
    return root


def leave_sqlite_state(root) -> None:
    (root / "data").mkdir(exist_ok=True)
    sqlite3.connect(root / "data" / "catalog.sqlite").close()


def services(root):
    try:
        compose_command()
    except DockerError as exc:
        skip_or_fail(f"Docker Compose v2 not found ({exc.hint})", "render")
    write_rendered(root)
    return validate(root)["services"]


def test_a_new_stack_runs_postgres_and_its_services_use_it(tmp_path):
    root = project(tmp_path)
    assert load_deploy_config(root).database == "postgres"
    rendered = services(root)
    password = read_dotenv(root / ".env")["POSTGRES_PASSWORD"]
    assert len(password) >= 32
    postgres = rendered["postgres"]
    assert postgres["command"][:3] == ["python", "-m", "stack.db_server"] and "--password-env" in postgres["command"]
    assert password not in " ".join(postgres["command"])  # never on a command line (ps shows those)
    assert postgres["environment"]["POSTGRES_PASSWORD"] == password
    assert "ports" not in postgres and set(postgres["networks"]) == {"rag-network"}
    for name in APP_SERVICES:
        assert rendered[name]["environment"]["RAG_DATABASE_URL"] == \
            f"postgresql://ragctl:{password}@postgres:5432/ragctl", name
        assert rendered[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_a_stack_with_sqlite_state_and_no_choice_stays_on_sqlite_until_upgraded(tmp_path):
    root = project(tmp_path)
    leave_sqlite_state(root)
    assert load_deploy_config(root).database == "sqlite"
    rendered = services(root)
    assert "postgres" not in rendered
    assert all("RAG_DATABASE_URL" not in rendered[name]["environment"] for name in APP_SERVICES)
    set_config_value(root, "stack", "database", "postgres")  # what ragctl upgrade writes
    assert load_deploy_config(root).database == "postgres" and "postgres" in services(root)


def test_the_runtime_waits_for_postgres_only_when_it_runs_one_and_doctor_names_the_upgrade(tmp_path):
    from ragctl.runtime.docker import DockerRuntime
    from ragctl.runtime.docker.checks import _state_check

    root = project(tmp_path)
    assert DockerRuntime(root).wanted()["postgres"] == 1 and DockerRuntime(root).uses_postgres
    assert _state_check(DockerRuntime(root)).status == "ok"
    set_config_value(root, "stack", "database", "sqlite")
    assert "postgres" not in DockerRuntime(root).wanted() and not DockerRuntime(root).uses_postgres
    check = _state_check(DockerRuntime(root))
    assert check.status == "warn" and "ragctl upgrade" in check.hint


def test_upgrade_has_nothing_to_do_on_postgres_or_a_one_host_runtime(tmp_path):
    import json

    from typer.testing import CliRunner

    from ragctl.cli.app import app

    runner = CliRunner()
    root = project(tmp_path)
    result = runner.invoke(app, ["-p", str(root), "upgrade", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["upgraded"] is False
    embedded = tmp_path / "embedded"
    init_project(embedded)
    result = runner.invoke(app, ["-p", str(embedded), "upgrade", "--json"])
    assert result.exit_code == 0 and "by design" in json.loads(result.stdout)["reason"]


def test_the_db_server_reads_its_password_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPW", "p" * 20)
    assert db_server.read_password(tmp_path / "absent", "PGPW") == "p" * 20
    (tmp_path / "secret").write_text("s" * 24 + "\n")
    assert db_server.read_password(tmp_path / "secret", None) == "s" * 24
    monkeypatch.setenv("PGPW", "short")
    with pytest.raises(SystemExit, match="environment variable PGPW is missing or shorter"):
        db_server.read_password(tmp_path / "secret", "PGPW")
    with pytest.raises(SystemExit, match="absent is missing"):
        db_server.read_password(tmp_path / "absent", None)
