"""The swarm runtime's stack file (issue #12): validated by the real ``docker stack config`` (the
docker CLI), with every secret a Swarm secret, data services pinned to the data node, workers
placed by label, the API rolled start-first, and secret names that change with their content."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from ragctl.deploy import SWARM_RENDERED, stack_swarm_objects, write_rendered
from ragctl.project import init_project, read_dotenv
from stack.settings import SECRETS_DIR_ENV, load_settings
from tests.support.suite import skip_or_fail


def swarm_project(tmp_path, **stack):
    root = tmp_path / "swarm"
    init_project(root, {}, runtime="swarm", stack={"workers": 3, **stack})
    write_rendered(root, files=SWARM_RENDERED)
    return root


def stack_config(root) -> dict:
    """``docker stack config``: the CLI's own reading of the stack file (what stack deploy sends)."""
    if shutil.which("docker") is None:
        skip_or_fail("the docker CLI is not installed (apt-get install docker.io)", "swarm render")
    done = subprocess.run(["docker", "stack", "config", "-c", str(root / "stack.yaml")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.parametrize("gpu", [False, True])
def test_stack_file_is_valid_and_places_services_by_label(tmp_path, gpu):
    root = swarm_project(tmp_path, gpu=gpu)
    services = stack_config(root)["services"]
    assert set(services) == {"postgres", "redis", "chroma", "api", "worker", "beat", "nginx"}
    for name in ("postgres", "redis", "chroma"):
        assert services[name]["deploy"]["placement"]["constraints"] == ["node.labels.ragctl.data == true"]
        assert services[name]["deploy"]["replicas"] == 1
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 3
    constraints = worker["deploy"]["placement"]["constraints"]
    if gpu:
        assert constraints == ["node.labels.ragctl.gpu == true"]
        generic = worker["deploy"]["resources"]["reservations"]["generic_resources"]
        assert generic[0]["discrete_resource_spec"] == {"kind": "NVIDIA-GPU", "value": 1}
        assert worker["environment"]["RAG_DEVICE"] == "cuda"
    else:
        assert "node.labels.ragctl.data != true" in constraints
    api = services["api"]
    assert api["deploy"]["update_config"]["order"] == "start-first"
    assert api["deploy"]["update_config"]["failure_action"] == "rollback"
    assert "ports" not in api  # only Nginx is published: on every node (global), on the node's own address
    nginx = services["nginx"]
    assert nginx["deploy"]["mode"] == "global"
    assert [(p["published"], p["target"], p["mode"]) for p in nginx["ports"]] == [(443, 8443, "host"), (80, 8080, "host")]
    # No virtual IPs: every service is found through Docker's DNS (no IPVS needed on the hosts).
    assert {s["deploy"].get("endpoint_mode") for s in services.values()} == {"dnsrr"}
    # Stateless services keep nothing on the node: /tmp in memory, no bind mount, no named volume.
    for name in ("api", "worker", "beat"):
        assert [v["type"] for v in services[name].get("volumes", [])] == ["tmpfs"]
    for name, service in services.items():
        assert service["user"] == "10001:10001" and service["read_only"] is True
        assert service["cap_drop"] == ["ALL"], name
    networks = stack_config(root)["networks"]
    assert networks["rag-network"]["driver"] == "overlay" and networks["rag-network"]["internal"] is True
    assert networks["rag-network"]["driver_opts"] == {"encrypted": "true"}


def test_no_secret_is_in_the_environment_or_the_stack_file(tmp_path):
    root = swarm_project(tmp_path)
    text = (root / "stack.yaml").read_text()
    env = read_dotenv(root / ".env")
    for key in ("RAG_API_KEY", "REDIS_PASSWORD", "CHROMA_TOKEN", "POSTGRES_PASSWORD"):
        assert len(env[key]) >= 32 and env[key] not in text, key
    services = stack_config(root)["services"]
    for name, service in services.items():
        environment = json.dumps(service.get("environment") or {})
        assert not any(env[k] in environment for k in ("REDIS_PASSWORD", "CHROMA_TOKEN", "POSTGRES_PASSWORD"))
        assert "REDIS_URL" not in (service.get("environment") or {}), name
    mounted = {name: {s["target"] for s in service.get("secrets", [])} for name, service in services.items()}
    assert mounted["api"] == {"REDIS_URL", "RAG_DATABASE_URL", "CHROMA_TOKEN", "RAG_API_KEY"}
    assert mounted["nginx"] == {"tls.crt", "tls.key"}  # TLS ends at Nginx; it holds no other secret
    assert mounted["worker"] == {"REDIS_URL", "RAG_DATABASE_URL", "CHROMA_TOKEN"}
    assert mounted["postgres"] == {"POSTGRES_PASSWORD"} and mounted["redis"] == {"REDIS_PASSWORD"}
    assert "RAG_API_KEY" not in mounted["worker"]  # a worker never holds the admin key


def test_secret_names_change_with_their_content_only(tmp_path):
    root = swarm_project(tmp_path)
    first = yaml.safe_load((root / "stack.yaml").read_text())["secrets"]
    write_rendered(root, files=SWARM_RENDERED)
    assert yaml.safe_load((root / "stack.yaml").read_text())["secrets"] == first  # deterministic
    env_path = root / ".env"
    text = env_path.read_text()
    old = read_dotenv(env_path)["REDIS_PASSWORD"]
    env_path.write_text(text.replace(old, "N" * 40))
    write_rendered(root, files=SWARM_RENDERED)
    second = yaml.safe_load((root / "stack.yaml").read_text())["secrets"]
    changed = {key for key in first if first[key]["name"] != second[key]["name"]}
    assert changed == {"REDIS_PASSWORD", "REDIS_URL"}  # the password and the URL made of it


def test_swarm_objects_hold_what_the_services_read(tmp_path):
    root = swarm_project(tmp_path)
    env = read_dotenv(root / ".env")
    objects = stack_swarm_objects(root)
    assert objects["REDIS_URL"].data.decode() == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
    assert objects["RAG_DATABASE_URL"].data.decode() == \
        f"postgresql://ragctl:{env['POSTGRES_PASSWORD']}@postgres:5432/ragctl"
    assert objects["tls_key"].data.startswith(b"-----BEGIN") and objects["redis_conf"].kind == "config"
    nginx_conf = objects["nginx_conf"].data.decode()
    assert "resolver 127.0.0.11" in nginx_conf and "proxy_next_upstream error timeout" in nginx_conf
    assert "ssl_certificate_key /run/secrets/tls.key" in nginx_conf
    assert b"appendonly yes" in objects["redis_conf"].data


def test_settings_read_secrets_from_files_over_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "REDIS_URL").write_text("redis://:from-file@redis:6379/0\n")
    (folder / "RAG_API_KEY").write_text("k" * 40)
    (folder / "NOT_A_SETTING").write_text("ignored")
    monkeypatch.setenv("REDIS_URL", "redis://:from-env@elsewhere:6379/0")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    settings = load_settings(tmp_path)
    assert settings.redis_url == "redis://:from-file@redis:6379/0"  # no trailing newline
    assert settings.api_key.get_secret_value() == "k" * 40
    monkeypatch.delenv(SECRETS_DIR_ENV)
    assert load_settings(tmp_path).redis_url == "redis://:from-env@elsewhere:6379/0"


def test_nodes_command_needs_a_swarm_project(tmp_path):
    from typer.testing import CliRunner

    from ragctl.cli import app

    root = tmp_path / "local"
    init_project(root, {}, runtime="local", stack={"workers": 1})
    result = CliRunner().invoke(app, ["-p", str(root), "nodes", "list", "--json"])
    assert result.exit_code != 0
    assert "for a swarm project" in result.output and "Traceback" not in result.output


def test_a_service_is_ready_only_with_its_replicas_running_and_no_update_going():
    from ragctl.runtime.swarm import SwarmService, TaskState

    running = TaskState("n2", "running", "running", "")
    pending = TaskState("", "pending", "running", "no suitable node (scheduling constraints not satisfied on 3 nodes)")
    service = SwarmService("worker", 2, [running, pending])
    assert not service.ready and service.state == "pending"
    assert service.problems == ["no node: no suitable node (scheduling constraints not satisfied on 3 nodes)"]
    assert service.columns()["replicas"] == "1/2" and service.columns()["nodes"] == "n2"
    rolling = SwarmService("api", 1, [running, TaskState("n3", "running", "shutdown", "")], update="updating")
    assert not rolling.ready and rolling.state == "updating"  # the old replica still runs meanwhile
    done = SwarmService("api", 1, [TaskState("n3", "running", "running", "")], update="completed")
    assert done.ready and done.state == "running" and done.nodes == ["n3"]
    lacking = SwarmService("worker", 1, [TaskState("n3", "rejected", "shutdown", "No such image: ragctl:0.1.0")])
    assert lacking.state == "failing" and "No such image" in lacking.summary()


def test_node_labels_parse_and_render():
    from ragctl.errors import UsageError
    from ragctl.runtime.swarm import NodeInfo, node_table_rows, parse_label

    assert parse_label("data=true") == ("data", True) and parse_label("gpu=FALSE") == ("gpu", False)
    for bad in ("data", "color=red", "gpu=yes"):
        with pytest.raises(UsageError):
            parse_label(bad)
    node = NodeInfo(id="abc", hostname="n1", role="manager", leader=True, availability="active", state="ready",
                    address="10.0.0.11", labels={"ragctl.data": "true"}, gpus=0, engine="27.0",
                    replicas={"postgres": 1, "nginx": 1})
    row = node_table_rows([node])[0]
    assert row["node"] == "n1 (leader)" and row["labels"] == "data" and row["replicas"] == "nginx×1, postgres×1"
    assert node.to_dict()["data"] is True and node.to_dict()["gpu"] is False


@pytest.mark.parametrize("runtime", ["docker", "swarm"])
def test_scale_beyond_the_limits_is_a_usage_error_not_a_traceback(tmp_path, runtime):
    from typer.testing import CliRunner

    from ragctl.cli import app

    root = tmp_path / runtime
    init_project(root, {}, runtime=runtime, stack={"workers": 1})
    result = CliRunner().invoke(app, ["-p", str(root), "scale", "worker=100", "--json"])
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "usage" and "less than or equal to 64" in error["message"]
    assert "Traceback" not in result.output and "bug in ragctl" not in result.output


def test_a_store_tree_is_laid_out_for_put_archive(tmp_path):
    """Restore's one tar builder (Compose and swarm): the tree's files relative to it, parents listed,
    Redis's snapshot as the base of an AOF, owned by the services' user when one is given."""
    import io
    import tarfile

    from ragctl.runtime.base import AOF_DIR, store_tree_tar

    archive = tmp_path / "backup.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"chroma/x/y.bin": b"abc", "redis/dump.rdb": b"RDB", "data/c": b"1"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(fileobj=io.BytesIO(store_tree_tar(archive, "chroma"))) as tar:
        assert [(m.name, m.isdir(), m.mode, m.uid) for m in tar] == [("x", True, 0o755, 0), ("x/y.bin", False, 0o644, 0)]
    with tarfile.open(fileobj=io.BytesIO(store_tree_tar(archive, "redis", owner=10001))) as tar:
        members = {m.name: m for m in tar}
    assert f"{AOF_DIR}/appendonly.aof.manifest" in members and members["dump.rdb"].mode == 0o600
    assert {m.uid for m in members.values()} == {10001}
    assert store_tree_tar(archive, "postgres") == b""
