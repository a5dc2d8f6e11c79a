"""The API's documentation pages work on a closed network (issue 10, item 9): ``/docs`` is Swagger UI
served from the package (``fastapi-offline``'s files), and nothing the stack serves makes a browser
reach another host.  Fetches /docs and every asset it references from the in-process app."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

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
def api(tmp_path, monkeypatch):
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


def test_docs_and_everything_it_loads_come_from_this_server(api):
    page = api.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert "SwaggerUIBundle" in html
    assert foreign(URL.findall(html)) == [], "the page names another host"
    assert foreign(refs(html, HTML_REFS)) == [], "the page loads from another host"
    assets = {urljoin(f"http://{HOST}/docs", ref) for ref in refs(html, HTML_REFS) if not ref.startswith("data:")}
    assert {urlsplit(a).path for a in assets} >= {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"}
    seen = set()
    while assets:
        asset = assets.pop()
        seen.add(asset)
        assert urlsplit(asset).hostname == HOST, asset
        response = api.get(asset)
        assert response.status_code == 200 and response.content, asset
        if urlsplit(asset).path.endswith(".css"):
            css = response.text
            assert foreign(URL.findall(css)) == [], f"{asset} names another host"
            assert foreign(refs(css, CSS_REFS)) == [], f"{asset} loads from another host"
            for ref in refs(css, CSS_REFS):
                if not ref.startswith("data:"):
                    nested = urljoin(asset, ref)
                    if nested not in seen:
                        assets.add(nested)
    # The script's own strings name hosts (links in help texts, JSON Schema ids); what it would fetch
    # by itself is the online validator's badge, turned off in the page's configuration.
    assert re.search(r'"validatorUrl":\s*null', html)


def test_the_schema_and_the_other_pages_name_no_other_host(api):
    schema = api.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    assert foreign(URL.findall(schema.text)) == []
    redirect = api.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and foreign(URL.findall(redirect.text)) == []
    # ReDoc's bundle fetches its vendor's logo from a CDN: the page is not served (404 in the envelope).
    redoc = api.get("/redoc")
    assert redoc.status_code == 404 and redoc.json()["error"]["code"] == "not_found"


def test_swagger_ui_speaks_openapi_3_1(api):
    """FastAPI's schema is OpenAPI 3.1: Swagger UI 4 (the swagger-ui-bundle package) cannot render it."""
    assert api.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert "isOAS31" in api.get("/docs/assets/swagger-ui-bundle.js").text
