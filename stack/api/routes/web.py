"""The web page for colleagues: ``/`` (ask, upload, documents), its script and style sheet under
``/web/``.  Public, like ``/docs``: the page carries no data; every call it makes sends the API key
the user types (``Authorization: Bearer``).  Everything it loads comes from this server (the files
are package data in ``stack/api/web/``), and its Content-Security-Policy tells the browser to load
nothing from anywhere else.  docs/web.md describes the page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parents[1] / "web"
#: Where the page's script and style sheet are served from.
ASSETS = "/web"

#: Only this origin, for scripts, styles, images and the API calls; no frames, no plugins, no forms elsewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
def page() -> HTMLResponse:
    """The page (no key needed: it asks for one)."""
    return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"), headers=HEADERS)


def install(app: FastAPI) -> None:
    """``/`` and ``/web/*`` (the page's script and style sheet) on ``app``."""
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=WEB), name="web")
