"""What a page served by the stack makes a browser fetch: the references in HTML and CSS, and which
of them name another host; ``pages``: the app in-process with an API key set (a fixture)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis

HOST = "testserver"
URL = re.compile(r"""https?://[^\s"'<>()\\]+""", re.IGNORECASE)
# In HTML: what a browser loads or follows by itself.  In CSS: url(...) and @import.
HTML_REFS = re.compile(r"""\b(?:src|href|action|data|poster|srcset)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
CSS_REFS = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']""", re.IGNORECASE)
# Not fetched: XML namespaces inside inline SVG (data: URIs) name, they never load.
NAMESPACES = ("http://www.w3.org/",)


@pytest.fixture
def pages(tmp_path, monkeypatch):
    from stack import coordination

    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    # An API key set: the documentation pages still need none (they carry no data).
    return TestClient(create_app(load_settings(tmp_path / "project", {"api_key": "k3y"})))


def foreign(urls) -> list[str]:
    """Absolute URLs (or scheme-relative ones) naming a host other than this server."""
    out = []
    for url in urls:
        if url.startswith(NAMESPACES):
            continue
        host = urlsplit(url if "://" in url else f"http:{url}").hostname
        if host and host != HOST:
            out.append(url)
    return out


def refs(text: str, pattern: re.Pattern) -> list[str]:
    return [next(g for g in m.groups() if g) for m in pattern.finditer(text)]
