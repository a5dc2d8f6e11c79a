"""Long engine calls fail on inactivity, never on length: the watch on fake chunk streams (one that
stalls, one slow but moving), and bundle save/load on a fake engine.  No Docker needed."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from typing import ClassVar

import pytest

from ragctl import images
from ragctl.engine import ENGINE_INACTIVITY_S, INACTIVITY_ENV, Inactivity, inactivity_limit, is_timeout
from ragctl.errors import EngineStalled, RagctlError
from ragctl.project import init_project

LIMIT_S = 1.0


@pytest.fixture
def release():
    """Set at teardown: a stalled fake stream's thread ends with the test."""
    event = threading.Event()
    yield event
    event.set()


def slow(chunks: int, every_s: float, size: int = 1000):
    for _ in range(chunks):
        time.sleep(every_s)
        yield b"x" * size


def stalls_after(chunks: int, release: threading.Event, size: int = 1000):
    yield from (b"x" * size for _ in range(chunks))
    release.wait(60)  # an engine that keeps the connection open and sends nothing
    yield b"late"


def test_a_stalled_stream_fails_after_the_limit_with_what_and_how_long(release):
    cancelled = []
    got = 0
    watch = Inactivity("docker save of ragctl:1", hint="ragctl bundle save out.tar", limit_s=LIMIT_S,
                       so_far=lambda: f"{got} bytes written", cancel=lambda: cancelled.append(True), poll_s=0.1)
    started = time.monotonic()
    with pytest.raises(EngineStalled) as raised:
        for chunk in watch.stream(lambda: stalls_after(3, release)):
            got += len(chunk)
    elapsed = time.monotonic() - started
    assert LIMIT_S <= elapsed < LIMIT_S + 3, elapsed
    error = raised.value
    assert isinstance(error, RagctlError) and error.code == "engine_stalled"
    assert "docker save of ragctl:1 stalled" in error.message and "for 1 s" in error.message
    assert "3000 bytes written" in error.message and "limit 1 s" in error.message
    assert error.hint.startswith("ragctl bundle save out.tar") and INACTIVITY_ENV in error.hint
    assert got == 3000 and cancelled == [True]


def test_a_slow_stream_that_keeps_moving_never_times_out():
    watch = Inactivity("docker load of b.tar", hint="ragctl bundle load b.tar", limit_s=LIMIT_S, poll_s=0.1)
    started = time.monotonic()
    received = list(watch.stream(lambda: slow(10, 0.25)))
    assert len(received) == 10 and time.monotonic() - started > 2 * LIMIT_S  # far longer than the limit in all


def test_time_the_caller_spends_on_a_chunk_is_not_the_engines():
    watch = Inactivity("docker save", hint="ragctl bundle save f", limit_s=0.5, poll_s=0.05)
    seen = 0
    for _chunk in watch.stream(lambda: iter([b"a", b"b", b"c"])):
        time.sleep(0.8)  # a slow disk on our side
        seen += 1
    assert seen == 3


def test_beats_from_an_upload_count_as_progress():
    """load: the engine taking our blocks is progress, although it answers only at the end."""
    watch = Inactivity("docker load", hint="ragctl bundle load f", limit_s=LIMIT_S, poll_s=0.1)

    def upload_then_answer():
        for _ in range(8):
            time.sleep(0.3)
            watch.beat()
        return iter([{"stream": "Loaded image: ragctl:1\n"}])

    assert list(watch.stream(upload_then_answer)) == [{"stream": "Loaded image: ragctl:1\n"}]


def test_a_socket_timeout_inside_the_call_is_a_stall_and_other_errors_pass_through():
    def times_out():
        from urllib3.exceptions import ReadTimeoutError

        yield b"x"  # then what docker-py's raw read raises when the socket times out:
        raise ReadTimeoutError(None, "/images/ragctl:1/get", "Read timed out. (read timeout=30)")

    with pytest.raises(EngineStalled, match="docker save stalled"):
        list(Inactivity("docker save", hint="h", limit_s=30).stream(times_out))

    def refuses():
        raise ValueError("not a tar")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="not a tar"):
        list(Inactivity("docker load", hint="h", limit_s=30).stream(refuses))


def test_a_quiet_engine_that_is_visibly_at_work_is_not_stalled(release):
    """A build's RUN step that prints nothing while pip downloads: alive() says so, the clock restarts."""
    running = [True]

    def build():
        yield {"stream": "Step 1/2 : RUN pip install torch"}
        time.sleep(2.5)  # five times the limit without a byte
        yield {"stream": "Step 2/2 : CMD x"}
        running[0] = False

    watch = Inactivity("the build", hint="ragctl build", limit_s=0.5, poll_s=0.05,
                       alive=lambda: "step container running" if running[0] else None)
    assert len(list(watch.stream(build))) == 2


def test_the_limit_is_one_setting(monkeypatch):
    monkeypatch.delenv(INACTIVITY_ENV, raising=False)
    assert inactivity_limit() == ENGINE_INACTIVITY_S == 120
    monkeypatch.setenv(INACTIVITY_ENV, "600")
    assert inactivity_limit() == 600
    monkeypatch.setenv(INACTIVITY_ENV, "soon")
    assert inactivity_limit() == ENGINE_INACTIVITY_S
    assert Inactivity("x", hint="h").limit_s == ENGINE_INACTIVITY_S


def test_timeouts_are_recognised_through_wrapping():
    try:
        try:
            raise TimeoutError("timed out")
        except OSError as inner:
            raise ConnectionError("Connection aborted") from inner
    except ConnectionError as outer:
        assert is_timeout(outer)
    assert not is_timeout(ValueError("bad tar"))


# -- bundle save and load on a fake engine ------------------------------------------------------
class FakeImage:
    id = "sha256:" + "ab" * 32
    attrs: ClassVar[dict] = {"Size": 6000}


class FakeImages:
    def __init__(self, present: bool = True) -> None:
        self.present = present

    def get(self, name):
        from docker.errors import ImageNotFound

        if not self.present:
            raise ImageNotFound(name)
        return FakeImage()


class FakeApi:
    def __init__(self, save_stream=None, load_delay_s: float = 0.0, stall_load: threading.Event | None = None):
        self.save_stream, self.load_delay_s, self.stall_load = save_stream, load_delay_s, stall_load
        self.loaded = b""

    def get_image(self, name):
        return self.save_stream()

    def load_image(self, data, quiet=None):
        assert quiet is False  # the engine reports layers as it loads them
        for block in data:
            self.loaded += block
            if self.stall_load is not None:
                self.stall_load.wait(60)
            time.sleep(self.load_delay_s)
        return iter([{"status": "Loading layer", "id": "abc"}, {"stream": "Loaded image: ragctl:0.1.0\n"}])


class FakeClient:
    def __init__(self, api: FakeApi, images_present: bool = True) -> None:
        self.api, self.images = api, FakeImages(images_present)
        self.closed = False

    def close(self):
        self.closed = True


def a_tar(members: int = 3) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for n in range(members):
            info = tarfile.TarInfo(f"layer{n}/layer.tar")
            info.size = 2000
            tar.addfile(info, io.BytesIO(b"l" * 2000))
    return out.getvalue()


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    monkeypatch.setenv(INACTIVITY_ENV, str(LIMIT_S))
    root = tmp_path / "deploy"
    init_project(root, runtime="docker", stack={"workers": 1})
    return root


def use_engine(monkeypatch, client):
    monkeypatch.setattr(images, "engine", lambda timeout_s=30: client)


def test_bundle_save_of_a_slow_engine_finishes_and_reports_bytes(deployment, tmp_path, monkeypatch):
    body = a_tar()

    def slow_save():
        for start in range(0, len(body), 2048):
            time.sleep(0.2)  # 0.2 s a block, 2 s and more in all: twice the limit
            yield body[start:start + 2048]

    use_engine(monkeypatch, FakeClient(FakeApi(save_stream=slow_save)))
    reported = []
    bundle = tmp_path / "out" / "bundle.tar"
    manifest = images.save_bundle(deployment, bundle, progress=reported.append)
    assert reported[-1] == len(body) and reported == sorted(reported)
    assert images.read_bundle_manifest(bundle).images == manifest.images
    assert not bundle.with_name("bundle.tar.partial").exists()


def test_bundle_save_of_a_stalled_engine_fails_clearly_and_leaves_no_file(deployment, tmp_path, monkeypatch,
                                                                          release):
    client = FakeClient(FakeApi(save_stream=lambda: stalls_after(2, release, size=1024)))
    use_engine(monkeypatch, client)
    bundle = tmp_path / "bundle.tar"
    with pytest.raises(EngineStalled) as raised:
        images.save_bundle(deployment, bundle)
    assert "docker save of ragctl:" in raised.value.message and "0.00 GB of about 0.00 GB written" in raised.value.message
    assert raised.value.hint.startswith(f"ragctl bundle save {bundle}")
    assert client.closed and not bundle.exists() and not bundle.with_name("bundle.tar.partial").exists()


def write_bundle(path, body: bytes) -> None:
    manifest = {"ragctl_version": "0.1.0", "created": "2026-01-01T00:00:00Z",
                "images": [{"name": "ragctl:0.1.0", "id": FakeImage.id, "size_bytes": 1}]}
    path.write_bytes(body)
    with tarfile.open(path, mode="a") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo(images.BUNDLE_MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_bundle_load_into_a_slow_engine_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv(INACTIVITY_ENV, str(LIMIT_S))
    bundle = tmp_path / "b.tar"
    write_bundle(bundle, a_tar())
    api = FakeApi(load_delay_s=0.4)
    use_engine(monkeypatch, FakeClient(api))
    reported = []
    monkeypatch.setattr(images, "LOAD_BLOCK_BYTES", 4096)  # several slow blocks: longer than the limit
    assert images.load_bundle(bundle, progress=reported.append).images[0]["name"] == "ragctl:0.1.0"
    assert api.loaded == bundle.read_bytes() and reported[-1] == bundle.stat().st_size and len(reported) >= 3


def test_bundle_load_into_a_stalled_engine_fails_clearly(tmp_path, monkeypatch, release):
    monkeypatch.setenv(INACTIVITY_ENV, str(LIMIT_S))
    bundle = tmp_path / "b.tar"
    write_bundle(bundle, a_tar())
    use_engine(monkeypatch, FakeClient(FakeApi(stall_load=release)))
    with pytest.raises(EngineStalled) as raised:
        images.load_bundle(bundle)
    assert "docker load of b.tar stalled" in raised.value.message and "GB sent" in raised.value.message
    assert raised.value.hint.startswith(f"ragctl bundle load {bundle}")


def test_bundle_save_allows_the_engine_to_stage_a_big_image_before_its_first_byte(deployment, tmp_path,
                                                                                  monkeypatch):
    """docker save may copy the image aside first: silence before the first byte grows with the size."""
    monkeypatch.setattr(images, "EXPORT_BYTES_PER_S", 3000)  # the fake's 6000 bytes: 2 s more allowed
    body = a_tar()

    def staged_then_sent():
        time.sleep(2.2)  # more than twice the limit before the first byte
        yield body

    use_engine(monkeypatch, FakeClient(FakeApi(save_stream=staged_then_sent)))
    manifest = images.save_bundle(deployment, tmp_path / "bundle.tar")
    assert images.read_bundle_manifest(tmp_path / "bundle.tar").images == manifest.images
