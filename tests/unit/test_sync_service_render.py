"""Unattended sync (issue #26): ``[[sync]]`` tables of ragctl.toml rendered into the Compose file
and the Swarm stack file, each read by the docker CLI's own loaders (``docker compose config``,
``docker stack config``), and the key each sync service authenticates with."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
import yaml

from ragctl.deploy import SWARM_RENDERED, compose_command, render_files, validate, write_rendered
from ragctl.errors import ConfigError, DockerError
from ragctl.project import init_project, read_dotenv, set_config_value
from ragctl.sync_services import load_sync_folders
from tests.support.suite import skip_or_fail

SYNC_TABLES = """
[[sync]]
path = "shares/hr"
collection = "hr"
interval = "10s"

[[sync]]
path = "{legal}"
collection = "Legal.Docs"
interval = "5m"
delete = true
"""


def project(tmp_path, runtime: str, **stack):
    root = tmp_path / "deploy"
    init_project(root, {}, runtime=runtime, stack={"workers": 1, **stack})
    (root / "shares" / "hr").mkdir(parents=True)
    legal = tmp_path / "legal-share"
    legal.mkdir()
    with (root / "ragctl.toml").open("a", encoding="utf-8") as handle:
        handle.write(SYNC_TABLES.format(legal=legal))
    return root, legal


def test_sync_tables_are_validated(tmp_path):
    root, _ = project(tmp_path, "docker")
    folders = load_sync_folders(root)
    assert [(f.service, f.collection, f.seconds, f.delete, f.key_var) for f in folders] == [
        ("sync-hr", "hr", 10.0, False, "RAG_SYNC_KEY_HR"),
        ("sync-legal-docs", "Legal.Docs", 300.0, True, "RAG_SYNC_KEY_LEGAL_DOCS")]
    assert folders[0].path == str((root / "shares" / "hr").resolve())
    toml = (root / "ragctl.toml").read_text(encoding="utf-8")
    for bad, said in (('path = "shares/hr"', "is not a folder"), ('interval = "10s"', "Invalid interval"),
                      ('collection = "hr"', "collection")):
        broken = toml.replace(bad, {'path = "shares/hr"': 'path = "shares/none"', 'interval = "10s"': 'interval = "soon"',
                                    'collection = "hr"': 'collection = "no/slash"'}[bad])
        (root / "ragctl.toml").write_text(broken, encoding="utf-8")
        with pytest.raises(ConfigError, match="sync") as caught:
            load_sync_folders(root)
        assert said in caught.value.message, caught.value.message
    twice = toml.replace('collection = "Legal.Docs"', 'collection = "hr"')
    (root / "ragctl.toml").write_text(twice, encoding="utf-8")
    with pytest.raises(ConfigError, match="one folder per collection"):
        load_sync_folders(root)


def test_the_compose_file_runs_one_sync_service_per_folder_with_its_own_key(tmp_path):
    try:
        compose_command()
    except DockerError as exc:
        skip_or_fail(f"Docker Compose v2 not found ({exc.hint})", "render")
    root, legal = project(tmp_path, "docker")
    write_rendered(root)
    env = read_dotenv(root / ".env")
    model = validate(root)
    services = model["services"]
    hr, docs = services["sync-hr"], services["sync-legal-docs"]
    assert hr["command"][:2] == ["sh", "-c"] and "exec python -m ragctl sync /sync --watch" in hr["command"][2]
    assert (hr["environment"]["SYNC_INTERVAL"], hr["environment"]["SYNC_COLLECTION"]) == ("10s", "hr")
    assert "--delete --yes" not in hr["command"][2] and docs["command"][2].endswith("--delete --yes")
    assert docs["environment"]["SYNC_COLLECTION"] == "Legal.Docs"
    assert [(v["source"], v["target"], v.get("read_only")) for v in hr["volumes"] if v["target"] == "/sync"] == [
        (str((root / "shares" / "hr").resolve()), "/sync", True)]
    assert [v["source"] for v in docs["volumes"] if v["target"] == "/sync"] == [str(legal.resolve())]
    # Its own key, from .env, and nothing else of .env: not the admin key, not the data network.
    assert hr["environment"]["RAG_API_KEY"] == env["RAG_SYNC_KEY_HR"] != env["RAG_API_KEY"]
    assert env["RAG_SYNC_KEY_HR"].startswith("rk_") and env["RAG_SYNC_KEY_LEGAL_DOCS"] != env["RAG_SYNC_KEY_HR"]
    assert "REDIS_URL" not in hr["environment"] and set(hr["networks"]) == {"rag-edge"}
    assert hr["environment"]["RAGCTL_API_URL"] == "https://api:8000"  # the API serves TLS itself (no Nginx)
    assert hr["depends_on"]["api"]["condition"] == "service_healthy" and hr["read_only"] and hr["user"] != "0:0"
    # The API registers the keys by their hashes (never the keys).
    registered = services["api"]["environment"]["RAG_SYNC_KEYS"]
    assert registered == ",".join(f"sync-{c}={c}={hashlib.sha256(env[v].encode()).hexdigest()}"
                                  for c, v in (("hr", "RAG_SYNC_KEY_HR"), ("Legal.Docs", "RAG_SYNC_KEY_LEGAL_DOCS")))
    assert env["RAG_SYNC_KEY_HR"] not in (root / "compose.yaml").read_text(encoding="utf-8")
    before = (root / ".env").read_text(encoding="utf-8")
    write_rendered(root)
    assert (root / ".env").read_text(encoding="utf-8") == before  # the keys are made once
    set_config_value(root, "stack", "nginx", True)
    behind_nginx = yaml.safe_load(render_files(root, {"compose.yaml": "compose.yaml.j2"})["compose.yaml"])
    assert behind_nginx["services"]["sync-hr"]["environment"]["RAGCTL_API_URL"] == "http://api:8000"


def test_the_stack_file_runs_the_sync_services_on_the_data_node_with_a_secret(tmp_path):
    if shutil.which("docker") is None:
        skip_or_fail("the docker CLI is not installed (apt-get install docker.io)", "swarm render")
    root, _ = project(tmp_path, "swarm")
    write_rendered(root, files=SWARM_RENDERED)
    path = root / "stack.yaml"
    done = subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    hr = services["sync-hr"]
    assert hr["deploy"]["placement"]["constraints"] == ["node.labels.ragctl.data == true"]
    assert [(s["source"], s["target"]) for s in hr["secrets"]] == [("RAG_SYNC_KEY_HR", "RAG_API_KEY")]
    assert hr["environment"]["RAGCTL_API_URL"] == "http://api:8000"  # Nginx terminates TLS in a swarm
    assert hr["environment"]["RAG_SECRETS_DIR"] == "/run/secrets" and set(hr["networks"]) == {"rag-edge"}
    assert "RAG_API_KEY" not in hr["environment"]
    assert "sync-hr=hr=" in services["api"]["environment"]["RAG_SYNC_KEYS"]
    assert services["sync-legal-docs"]["command"][2].endswith("--delete --yes")
    assert hr["environment"]["SYNC_COLLECTION"] == "hr" and hr["environment"]["SYNC_INTERVAL"] == "10s"


def test_the_api_registers_the_sync_keys_and_a_revocation_holds(tmp_path):
    """What the API does at start with RAG_SYNC_KEYS: an editor key scoped to its one collection,
    found by the key the sync service holds; a revoked one stays revoked when the API starts again."""
    from stack.keys import SqliteKeyStore, hash_key, new_key, register_service_keys

    store = SqliteKeyStore(tmp_path / "keys.sqlite")
    key, other = new_key(), new_key()
    spec = f"sync-hr=hr={hash_key(key)},sync-Legal.Docs=Legal.Docs={hash_key(other)}"
    assert register_service_keys(store, spec) == ["sync-hr", "sync-Legal.Docs"]
    record = store.lookup(key)
    assert (record.name, record.role, record.collections, record.active) == ("sync-hr", "editor", ("hr",), True)
    register_service_keys(store, spec)  # the next start: nothing doubled
    assert [k.name for k in store.list()] == ["sync-hr", "sync-Legal.Docs"]
    store.revoke("sync-hr")
    rotated = new_key()
    register_service_keys(store, f"sync-hr=hr={hash_key(rotated)}")
    assert not store.lookup(key).active and store.lookup(rotated) is None  # revoked stays revoked
    register_service_keys(store, f"sync-Legal.Docs=Legal.Docs={hash_key(rotated)}")  # an active one: new key
    assert store.lookup(rotated).name == "sync-Legal.Docs" and store.lookup(other) is None


def test_a_sync_services_key_works_at_the_api_from_its_first_request(tmp_path, monkeypatch):
    """The API built with RAG_SYNC_KEYS (as the rendered stack gives it) answers the sync service's
    key at once, as an editor of its one collection."""
    from fastapi.testclient import TestClient

    from stack import coordination
    from stack.api.app import create_app
    from stack.keys import hash_key, new_key
    from stack.settings import load_settings
    from tests.support.fake_redis import FakeRedis

    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    key = new_key()
    app = create_app(load_settings(tmp_path / "project", {"api_key": "admin-k3y",
                                                          "sync_keys": f"sync-hr=hr={hash_key(key)}"}))
    client = TestClient(app, raise_server_exceptions=False)
    me = client.get("/api/whoami", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json() == {"name": "sync-hr", "role": "editor", "collections": ["hr"]}
    wrong = client.get("/api/whoami", headers={"Authorization": f"Bearer {new_key()}"})
    assert wrong.status_code == 401


def test_top_shows_each_sync_service_and_when_its_key_last_called(tmp_path):
    """/metrics names the registered sync keys with their last call; ``ragctl top`` reads and shows them."""
    import time

    from rich.console import Console

    from ragctl.ops.top import render, snapshot
    from stack.api.metrics import ApiMetrics
    from stack.keys import SqliteKeyStore, hash_key, new_key, register_service_keys
    from stack.pipeline.catalog import Catalog
    from tests.support.fake_redis import FakeRedis

    store = SqliteKeyStore(tmp_path / "keys.sqlite")
    key = new_key()
    register_service_keys(store, f"sync-hr=hr={hash_key(key)},sync-legal=legal={hash_key(new_key())}")
    store.create("a-person", "ask")  # a key made by hand is not a sync service
    store.lookup(key)  # the hr service called
    text = ApiMetrics(FakeRedis(), Catalog(tmp_path / "catalog.sqlite"), "ingest", store).render().decode()
    snap = snapshot(text)
    assert [(s.key, s.collection, bool(s.last_call)) for s in snap.syncs] == [
        ("sync-hr", "hr", True), ("sync-legal", "legal", False)]
    assert time.time() - snap.syncs[0].last_call < 60
    console = Console(width=120, record=True)
    console.print(render(snap))
    shown = console.export_text()
    assert "sync services" in shown and "under a minute ago" in shown and "never" in shown
    assert "a-person" not in shown


@pytest.mark.parametrize("runtime", ["docker", "swarm"])
def test_ps_and_health_expect_one_replica_of_each_sync_service(tmp_path, runtime):
    """``ps``, ``health`` and ``up``'s wait read the runtime's wanted services: the sync services are
    among them (so a stopped one shows as missing, and health fails on it)."""
    from ragctl.runtime import runtime_for

    root, _ = project(tmp_path, runtime)
    wanted = runtime_for(root).wanted()
    assert wanted["sync-hr"] == 1 and wanted["sync-legal-docs"] == 1 and wanted["api"] == 1
