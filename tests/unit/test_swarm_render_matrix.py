"""Every value of every [stack] setting that shapes the swarm's stack file renders a file that
``docker stack deploy`` accepts (issue #29: worker_placement = "any" rendered ``constraints:`` with
nothing under it, which stack deploy refuses: "services.worker.deploy.placement.constraints must be a
list").

The renderer runs over the product of worker placement (each setting, and "auto" as ``up`` resolves
it) × gpu × nginx × flower × database × replicas × TLS × overlay encryption; each distinct file is
read by ``docker stack config`` — the docker CLI's own loader, with the compose schema that ``docker
stack deploy`` validates against, no engine needed — and its reading is checked against what the
settings mean.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess

import pytest
import yaml

from ragctl.deploy import SWARM_RENDERED, render_files, write_rendered
from ragctl.project import init_project, set_config_value
from tests.support.suite import skip_or_fail

#: (worker_placement in ragctl.toml, what ``up`` resolved it to: None when nothing resolved it)
PLACEMENTS = [("auto", None), ("auto", "apart"), ("auto", "any"), ("apart", None), ("any", None)]
#: (workers, api_replicas)
REPLICAS = [(0, 1), (1, 1), (3, 2)]
APART = ["node.labels.ragctl.data != true", "node.labels.ragctl.gpu != true"]
GPU = ["node.labels.ragctl.gpu == true"]


def stack_config(path) -> tuple[int, str, str]:
    done = subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def docker_cli():
    if shutil.which("docker") is None:
        skip_or_fail("the docker CLI is not installed (apt-get install docker.io)", "swarm render")
    if subprocess.run(["docker", "stack", "config", "--help"], capture_output=True, timeout=30,
                      check=False).returncode != 0:
        skip_or_fail("this docker CLI has no `docker stack config`", "swarm render")


def test_the_parser_refuses_what_issue_29_rendered(tmp_path, docker_cli):
    """The check can fail: the CLI's loader refuses an empty ``constraints:``, as stack deploy did."""
    bad = tmp_path / "bad.yaml"
    bad.write_text('version: "3.8"\nservices:\n  worker:\n    image: busybox\n    deploy:\n      placement:\n'
                   "        constraints:\n")
    code, _, err = stack_config(bad)
    assert code != 0 and "constraints must be a list" in err


@pytest.mark.slow  # about 20 s: 960 renders
def test_every_setting_renders_a_stack_file_the_engine_accepts(tmp_path, docker_cli):
    root = tmp_path / "swarm"
    init_project(root, {}, runtime="swarm", stack={"workers": 1})
    write_rendered(root, files=SWARM_RENDERED)  # .env's secrets and the certificate: renders are deterministic
    seen: dict[str, dict] = {}
    combos = 0
    for (setting, resolved), gpu, nginx, flower, database, (workers, api), tls, encrypted in itertools.product(
            PLACEMENTS, (False, True), (False, True), (False, True), ("postgres", "sqlite"), REPLICAS,
            ("self-signed", "off"), (True, False)):
        values = {"worker_placement": setting, "gpu": gpu, "nginx": nginx, "flower": flower, "database": database,
                  "workers": workers, "api_replicas": api, "tls": tls, "swarm_encrypted": encrypted,
                  # tls = "off" is allowed only with the edge bound to loopback
                  "nginx_bind": "127.0.0.1" if tls == "off" else "0.0.0.0",
                  "api_bind": "127.0.0.1" if tls == "off" else "0.0.0.0"}
        for key, value in values.items():
            set_config_value(root, "stack", key, value)
        text = render_files(root, {"stack.yaml": SWARM_RENDERED["stack.yaml"]}, placement=resolved)["stack.yaml"]
        combos += 1
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest not in seen:
            path = tmp_path / f"stack-{len(seen)}.yaml"
            path.write_text(text)
            code, out, err = stack_config(path)
            assert code == 0, f"docker stack config refused the stack file of {values} (placement {resolved}): {err}"
            seen[digest] = {"model": yaml.safe_load(out), "values": values, "resolved": resolved}
        check_model(seen[digest]["model"], values, resolved)
    print(f"\n{combos} combinations, {len(seen)} distinct stack files, each accepted by docker stack config")
    assert combos == len(PLACEMENTS) * 2 * 2 * 2 * 2 * len(REPLICAS) * 2 * 2
    assert len(seen) >= 2 * 3 * len(REPLICAS)  # gpu × (apart, none, comment variants) × replicas at least


def check_model(model: dict, values: dict, resolved: str | None) -> None:
    """docker stack config's reading of the file says what the settings mean."""
    services = model["services"]
    worker, api = services["worker"], services["api"]
    placement = values["worker_placement"] if values["worker_placement"] != "auto" else (resolved or "apart")
    expected = GPU if values["gpu"] else APART if placement == "apart" else []
    assert (worker["deploy"].get("placement") or {}).get("constraints", []) == expected, (values, resolved)
    assert worker["deploy"]["replicas"] == values["workers"] and api["deploy"]["replicas"] == values["api_replicas"]
    reservations = (worker["deploy"].get("resources") or {}).get("reservations") or {}
    assert bool(reservations.get("generic_resources")) == values["gpu"]
    assert worker["environment"]["RAG_DEVICE"] == ("cuda" if values["gpu"] else "cpu")
    for name in ("postgres", "redis", "chroma"):
        assert services[name]["deploy"]["placement"]["constraints"] == ["node.labels.ragctl.data == true"]
    ports = [(p["target"], p["published"]) for p in services["nginx"]["ports"]]
    assert ports == ([(8443, 443), (8080, 80)] if values["tls"] != "off" else [(8080, 80)])
    encrypted = model["networks"]["rag-network"].get("driver_opts") == {"encrypted": "true"}
    assert encrypted == values["swarm_encrypted"]
