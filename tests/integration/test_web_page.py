"""The page for colleagues (issue #13, item 3) in a real headless chromium (Debian's chromium and
chromium-driver, driven by selenium) against a real stack: redis-server, the Chroma server, the
uvicorn API and one Celery worker, started by the local runtime.  At desktop width and at 360 px:
the key, an upload of two real HWP/HWPX files watched to ``done``, a bad file's error, a Korean
question answered in a stream with citations, a source followed to its passage (checked against the
stored chunk), asking and following a citation with the keyboard alone, deleting as admin; and the
browser's own network log shows that the page asked nothing of any other origin.

Screenshots of each step go to $RAGCTL_TEST_ARTIFACTS (default test-artifacts/web/ in the repository).
Without chromium the module skips with the reason; under CI=true it fails instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from ragctl.project import read_dotenv
from ragctl.runtime.local import LocalRuntime
from tests.support.cli import FREE_PORTS
from tests.support.fixtures_factory import make_hwp
from tests.support.suite import REPO, SAMPLES, corpus_path, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server not installed (apt-get install redis-server)"
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "chromium not installed (apt-get install chromium chromium-driver; scripts/setup-test-host.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


if (_reason := _missing()) is not None:
    skip_or_fail(_reason, "browser", module=True)

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(os.environ.get("RAGCTL_TEST_ARTIFACTS") or REPO / "test-artifacts" / "web")
SAMPLE = SAMPLES / "휴가_규정.hwpx"
QUESTION = "연차 휴가는 며칠인가요?"


class Stack:
    def __init__(self, root: Path) -> None:
        self.runtime = LocalRuntime(root)
        self.runtime.up(workers=1, wait_s=180)
        self.url = self.runtime.status().api_url.rstrip("/")
        self.key = read_dotenv(root / ".env")["RAG_API_KEY"]
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def documents(self) -> dict[str, dict]:
        return {d["file_name"]: d for d in self.http.get("/api/documents").json()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    (root / "ragctl.toml").write_text('[project]\nname = "web-test"\n' + FREE_PORTS, encoding="utf-8")
    running = Stack(root)
    yield running
    running.runtime.down()


@pytest.fixture(scope="module")
def hwp_files(tmp_path_factory) -> list[Path]:
    """The sample .hwpx and a real .hwp: one from the corpus when it is here, else one python-hwpx writes."""
    corpus = corpus_path()
    if corpus is not None:
        return [SAMPLE, corpus / "hwp" / "hwpjs" / "selfintroduce.hwp"]
    print("corpus not found: the second HWP file is made by python-hwpx (tests/support/fixtures_factory.make_hwp)")
    folder = tmp_path_factory.mktemp("hwp")
    return [SAMPLE, make_hwp(folder / "selfintroduce.hwp", ["나를 소개 합니다", "어린 시절은 작은 동네에서 자랐습니다."])]


class Page:
    """One chromium window on the page, with its screenshots and its network log."""

    def __init__(self, stack: Stack, width: int, height: int, name: str) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-extensions", f"--window-size={width},{height}", "--lang=ko-KR"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko"})
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        self.stack, self.name, self.step, self.requests = stack, name, 0, []
        self.started = time.monotonic()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.driver.get(stack.url + "/")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait(self, condition, timeout_s: float = 30):
        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.1).until(condition)

    def by_id(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def shot(self, what: str) -> None:
        self.step += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.name}-{self.step:02d}-{what}.png"))
        print(f"{self.name} {self.step:02d} {what}: {time.monotonic() - self.started:.1f} s")

    def keys(self, *keys: str) -> None:
        ActionChains(self.driver).send_keys(*keys).perform()

    def tab_to(self, predicate: str, limit: int = 25) -> None:
        """Press Tab until ``predicate`` (JS, on the element with the focus ``el``) holds."""
        for _ in range(limit):
            self.keys(Keys.TAB)
            if self.js(f"const el = document.activeElement; return Boolean({predicate});"):
                return
        raise AssertionError(f"{limit} Tabs never reached {predicate}")

    def network(self) -> list[str]:
        """Every URL the page asked for so far (CDP Network.requestWillBeSent events)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        return self.requests

    def assert_nothing_foreign(self) -> None:
        urls = self.network()
        assert any(u.endswith("/web/app.js") for u in urls) and any("/api/" in u for u in urls), urls
        foreign = [u for u in urls if not u.startswith(self.stack.url + "/") and not u.startswith(("data:", "blob:"))]
        assert foreign == [], f"the page asked another origin: {foreign}"

    def enter_key(self, key: str) -> str:
        """Type the key and Enter; the status line's text once it answers."""
        status = self.by_id("key-status")
        before = status.text
        self.by_id("key").send_keys(key, Keys.ENTER)
        self.wait(lambda d: status.text and status.text != before)
        return status.text

    def ask_and_wait(self) -> None:
        self.wait(lambda d: self.by_id("answer").get_attribute("data-state") in ("done", "failed"), 180)
        assert self.by_id("answer").get_attribute("data-state") == "done", self.by_id("ask-status").text

    def close(self) -> None:
        self.driver.quit()


@pytest.fixture
def page_at(stack):
    pages = []

    def make(width: int, height: int, name: str) -> Page:
        pages.append(Page(stack, width, height, name))
        return pages[-1]

    yield make
    for page in pages:
        page.close()


def stored_chunk(stack: Stack, chunk_id: str) -> str:
    document_id = chunk_id.split(":", 1)[0]
    chunks = stack.http.get(f"/api/documents/{document_id}/chunks").json()
    return next(c["text"] for c in chunks if c["chunk_id"] == chunk_id)


def test_desktop_upload_watch_ask_and_read_the_passage(stack, hwp_files, page_at, tmp_path):
    page = page_at(1280, 900, "desktop")
    assert page.js("return document.documentElement.lang") == "ko"  # from navigator.language
    page.by_id("lang").click()
    assert page.by_id("ask-title").text == "Question" and page.js("return document.documentElement.lang") == "en"
    page.by_id("lang").click()
    assert page.by_id("ask-title").text == "질문"
    page.shot("page")

    # A wrong key: the page says so in plain words; the right one: admin (RAG_API_KEY).
    assert "RAG_API_KEY" in page.enter_key("not-the-key") and "error" in page.by_id("key-status").get_attribute("class")
    page.shot("wrong-key")
    page.enter_key(stack.key)
    page.wait(lambda d: page.by_id("key-status").get_attribute("data-role") == "admin")
    assert page.js("return sessionStorage.getItem('ragctl.key')") == stack.key

    # Two real HWP/HWPX files through the file input; each row follows its stages to done.
    page.by_id("files").send_keys("\n".join(str(p) for p in hwp_files))
    rows = lambda: page.driver.find_elements(By.CSS_SELECTOR, "#uploads li.upload")
    page.wait(lambda d: len(rows()) == 2)
    seen: dict[str, set[str]] = {p.name: set() for p in hwp_files}
    deadline, shot_mid = time.monotonic() + 180, False
    while time.monotonic() < deadline:
        states = {r.get_attribute("data-file"): r.get_attribute("data-status") for r in rows()}
        for name, status in states.items():
            seen[name].add(status)
        if not shot_mid and any(s not in (None, "queued", "done") for s in states.values()):
            page.shot("uploading")
            shot_mid = True
        if all(s in ("done", "failed", "error") for s in states.values()):
            break
        time.sleep(0.1)
    assert states == {p.name: "done" for p in hwp_files}, (states, [r.text for r in rows()])
    assert all("done" in s and len(s) >= 2 for s in seen.values()), seen  # watched going from a stage to done
    assert {r.find_element(By.CSS_SELECTOR, ".state").text for r in rows()} == {"완료"}
    page.shot("uploaded")

    # A file the API refuses: its row shows the API's own message (the JSON envelope), alone.
    broken = tmp_path / "잘린문서.hwp"
    whole = make_hwp(tmp_path / "whole.hwp", ["잘린 문서입니다."]).read_bytes()
    broken.write_bytes(whole[: len(whole) // 2])
    expected = stack.http.post("/api/documents", files=[("files", (broken.name, broken.read_bytes()))]).json()
    page.by_id("files").send_keys(str(broken))
    page.wait(lambda d: len(rows()) == 3 and rows()[2].get_attribute("data-status") == "error")
    shown = rows()[2].find_element(By.CSS_SELECTOR, ".message").text

    def same(text: str) -> str:  # the API's message names the upload's temporary file, new each time
        return re.sub(r"\b[0-9a-f]{32}\.part\b", "<upload>", text)

    assert same(shown) == same(f"{expected['error']['message']} ({expected['error']['hint']})"), shown
    page.shot("upload-error")

    # The documents list: both done, each with a delete button (an admin key).
    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#docs tbody tr[data-status='done']")) >= 2)
    listed = {r.find_element(By.CSS_SELECTOR, "td").text.split("\n")[0]: r
              for r in page.driver.find_elements(By.CSS_SELECTOR, "#docs tbody tr")}
    assert {p.name for p in hwp_files} <= set(listed)
    assert all(r.find_elements(By.CSS_SELECTOR, "button.delete") for r in listed.values())

    # A Korean question: the answer arrives in pieces, cites [n], and lists its sources.
    page.by_id("question").send_keys(QUESTION, Keys.ENTER)
    page.ask_and_wait()
    answer = page.by_id("answer")
    assert int(answer.get_attribute("data-chunks")) > 1  # streamed, not one block
    assert "15일" in answer.text and "출처:" not in answer.text
    cites = answer.find_elements(By.CSS_SELECTOR, "a.cite")
    assert cites, answer.text
    sources = page.driver.find_elements(By.CSS_SELECTOR, "#sources button.source")
    assert sources[0].find_element(By.CSS_SELECTOR, ".file").text == SAMPLE.name
    assert "제2조(연차 휴가)" in sources[0].find_element(By.CSS_SELECTOR, ".where").text
    page.shot("answer")

    # Following a citation opens its passage: the stored chunk's text, as the API keeps it.
    cites[0].click()
    passage = page.by_id("passage")
    page.wait(lambda d: passage.is_displayed())
    assert passage.get_attribute("data-n") == cites[0].text
    chunk_id = passage.get_attribute("data-chunk")
    assert page.by_id("passage-text").text == stored_chunk(stack, chunk_id).strip()
    assert "15일" in page.by_id("passage-text").text and SAMPLE.name in page.by_id("passage-title").text
    page.shot("passage")
    page.assert_nothing_foreign()


@pytest.fixture
def ingested(stack, hwp_files) -> None:
    """Both files done (the desktop test uploaded them through the page; run alone, the API does)."""
    files = [("files", (p.name, p.read_bytes())) for p in hwp_files]
    for entry in stack.http.post("/api/documents", files=files).json()["documents"]:
        deadline = time.monotonic() + 120
        while stack.http.get(f"/api/tasks/{entry['task_id']}").json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, entry
            time.sleep(0.25)
    assert all(stack.documents()[p.name]["status"] == "done" for p in hwp_files)


def test_phone_width_keyboard_only(stack, hwp_files, ingested, page_at):
    page = page_at(360, 780, "phone")
    assert page.js("return window.innerWidth") == 360

    def fits() -> bool:  # nothing wider than the screen: no sideways scrolling
        return page.js("return document.documentElement.scrollWidth") <= 360

    assert fits()
    page.shot("page")

    # Keyboard only, from the top: Tab to the key field, type, Enter.
    page.tab_to("el.id === 'key'")
    page.keys(stack.key, Keys.ENTER)
    page.wait(lambda d: page.by_id("key-status").get_attribute("data-role") == "admin")
    page.tab_to("el.id === 'question'")
    outline = page.js("const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth];")
    assert outline[0] != "none" and outline[1] != "0px", outline  # the focus is visible
    page.keys(QUESTION, Keys.ENTER)
    page.ask_and_wait()
    assert "15일" in page.by_id("answer").text and fits()
    page.shot("answer")
    page.tab_to("el.classList.contains('cite')")
    page.keys(Keys.ENTER)
    page.wait(lambda d: page.by_id("passage").is_displayed())
    assert page.js("return document.activeElement.id") == "passage"  # the focus moved to the passage
    number = int(page.by_id("passage").get_attribute("data-n"))
    assert page.by_id("passage-text").text == stored_chunk(stack, page.by_id("passage").get_attribute("data-chunk")).strip()
    assert fits()
    page.shot("passage")
    # Close goes back to its source in the list.
    page.tab_to("el.id === 'passage-close'")
    page.keys(Keys.ENTER)
    assert page.js("return document.activeElement.closest('li').id") == f"source-{number}"

    # The same files again: already there (done at once), said per file.
    page.by_id("files").send_keys("\n".join(str(p) for p in hwp_files))
    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#uploads li.upload[data-status='done']")) == 2)
    page.wait(lambda d: page.by_id("uploads").get_attribute("data-busy") is None)  # the list is refreshed
    assert all(m.text == "이미 있는 문서입니다"
               for m in page.driver.find_elements(By.CSS_SELECTOR, "#uploads li.upload .message"))

    # Drag and drop: a file dropped on the box (a DataTransfer built in the page) is uploaded and ingested.
    page.js("""
        const data = new DataTransfer();
        data.items.add(new File(["회의록: 다음 정기 점검은 3월 4일입니다.\\n"], "회의록 [v2].txt", {type: "text/plain"}));
        const drop = document.getElementById("drop");
        for (const kind of ["dragenter", "dragover", "drop"]) {
          drop.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
        }""")
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li.upload[data-file='회의록 [v2].txt'][data-status='done']"),
              120)
    page.wait(lambda d: page.by_id("uploads").get_attribute("data-busy") is None)
    assert stack.documents()["회의록 [v2].txt"]["status"] == "done"

    # Delete with the keyboard: Tab to the .hwp's delete button, Enter, confirm.
    target = hwp_files[1].name
    page.tab_to(f"el.classList.contains('delete') && el.getAttribute('aria-label').endsWith({json.dumps(target)})",
                limit=40)
    page.shot("delete")
    page.keys(Keys.ENTER)
    page.wait(lambda d: _alert(d))
    page.driver.switch_to.alert.accept()
    page.wait(lambda d: target in page.by_id("docs-status").text)
    assert target not in stack.documents() and SAMPLE.name in stack.documents()
    assert fits()
    page.shot("deleted")
    page.assert_nothing_foreign()


def test_an_ask_only_key_may_ask_and_is_told_why_it_may_not_upload(stack, ingested, page_at):
    if stack.http.get("/api/whoami").status_code == 404:
        pytest.skip("this API has no GET /api/whoami (ask-only keys): every key is the admin's")
    created = stack.http.post("/api/keys", json={"name": "web-page-ask", "role": "ask"})
    assert created.status_code == 201, created.text
    page = page_at(1280, 900, "ask-only")
    page.enter_key(created.json()["key"])
    page.wait(lambda d: page.by_id("key-status").get_attribute("data-role") == "ask")
    # The documents are listed, without delete buttons.
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#docs tbody tr[data-status='done']"))
    assert page.driver.find_elements(By.CSS_SELECTOR, "#docs button.delete") == []
    # An upload is refused (403), and the row says why in plain words.
    page.by_id("files").send_keys(str(SAMPLE))
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li.upload[data-status='error']"))
    assert "질문 전용 키" in page.by_id("uploads").text  # "this key may not do that (an ask-only key …)"
    page.by_id("question").send_keys(QUESTION, Keys.ENTER)
    page.ask_and_wait()
    assert "15일" in page.by_id("answer").text
    page.shot("refused-upload")
    page.assert_nothing_foreign()


def _alert(driver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 - raises until the confirm dialog is open
        return True
    except Exception:  # noqa: BLE001 - NoAlertPresentException
        return False


def test_a_scoped_key_sees_only_its_collections_and_uploads_into_the_chosen_one(stack, ingested, page_at, tmp_path):
    """Issue #26: the collection picker lists the key's collections and nothing else; an editor's
    upload lands in the chosen one; the documents list shows only the chosen collection's."""
    for name in ("web-hr", "web-finance"):
        assert stack.http.post("/api/collections", json={"name": name}).status_code in (201, 409)
    secret = tmp_path / "finance-only.md"
    secret.write_text("# 재무\n\n재무 전용 문서.\n", encoding="utf-8")
    assert stack.http.post("/api/documents", params={"collection": "web-finance"},
                           files=[("files", (secret.name, secret.read_bytes()))]).status_code in (200, 202)
    created = stack.http.post("/api/keys", json={"name": "web-page-hr", "role": "editor",
                                                 "collections": ["web-hr", "default"]})
    assert created.status_code == 201, created.text
    page = page_at(1280, 900, "scoped")
    page.enter_key(created.json()["key"])
    page.wait(lambda d: page.by_id("key-status").get_attribute("data-role") == "editor")
    options = [o.get_attribute("value") for o in page.driver.find_elements(By.CSS_SELECTOR, "#collection option")]
    assert options == ["default", "web-hr"]
    assert page.by_id("collection").get_attribute("value") == "default"  # the stack's default first
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#docs tbody tr[data-status='done']"))
    assert "finance-only.md" not in page.by_id("docs").text
    assert page.driver.find_elements(By.CSS_SELECTOR, "#docs button.delete")  # an editor deletes in its own
    from selenium.webdriver.support.ui import Select

    Select(page.by_id("collection")).select_by_value("web-hr")
    page.wait(lambda d: page.by_id("docs-status").text)  # "no documents yet" in web-hr
    note = tmp_path / "hr-note.md"
    note.write_text("# 인사\n\n인사 발령은 매달 1일이다.\n", encoding="utf-8")
    page.by_id("files").send_keys(str(note))
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li.upload[data-status='done']"), 180)
    in_hr = stack.http.get("/api/documents", params={"collection": "web-hr"}).json()
    assert [d["file_name"] for d in in_hr] == ["hr-note.md"]
    page.wait(lambda d: "hr-note.md" in page.by_id("docs").text)
    page.shot("scoped-picker")
    page.assert_nothing_foreign()


def test_a_document_with_parts_not_read_is_marked_in_the_list(stack, page_at, tmp_path):
    """Issue #26 part 5: the API's document body carries the parse report, and the page's document
    list marks the file, with what was not read in the marker's tooltip."""
    from tests.support.fixtures_factory import make_pdf

    pdf = make_pdf(tmp_path / "scan-inside.pdf", ["Budget figures for the second quarter.", ""])
    assert stack.http.post("/api/documents", files=[("files", (pdf.name, pdf.read_bytes()))]).status_code in (200, 202)
    deadline = time.monotonic() + 180
    while stack.documents().get(pdf.name, {}).get("status") != "done":
        assert time.monotonic() < deadline, stack.documents().get(pdf.name)
        time.sleep(0.5)
    body = stack.documents()[pdf.name]
    assert body["report"]["counts"] == {"page_no_text": 1} and body["report"]["findings"][0]["where"] == "p. 2"
    page = page_at(1280, 900, "lost")
    page.enter_key(stack.key)
    page.wait(lambda d: pdf.name in page.by_id("docs").text)
    row = page.driver.find_element(By.XPATH, f"//*[@id='docs']//tr[td[contains(., '{pdf.name}')]]")
    mark = row.find_element(By.CSS_SELECTOR, ".lost")
    assert mark.text == "일부 못 읽음" and "p. 2" in mark.get_attribute("title")
    page.shot("parts-not-read")
