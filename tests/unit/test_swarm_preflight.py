"""The swarm pre-flight's decisions (issue #29), on node lists as the manager reports them: where the
workers go with worker_placement = "auto", when ``up`` labels the data node itself, and which node each
hint names.  tests/swarm/test_swarm_one_node.py follows the hints on a real swarm."""

from __future__ import annotations

from ragctl.deploy import DeployConfig
from ragctl.runtime.swarm import NodeInfo
from ragctl.runtime.swarm.preflight import (
    data_node_check,
    lone_unlabelled_node,
    worker_check,
    worker_placement,
)


def node(name: str, *, data: bool = False, gpu: bool = False, state: str = "ready", availability: str = "active",
         leader: bool = False, replicas: dict | None = None) -> NodeInfo:
    labels = {**({"ragctl.data": "true"} if data else {}), **({"ragctl.gpu": "true"} if gpu else {})}
    return NodeInfo(id=name * 3, hostname=name, role="manager" if leader else "worker", leader=leader,
                    availability=availability, state=state, address="10.0.0.1", labels=labels, gpus=0, engine="28",
                    replicas=replicas or {})


def test_auto_runs_workers_with_the_data_services_on_a_one_node_swarm():
    placement = worker_placement(DeployConfig(), [node("n1", data=True, leader=True)])
    assert placement.mode == "any" and placement.rendered == "any" and placement.nodes == ["n1"]
    assert "ragctl nodes join-command" in placement.reason


def test_auto_moves_the_workers_apart_once_another_node_is_ready():
    nodes = [node("n1", data=True, leader=True, replicas={"worker": 2, "postgres": 1}), node("n2")]
    placement = worker_placement(DeployConfig(), nodes)
    assert placement.mode == "apart" and placement.nodes == ["n2"]
    check = worker_check(DeployConfig(), nodes, placement)
    assert check.status == "ok" and "the workers now on n1 move there" in check.detail


def test_auto_counts_only_nodes_that_take_cpu_workers():
    for other in (node("n2", state="down"), node("n2", availability="drain"), node("n2", gpu=True)):
        placement = worker_placement(DeployConfig(), [node("n1", data=True, leader=True), other])
        assert placement.mode == "any", other


def test_apart_on_one_node_fails_with_both_ways_out():
    config = DeployConfig(worker_placement="apart")
    nodes = [node("n1", data=True, leader=True)]
    check = worker_check(config, nodes, worker_placement(config, nodes))
    assert check.status == "fail"
    assert 'worker_placement = "auto"' in check.hint and "ragctl nodes join-command" in check.hint


def test_gpu_workers_need_a_gpu_label_the_hint_names():
    config = DeployConfig(gpu=True)
    nodes = [node("n1", data=True, leader=True)]
    check = worker_check(config, nodes, worker_placement(config, nodes))
    assert check.status == "fail" and "ragctl nodes label NODE gpu=true" in check.hint and "gpu = false" in check.hint


def test_the_lone_node_is_labelled_only_on_a_one_node_swarm():
    assert lone_unlabelled_node([node("n1", leader=True)]).hostname == "n1"
    assert data_node_check([node("n1", leader=True)]).status == "ok"
    assert lone_unlabelled_node([node("n1", leader=True), node("n2")]) is None
    assert lone_unlabelled_node([node("n1", leader=True, availability="drain")]) is None
    check = data_node_check([node("n2"), node("n1", leader=True)])
    assert check.status == "fail" and check.hint.startswith("ragctl nodes label n1 data=true")


def test_two_data_nodes_the_hint_keeps_the_one_running_postgres():
    check = data_node_check([node("n1", data=True, leader=True), node("n2", data=True, replicas={"postgres": 1})])
    assert check.status == "fail" and check.hint.startswith("ragctl nodes label n1 data=false")
    assert "stays on n2, which runs Postgres" in check.hint


def test_a_data_node_down_or_drained_says_how_to_bring_it_back():
    down = data_node_check([node("n1", leader=True), node("n2", data=True, state="down")])
    assert down.status == "fail" and "systemctl start docker" in down.hint
    drained = data_node_check([node("n1", data=True, leader=True, availability="drain")])
    assert drained.status == "fail" and drained.hint == "docker node update --availability active n1"
