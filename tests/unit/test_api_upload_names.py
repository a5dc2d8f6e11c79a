"""Upload file names of every kind (issue 10, item 5), through the API in-process: a 92-character
Korean name used to give HTTP 500 (``OSError: File name too long``) and leave a ``.part`` file and an
empty folder.  Any name is stored under a safe one, the record keeps the name as sent, every error
is the JSON envelope, and no failed upload leaves anything behind."""

from __future__ import annotations

import errno
import itertools
import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack.api import uploads
from stack.api.app import create_app
from stack.api.uploads import MAX_STORED_NAME_BYTES, display_name, safe_file_name
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis

HOSTILE = '[]/\\:*?"<>|'
NAMES = [
    "가" * 92 + ".md",                                   # the report: 92 Korean characters, 279 bytes
    "보고서 " * 60 + ".txt",
    "x" * 300 + ".md",
    "😀" * 70 + ".md",
    "[draft] 메모 [v2].md",
    "[bold red]alarm[/].md", "[/].md", "[link=http://x]y[/link].md",
    'a[b]c/d\\e:f*g?h"i<j>k|l.md',
    "ctl\x01\x07\x1b[31mred\x7f\x9b.md",
    "new\nline\r.md",
    "tab\there.md",
    "..", ".", "...md", " .md ", "", ".hidden.md",
    "CON.md", "nul", "lpt1.txt",
    "C:\\Users\\me\\report.md", "/etc/passwd", "../../escape.md",
    "a" * 250 + "." + "b" * 40,                          # an "extension" too long to be one
    "문서." + "확장" * 10,
    "%22quoted%22.md", "semi;colon=x.md",
    "\u202eevil\u202dtxt.md",                            # right-to-left override
    "emoji 👩‍👩‍👧‍👦 family.md",
]
_content = itertools.count()


@pytest.fixture
def api(tmp_path, monkeypatch):
    from stack import coordination
    from stack.worker import app as worker_app

    sent = []
    monkeypatch.setattr(worker_app.app, "send_task", lambda name, **kw: sent.append((name, kw)))
    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    app = create_app(load_settings(tmp_path / "project", {"api_key": "k3y", "max_upload_mb": 1}))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = "Bearer k3y"
    client.sent, client.catalog, client.uploads = sent, app.state.pipeline.catalog, app.state.settings.data_path / "uploads"
    return client


def on_the_wire(name: str) -> str:
    """A header cannot hold a raw line break: clients (browsers, httpx) send CR and LF as %0D and %0A."""
    return name.replace("\r", "%0D").replace("\n", "%0A")


def multipart(*parts: tuple[str, bytes]) -> tuple[bytes, str]:
    """A multipart body with each file name as given (UTF-8, quotes and backslashes escaped as RFC 7578
    allows; control characters other than line breaks sent raw), unlike httpx, which percent-encodes them."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, data in parts:
        quoted = on_the_wire(name).replace("\\", "\\\\").replace('"', '\\"')
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{quoted}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode("utf-8", "surrogatepass")
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def post(client, *parts: tuple[str, bytes]):
    body, content_type = multipart(*parts)
    return client.post("/api/documents", content=body, headers={"content-type": content_type})


def note() -> bytes:
    return f"# note {next(_content)} {uuid.uuid4()}\n\nThe backup runs nightly at 02:00.\n".encode()


def leftovers(client) -> list[str]:
    """Temporary files, and folders with nothing in them, anywhere under uploads/."""
    found = [str(p) for p in (client.uploads / ".incoming").glob("*")]
    found += [str(p) for p in client.uploads.glob("*") if p.is_dir() and p.name != ".incoming" and not any(p.iterdir())]
    return found


def check_stored(client, name: str, response) -> None:
    name = on_the_wire(name)
    assert response.status_code == 202, response.text
    entry = response.json()["documents"][0]
    assert entry["file_name"] == display_name(name)
    record = client.catalog.get("default", entry["document_id"])
    assert record.file_name == display_name(name)
    stored = client.uploads / entry["document_id"]
    (path,) = list(stored.iterdir())
    # Stored under the safe form of the name the record keeps ("\u3000" alone is "upload" in both).
    assert record.stored_path == str(path) and path.name == safe_file_name(display_name(name))
    assert 0 < len(path.name.encode()) <= MAX_STORED_NAME_BYTES
    assert not any(ch in path.name for ch in '/\\:*?"<>|') and path.name.isprintable()
    if name.endswith((".md", ".txt")) and len(name) < 1000:
        assert path.suffix == name.rsplit(".", 1)[-1].join((".", ""))
    assert leftovers(client) == []


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_any_name_is_stored_safely_and_kept_in_the_record(api, name):
    check_stored(api, name, post(api, (name, note())))


def test_the_reported_name_and_its_record_round_trip_through_httpx(api):
    name = "2024년도 국가연구개발사업 성과평가 결과보고서 및 향후 추진계획(안) - 과학기술정보통신부 연구개발정책실 최종.hwp.md"
    assert len(name.encode()) > 255 // 2
    name = name * 2  # over 255 bytes, as reported
    response = api.post("/api/documents", files=[("files", (name, note(), "text/markdown"))])
    check_stored(api, name, response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.one_of(st.sampled_from(HOSTILE + "가힣한글 .😀👍\x00\x01\x1b\x7f\u3000"),
                                  st.characters(codec="utf-8")), max_size=400),
       st.sampled_from(["", ".md", ".txt", ".hwp.md"]))
def test_generated_names(api, stem, ext):
    check_stored(api, stem + ext, post(api, (stem + ext, note())))


@given(st.text(st.characters(codec="utf-8"), max_size=600))
@settings(max_examples=300, deadline=None)
def test_safe_file_name_is_always_one_storable_component(name):
    safe = safe_file_name(name)
    assert safe and safe not in (".", "..") and "/" not in safe and "\x00" not in safe
    assert len(safe.encode()) <= MAX_STORED_NAME_BYTES and safe == safe_file_name(safe)
    shown = display_name(name)  # the name as sent, less its folders and control characters
    assert shown and "/" not in shown and len(shown) <= uploads.MAX_DISPLAY_NAME_CHARS
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in shown)


# -- failures leave nothing behind, and answer in the envelope ------------------------------------
def envelope(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "hint"} and error["message"]
    if code:
        assert error["code"] == code
    return error


def test_a_failed_move_is_the_envelope_and_leaves_nothing(api, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.ENAMETOOLONG, "File name too long", str(dst))

    from stack.pipeline import storage  # the folder blob store adopts a received file with one rename

    monkeypatch.setattr(storage.os, "replace", refuse)
    error = envelope(post(api, ("가" * 92 + ".md", note()), ("b.md", note())), 500, "internal_error")
    assert "Traceback" not in error["message"]
    assert leftovers(api) == [] and not [p for p in api.uploads.iterdir() if p.name != ".incoming"]


def test_over_the_limit_unsupported_and_empty_uploads_leave_nothing(api):
    envelope(post(api, ("가" * 92 + ".md", b"x" * (1024 * 1024 + 1))), 413, "too_large")
    envelope(post(api, ("[bad].bin", bytes(range(256)) * 8)), 415)
    envelope(post(api, ("empty.md", b"")), 422)
    envelope(api.post("/api/documents", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}),
             400, "bad_multipart")
    body, content_type = multipart(("cut.md", note() * 1000))
    envelope(api.post("/api/documents", content=body[: len(body) // 2], headers={"content-type": content_type}),
             400, "bad_multipart")
    envelope(api.post("/api/documents", json={"files": "no"}), 415, "not_multipart")
    assert leftovers(api) == [] and not [p for p in api.uploads.iterdir() if p.name != ".incoming"]


def test_queue_down_mid_batch_keeps_the_queued_copy_and_no_temporary_files(api, monkeypatch):
    from stack.worker import app as worker_app

    def down(name, **kw):
        raise ConnectionError("redis away")

    monkeypatch.setattr(worker_app.app, "send_task", down)
    envelope(post(api, ("첫째.md", note()), ("둘째 [x].md", note()), ("셋째.md", note())), 503, "queue_unavailable")
    assert leftovers(api) == []
    # The first file is recorded as failed with its stored copy, for POST /api/documents/{id}/retry.
    (folder,) = [p for p in api.uploads.iterdir() if p.name != ".incoming"]
    assert [p.name for p in folder.iterdir()] == ["첫째.md"]


@pytest.mark.parametrize("content", [b"", b"\x7fELF\x02\x01\x01" + b"\0" * 64, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600])
def test_a_refused_upload_is_named_as_its_user_named_it(api, content):
    """An upload waits under a temporary name (``<hex>.part``); a refusal names the file as sent."""
    name = "[초안] 보고서 v2.hwp"
    response = api.post("/api/documents", files={"files": (name, content)})
    assert response.status_code in (415, 422), response.text
    message = response.json()["error"]["message"]
    assert message.startswith(name) and ".part" not in message, message
