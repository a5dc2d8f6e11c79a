"""Errors the pipeline raises for bad input or broken dependencies.

Each carries a stable ``code`` (for ``--json`` and the API), a message that says what happened
and why, and a ``hint``: the next thing to do.
"""

from __future__ import annotations

# The classes live in the contract (the control plane shows them on a base install); the pipeline's
# modules import them from here.
from stack.contract import (  # noqa: F401
    ArchiveTooLarge,
    Cancelled,
    CorruptDocument,
    DistributionProtected,
    EmptyFile,
    FileTooLarge,
    ModelMismatch,
    NoText,
    NotFound,
    OcrUnavailable,
    PasswordProtected,
    PipelineError,
    RagError,
    StoreUnavailable,
    UnsupportedFormat,
)
