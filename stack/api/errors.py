"""How the API reports errors: one JSON envelope, ``{"error": {"code", "message", "hint"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stack.api import schemas
from stack.contract import RagError
from stack.pipeline.errors import PipelineError

log = logging.getLogger("stack.api")

#: The error responses a route may declare in its OpenAPI description.
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (401, 403, 404, 409, 413, 415, 422, 429, 503)}

class PipelineErrorWithStatus(PipelineError):
    """An API-level error that carries its own HTTP status."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.http_status, self.code, self.headers = status, code, headers or {}


def error_response(status: int, code: str, message: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": hint}}, status_code=status)


def status_of(exc: RagError) -> int:
    """The HTTP status of an error: its kind's (``http_status``), 422 for a pipeline error of no kind."""
    return exc.http_status


def headers_of(exc: RagError) -> dict[str, str]:
    """Headers an error sends with it (a 429's Retry-After)."""
    return exc.headers if isinstance(exc, PipelineErrorWithStatus) else {}


def install(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        response = error_response(status_of(exc), exc.code, exc.message, exc.hint)
        response.headers.update(headers_of(exc))  # Retry-After of a 429
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never FastAPI's raw list of pydantic errors: one sentence naming each bad field.
        return error_response(422, "invalid_request", f"Invalid request: {describe_validation(exc.errors())}.",
                              "the request's schema is at /openapi.json (browsable at /docs)")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            code, message = "not_found", f"No such endpoint: {request.method} {request.url.path}"
            hint = "the endpoints are listed at /docs and /openapi.json"
        elif exc.status_code == 405:
            code, message = "method_not_allowed", f"{request.url.path} does not accept {request.method}."
            hint = f"allowed: {(exc.headers or {}).get('Allow', 'see /docs')}"
        else:
            code, message, hint = f"http_{exc.status_code}", str(exc.detail), None
        response = error_response(exc.status_code, code, message, hint)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"Internal error: {type(exc).__name__}: {exc}"[:500],
                              "ragctl logs api   (the traceback is in the API's log)")


def describe_validation(errors) -> str:
    """``body.top_k: Input should be less than or equal to 50; query.status: …`` from pydantic's errors."""
    parts = []
    for error in list(errors)[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match its schema"
