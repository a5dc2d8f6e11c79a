"""The ``swarm`` runtime kind: the rendered stack file on a Docker Swarm cluster (docs/swarm.md).

``runtime`` holds the lifecycle (:class:`SwarmRuntime`); ``status`` what its state reads as;
``nodes`` the swarm's nodes; ``jobs`` one-shot tasks and the stack's secrets; ``preflight`` where
things may go; ``checks`` what doctor adds; ``state`` backup and restore.  It shares the Docker
engine wrapper (ragctl/engine/) and ragctl/runtime/container_stack.py with the Compose runtime and
inherits from neither."""

from ragctl.runtime.swarm.runtime import SwarmRuntime
from ragctl.runtime.swarm.status import NodeInfo, SwarmService, TaskState, node_table_rows, parse_label

__all__ = ["NodeInfo", "SwarmRuntime", "SwarmService", "TaskState", "node_table_rows", "parse_label"]
