"""The ``local`` runtime kind: the stack's services as supervised processes on 127.0.0.1.

``runtime`` holds the lifecycle (:class:`LocalRuntime`); ``state`` the supervisor's files under run/
and what they read as; ``plan`` what it will run (checked before anything starts); ``facts`` what
the running services say of themselves; ragctl/runtime/supervisor.py runs the plan."""

from ragctl.runtime.local.runtime import LocalRuntime
from ragctl.runtime.local.state import (
    PLAN_FILE,
    RuntimeStatus,
    load_state_file,
    read_state,
    run_dir,
    write_json_atomic,
)

__all__ = ["PLAN_FILE", "LocalRuntime", "RuntimeStatus", "load_state_file", "read_state", "run_dir",
           "write_json_atomic"]
