"""The page for colleagues at ``/`` (issue #13, item 3), in-process: public (no key), everything it
loads comes from this server, the browser is told so (Content-Security-Policy), its files ship as
package data, and its script never inserts text as HTML.  The browser tests are in
tests/integration/test_web_page.py."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from urllib.parse import urljoin, urlsplit

from tests.support.offline_pages import CSS_REFS, HOST, HTML_REFS, URL, foreign, refs
from tests.support.suite import REPO

WEB = REPO / "stack" / "api" / "web"


def test_the_page_and_its_assets_need_no_key_and_come_from_this_server(pages):
    page = pages.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in csp
    html = page.text
    assert foreign(URL.findall(html)) == [] and foreign(refs(html, HTML_REFS)) == []
    assets = {urljoin(f"http://{HOST}/", ref) for ref in refs(html, HTML_REFS) if not ref.startswith(("data:", "#"))}
    assert {urlsplit(a).path for a in assets} == {"/web/app.js", "/web/app.css"}
    for asset in assets:
        response = pages.get(asset)  # no Authorization header
        assert response.status_code == 200 and response.content, asset
        assert foreign(URL.findall(response.text)) == [], asset
        if asset.endswith(".css"):
            assert [ref for ref in refs(response.text, CSS_REFS) if not ref.startswith("data:")] == []
    assert "javascript" in pages.get("/web/app.js").headers["content-type"]
    # The API itself still wants the key.
    assert pages.get("/api/documents").status_code == 401
    assert pages.get("/web/missing.js").status_code == 404


def test_the_script_inserts_user_text_as_text():
    script = (WEB / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    # Every API call is relative to the page (so it works under a path prefix behind a proxy).
    for path in re.findall(r"""(?:call|fetch)\(\s*[`"']([^`"']+)""", script):
        assert not path.startswith(("/", "http")), path


def test_the_pages_files_are_package_data():
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    patterns = data["stack.api"]
    for path in WEB.iterdir():
        relative = path.relative_to(REPO / "stack" / "api").as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_both_languages_name_the_same_texts():
    script = (WEB / "app.js").read_text(encoding="utf-8")
    key = re.compile(r'(?:^\s+|, )"?([\w.]+)"?: "', re.MULTILINE)
    ko, en = (set(key.findall(block))
              for block in re.search(r"ko: \{(.*?)\n  \},\n  en: \{(.*?)\n  \},", script, re.DOTALL).groups())
    assert ko == en
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert set(re.findall(r'data-i18n="([\w.]+)"', html)) <= ko
