"""A swarm stack's data, through the data node's engine.

The data services' volumes are on the data node: backup and restore copy files through its
containers, so the CLI must talk to that node's engine (the manager, in the usual layout; else
DOCKER_HOST at the data node).  The catalog, postings, extracted text and uploads are one
PostgreSQL dump (pg_dump -Fc), restored with pg_restore into the fresh server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ragctl.deploy import IMAGE_UID, LABEL_KEY
from ragctl.engine import engine
from ragctl.runtime.base import is_running, store_tree_tar
from ragctl.runtime.swarm.jobs import NAMESPACE_LABEL

if TYPE_CHECKING:
    from ragctl.runtime.swarm.runtime import SwarmRuntime



def stop_for_restore(runtime: SwarmRuntime) -> bool:
    was_running = is_running(runtime)
    runtime.preflight()  # the swarm, the labels and the image: refused before anything is removed
    if was_running:
        runtime.service_container("postgres")  # restore writes the volumes through this engine
    runtime.down(volumes=True)
    return was_running


def restore_stores(runtime: SwarmRuntime, archive: Path) -> None:
    """Fresh volumes for Chroma and Redis with the archive's files (through a container that mounts
    them on this engine, the data node's); the PostgreSQL dump waits for the server (start_after_restore)."""
    client = engine(timeout_s=600)
    config = runtime.config
    uid = config.uid or IMAGE_UID
    labels = {NAMESPACE_LABEL: runtime.name, LABEL_KEY: runtime.name}
    mounts = {"chroma": "/chroma", "redis": "/data"}
    for tree in mounts:
        client.volumes.create(f"{runtime.name}_{tree}_data", labels=labels)
    helper = client.containers.create(f"{config.image}:{config.tag}", ["true"], user=f"{uid}:{uid}",
                                      labels={LABEL_KEY: runtime.name},
                                      volumes={f"{runtime.name}_{t}_data": {"bind": m, "mode": "rw"}
                                               for t, m in mounts.items()})
    try:
        for tree, mount in mounts.items():
            content = store_tree_tar(archive, tree, owner=uid)
            if content:
                helper.put_archive(mount, content)
    finally:
        helper.remove(force=True)


