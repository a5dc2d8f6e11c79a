"""Issue #24 item 4: the data commands talk to one ``Backend``; the embedded backend and the stack's
client both implement every member of it, with the same parameters, so a command never asks which
one it holds."""

from __future__ import annotations

import inspect

import pytest

from ragctl.backends import Backend
from ragctl.backends.embedded import EmbeddedBackend
from ragctl.client import StackClient

MEMBERS = sorted(name for name in vars(Backend) if not name.startswith("_")) + ["mode"]


def parameters(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("implementation", [EmbeddedBackend, StackClient])
@pytest.mark.parametrize("member", MEMBERS)
def test_every_backend_has_every_member_with_the_protocols_parameters(implementation, member):
    assert hasattr(implementation, member), f"{implementation.__name__} lacks {member}"
    declared = getattr(Backend, member, None)
    if callable(declared):
        assert parameters(getattr(implementation, member)) == parameters(declared)


def test_the_protocol_covers_what_the_data_commands_need():
    assert {"ingest_files", "ask", "search", "documents", "document", "tasks", "collections",
            "extracted_where"} <= set(MEMBERS)
    assert EmbeddedBackend.mode == "embedded" and StackClient.mode == "stack"


def test_the_cli_never_asks_which_backend_it_holds():
    """No ``mode`` comparisons and no (mode, backend) tuples left in the data commands."""
    import re
    from pathlib import Path

    cli = Path(__file__).resolve().parents[2] / "ragctl" / "cli"
    offenders = [f"{path.name}:{number}: {line.strip()}"
                 for path in sorted(cli.glob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\bmode\s*[!=]=\s*[\"'](stack|embedded)[\"']|\w+,\s*\w+\s*=\s*open_backend\(", line)]
    assert offenders == []
