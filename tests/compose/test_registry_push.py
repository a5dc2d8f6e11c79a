"""``ragctl build --push`` and ``ragctl.images.push_image`` against a real private registry: Debian's
``docker-registry`` (the distribution v2 server) run by the test on 127.0.0.1:<free port>, which the
engine reaches over plain HTTP (127.0.0.0/8 is an insecure registry by default).

The image pushed is a tiny one made here (``docker import`` of a one-file tar with a unique body), so
its layer really travels; the stack's image is never built here.  Every tag made here is removed;
nothing else on the engine is touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.docker_image import free_port, ragctl, require_engine, set_stack
from tests.support.suite import skip_or_fail

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


class Registry:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen) -> None:
        self.folder, self.port, self.process = folder, port, process
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"

    def log(self) -> str:
        return (self.folder / "registry.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@contextmanager
def registry(*, read_only: bool = False):
    """A docker-registry process on a free loopback port with its own storage folder; stopped and its
    folder removed at the end."""
    binary = shutil.which("docker-registry")
    if binary is None:
        skip_or_fail("docker-registry is not installed: bash scripts/setup-test-host.sh (as root)", "docker")
    folder = Path(tempfile.mkdtemp(prefix="ragctl-registry-"))
    port = free_port()
    maintenance = "  maintenance:\n    readonly:\n      enabled: true\n" if read_only else ""
    (folder / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n{maintenance}"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {uuid.uuid4().hex}\n")
    with (folder / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(folder / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    running = Registry(folder, port, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"docker-registry exited {process.returncode}:\n{running.log()}"
            try:
                if httpx.get(f"{running.url}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"docker-registry did not answer within 30 s:\n{running.log()}"
            time.sleep(0.2)
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def engine_client():
    require_engine()
    from ragctl.engine import engine

    return engine(timeout_s=60)


@pytest.fixture(scope="module")
def private_registry(engine_client):
    with registry() as running:
        yield running


@pytest.fixture
def tiny_image(engine_client):
    """make(name) imports a fresh one-file image (unique content, so a unique layer) as ``name``;
    the tags made are removed at the end."""
    made: list[str] = []

    def make(name: str) -> str:
        body = f"ragctl registry test {uuid.uuid4()}\n".encode()
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("ragctl-test.txt")
            info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(body))
        repository, _, tag = name.rpartition(":")
        engine_client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag)
        made.append(name)
        return engine_client.images.get(name).id

    yield make
    from docker.errors import ImageNotFound

    for name in made:
        try:
            engine_client.images.remove(name)
        except ImageNotFound:
            pass


def unique_tag() -> str:
    return f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"


def test_push_lands_in_the_registry_and_pulls_back_as_the_same_image(private_registry, tiny_image, engine_client):
    from docker.errors import ImageNotFound

    from ragctl.images import push_image, registry_of

    name, tag = "ragctl-test", unique_tag()
    image = f"{private_registry.host}/{name}:{tag}"
    assert registry_of(image) == private_registry.host
    image_id = tiny_image(image)

    started = time.monotonic()
    pushed = push_image(image)
    print(f"\npush: {time.monotonic() - started:.2f} s, {pushed['digest']}")
    assert pushed["image"] == image and pushed["digest"].startswith("sha256:")

    # The registry's own HTTP API agrees: the repository, the tag, and the manifest's digest.
    api = private_registry.url + "/v2"
    assert name in httpx.get(f"{api}/_catalog", timeout=10).json()["repositories"]
    assert tag in httpx.get(f"{api}/{name}/tags/list", timeout=10).json()["tags"]
    answer = httpx.get(f"{api}/{name}/manifests/{tag}", headers={"Accept": MANIFEST_V2}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Docker-Content-Digest"] == pushed["digest"]
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == pushed["digest"]  # the bytes hash to it
    manifest = answer.json()
    assert manifest["mediaType"] == MANIFEST_V2 and manifest["config"]["digest"] == image_id
    for blob in [manifest["config"], *manifest["layers"]]:  # every blob the manifest names is stored
        head = httpx.head(f"{api}/{name}/blobs/{blob['digest']}", timeout=10)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == blob["size"], blob

    # Gone from this engine (its only tag removed), then pulled back from the registry: the same image.
    engine_client.images.remove(image)
    with pytest.raises(ImageNotFound):
        engine_client.images.get(image)
    pulled = engine_client.images.pull(f"{private_registry.host}/{name}", tag=tag)
    assert pulled.id == image_id
    assert f"{private_registry.host}/{name}@{pushed['digest']}" in pulled.attrs["RepoDigests"]


def test_push_without_a_registry_in_the_name_says_how_to_name_one():
    from ragctl.images import ImageError, push_image, split_tag

    with pytest.raises(ImageError) as caught:
        push_image("ragctl:0.1.0")
    error = caught.value
    assert "names no registry" in error.message
    assert 'image = "REGISTRY_HOST:PORT/ragctl"' in error.hint and "[stack]" in error.hint
    assert "ragctl bundle save" in error.hint and "ragctl bundle load" in error.hint
    # A registry's port is not a tag.
    assert split_tag("127.0.0.1:5000/ragctl") == ("127.0.0.1:5000/ragctl", "latest")
    assert split_tag("127.0.0.1:5000/ragctl:1.2") == ("127.0.0.1:5000/ragctl", "1.2")


def test_push_of_an_image_this_engine_lacks_says_so(private_registry, engine_client):
    from ragctl.images import ImageError, push_image

    with pytest.raises(ImageError) as caught:
        push_image(f"{private_registry.host}/ragctl-test:absent-{unique_tag()}")
    assert "is not on this engine" in caught.value.message and "refused" not in caught.value.message


def test_a_stopped_registry_is_a_clear_refusal_within_seconds(tiny_image):
    from ragctl.images import ImageError, push_image

    with registry() as stopped:
        image = f"{stopped.host}/ragctl-test:{unique_tag()}"
        tiny_image(image)
        stopped.stop()
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        push_image(image)
    elapsed = time.monotonic() - started
    error = caught.value
    print(f"\nrefused after {elapsed:.2f} s: {error.stderr}")
    assert elapsed < 30
    assert error.message == f"The registry {stopped.host} refused {image}."
    assert "connection refused" in error.stderr and f"{stopped.host}/v2/" in error.stderr
    assert f"curl http://{stopped.host}/v2/" in error.hint
    assert "Traceback" not in error.detail()


def test_a_read_only_registry_refuses_with_its_own_words(tiny_image):
    from ragctl.images import ImageError, push_image

    with registry(read_only=True) as read_only:
        image = f"{read_only.host}/ragctl-test:{unique_tag()}"
        tiny_image(image)
        with pytest.raises(ImageError) as caught:
            push_image(image)
        assert "refused" in caught.value.message
        # The registry answers the blob upload with 405 "Method not allowed": its words reach the user.
        assert "405" in caught.value.stderr and "Method not allowed" in caught.value.stderr
        assert "POST /v2/ragctl-test/blobs/uploads/" in read_only.log()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "ragctl-push"
    ragctl("init", str(root), "--runtime", "docker", "--workers", "1", "--no-gpu", "--yes", timeout=120)
    # A base image no engine has: a build that started would fail on it, not on the registry.
    set_stack(root, base_image=f"ragctl-test-absent:{unique_tag()}")
    return root


def test_build_push_refuses_a_registryless_image_before_building(project, engine_client):
    started = time.monotonic()
    done = ragctl("build", "--push", "--json", root=project, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "image_error" and "names no registry" in error["message"], error
    assert "ragctl bundle save" in error["hint"] and 'image = "REGISTRY_HOST:PORT/ragctl"' in error["hint"]
    assert "Traceback" not in done.stderr
    assert elapsed < 20, f"{elapsed:.1f} s"  # a Python start and a render, never a build
    print(f"\nrefused in {elapsed:.2f} s")


def test_build_push_with_a_registry_image_goes_on_to_build(project, private_registry, engine_client):
    set_stack(project, image=f"{private_registry.host}/ragctl")
    done = ragctl("build", "--push", "--json", root=project, timeout=120, check=False)
    error = json.loads(done.stdout)["error"]
    # Past the registry check: the build itself starts, and stops on the (absent) base image.
    assert "base image" in error["message"] and "is not on this engine" in error["message"], error
