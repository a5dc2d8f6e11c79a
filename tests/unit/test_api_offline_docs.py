"""The API's documentation pages work on a closed network (issue 10, item 9): ``/docs`` is Swagger UI
served from the package (``fastapi-offline``'s files), and nothing the stack serves makes a browser
reach another host.  Fetches /docs and every asset it references from the in-process app."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from tests.support.offline_pages import CSS_REFS, HOST, HTML_REFS, URL, foreign, refs


def test_docs_and_everything_it_loads_come_from_this_server(pages):
    page = pages.get("/docs")
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
        response = pages.get(asset)
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


def test_the_schema_and_the_other_pages_name_no_other_host(pages):
    schema = pages.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    assert foreign(URL.findall(schema.text)) == []
    redirect = pages.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and foreign(URL.findall(redirect.text)) == []
    # ReDoc's bundle fetches its vendor's logo from a CDN: the page is not served (404 in the envelope).
    redoc = pages.get("/redoc")
    assert redoc.status_code == 404 and redoc.json()["error"]["code"] == "not_found"


def test_swagger_ui_speaks_openapi_3_1(pages):
    """FastAPI's schema is OpenAPI 3.1: Swagger UI 4 (the swagger-ui-bundle package) cannot render it."""
    assert pages.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert "isOAS31" in pages.get("/docs/assets/swagger-ui-bundle.js").text
