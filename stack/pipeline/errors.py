"""Errors the pipeline raises for bad input or broken dependencies.

Each carries a stable ``code`` (for ``--json`` and the API), a message that says what happened
and why, and a ``hint``: the next thing to do.
"""

from __future__ import annotations

from stack.contract import RagError


class PipelineError(RagError):
    """Bad input or a broken dependency, as the pipeline meets it; the API answers 422 unless the
    kind says otherwise (``http_status``)."""

    http_status = 422
    #: Transient errors (a store or broker that is unreachable) may be retried; bad input never.
    transient = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint)


class EmptyFile(PipelineError):
    code = "empty_file"


class FileTooLarge(PipelineError):
    code = "too_large"


class UnsupportedFormat(PipelineError):
    code = "unsupported_format"
    http_status = 415


class CorruptDocument(PipelineError):
    code = "corrupt"


class PasswordProtected(PipelineError):
    code = "password_protected"


class DistributionProtected(PipelineError):
    """배포용 (distribution) HWP documents: the body is encrypted for viewing only."""

    code = "distribution_protected"


class ArchiveTooLarge(PipelineError):
    """A ZIP container (HWPX, DOCX) that would decompress past the limit: a zip bomb."""

    code = "zip_bomb"


class NoText(PipelineError):
    """The document parsed but holds no text (a scanned PDF without a text layer, say)."""

    code = "no_text"


class OcrUnavailable(PipelineError):
    """A scanned page or an image needs OCR and this machine has no tesseract (or not its language
    models); the hint is the apt-get line that installs it."""

    code = "ocr_unavailable"


class ModelMismatch(PipelineError):
    code = "model_mismatch"
    http_status = 409


class NotFound(PipelineError):
    code = "not_found"
    http_status = 404


class StoreUnavailable(PipelineError):
    code = "store_unavailable"
    http_status = 503
    transient = True


class Cancelled(PipelineError):
    """The caller asked to stop (checked between stages and embedding batches)."""

    code = "cancelled"
