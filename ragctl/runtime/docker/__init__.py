"""The ``docker`` runtime kind: the rendered Compose stack on one Docker engine.

``runtime`` holds the lifecycle (:class:`DockerRuntime`); ``status`` what its state reads as;
``preflight`` what ``up`` checks first; ``checks`` what doctor adds; ``facts`` what the security
checks read; ``state`` backup, restore and upgrade.  Docker itself is reached only through
ragctl/engine/."""

from ragctl.runtime.docker.runtime import DockerRuntime
from ragctl.runtime.docker.status import ContainerState, ServiceStatus

__all__ = ["ContainerState", "DockerRuntime", "ServiceStatus"]
