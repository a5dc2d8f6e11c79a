"""Reading one input file safely (issue #24 item 3: the code lives in ``stack.contract``, which the CLI
imports on a base install to read a file before it uploads it; the pipeline's modules import it from here)."""

from __future__ import annotations

from stack.contract import (  # noqa: F401
    BrokenSymlink,
    FileChanged,
    FileTooLarge,
    NotFound,
    NotRegularFile,
    PipelineError,
    Snapshot,
    Unreadable,
    check_regular,
    copy_to,
    discard,
    os_error,
    printable,
    snapshot,
    spooled,
    too_large,
)
