"""How the API reports errors: one JSON envelope, ``{"error": {"code", "message", "hint"}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stack.api import schemas
from stack.api.uploads import UploadError
from stack.pipeline.errors import ModelMismatch, NotFound, PipelineError, StoreUnavailable, UnsupportedFormat

#: The error responses a route may declare in its OpenAPI description.
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (401, 404, 409, 413, 415, 422, 503)}

_STATUS_OF = {NotFound: 404, ModelMismatch: 409, StoreUnavailable: 503, UnsupportedFormat: 415}


class PipelineErrorWithStatus(PipelineError):
    """An API-level error that carries its own HTTP status."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status, self.code = status, code


def error_response(status: int, code: str, message: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": hint}}, status_code=status)


def status_of(exc: PipelineError) -> int:
    """The HTTP status of a pipeline error: its own, its kind's, else 422."""
    return getattr(exc, "status", None) or next(
        (code for kind, code in _STATUS_OF.items() if isinstance(exc, kind)), 422)


def install(app: FastAPI) -> None:
    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, exc: PipelineError) -> JSONResponse:
        return error_response(status_of(exc), exc.code, exc.message, exc.hint)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.hint)
