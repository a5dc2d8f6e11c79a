"""The parts of build, wheelhouse, bundle and the docker runtime that need no engine."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from ragctl.deploy import parse_bytes
from ragctl.images import (
    BUNDLE_MANIFEST,
    BuildOptions,
    ImageError,
    _requirements_only_for,
    read_bundle_manifest,
    write_build_context,
)
from ragctl.project import init_project, set_config_value
from ragctl.runtime.docker import ContainerState, ServiceStatus


def test_build_context_carries_the_wheelhouse_and_ca_in_the_build_folder_only(deployment, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / "notes.txt").write_text("not a wheel")
    ca = tmp_path / "corp-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    options = BuildOptions.for_project(deployment, wheelhouse=wheels, ca_bundle=ca)
    out = io.BytesIO()
    names = write_build_context(deployment, options, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = set(tar.getnames())
        assert tar.extractfile("build/ca.crt").read() == ca.read_bytes()
    assert {"Dockerfile", "src/pyproject.toml", "src/stack/pipeline/service.py", "src/templates/compose.yaml.j2",
            "build/wheels/demo-1.0-py3-none-any.whl", "build/ca.crt"} <= members
    assert "build/wheels/notes.txt" not in members
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_build_context_without_options_has_an_empty_ca_and_no_wheels(deployment):
    out = io.BytesIO()
    write_build_context(deployment, BuildOptions.for_project(deployment), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert tar.getmember("build/ca.crt").size == 0
        assert not [n for n in tar.getnames() if n.startswith("build/wheels/")]


def test_build_options_come_from_the_command_line_then_ragctl_toml(deployment, tmp_path):
    set_config_value(deployment, "stack", "base_image", "registry.corp/base:12")
    set_config_value(deployment, "stack", "wheelhouse", "wheels")
    options = BuildOptions.for_project(deployment)
    assert options.base_image == "registry.corp/base:12" and options.wheelhouse == deployment / "wheels"
    assert BuildOptions.for_project(deployment, base_image="other:1").base_image == "other:1"
    with pytest.raises(ImageError, match="holds no wheels"):
        options.check()
    with pytest.raises(ImageError, match="does not exist"):
        BuildOptions("ragctl:1", "base:1", "cpu", ca_bundle=tmp_path / "missing.crt").check()
    with pytest.raises(ImageError, match="Unknown torch variant"):
        BuildOptions("ragctl:1", "base:1", "rocm").check()


def _wheel(folder, name, version, requires):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {r}\n" for r in requires)
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


def test_wheelhouse_finds_what_only_the_image_python_needs(tmp_path):
    _wheel(tmp_path, "redis", "8.1.0", ['async-timeout>=4.0.3; python_full_version < "3.11.3"',
                                        'hiredis>=3; extra == "hiredis"', "packaging"])
    _wheel(tmp_path, "packaging", "26.0", [])
    assert _requirements_only_for(tmp_path, "3.11.2") == {"async-timeout>=4.0.3"}
    assert _requirements_only_for(tmp_path, "3.11.9") == set()
    _wheel(tmp_path, "async_timeout", "5.0.1", [])
    assert _requirements_only_for(tmp_path, "3.11.2") == set()


def test_bundle_manifest_is_read_from_the_tar_and_bad_files_are_refused(tmp_path):
    bundle = tmp_path / "images.tar"
    manifest = {"ragctl_version": "0.1.0", "created": "2026-11-26T00:00:00Z",
                "images": [{"name": "ragctl:0.1.0", "id": "sha256:abc", "size_bytes": 1}]}
    with tarfile.open(bundle, "w") as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo(BUNDLE_MANIFEST)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    assert read_bundle_manifest(bundle).images[0]["id"] == "sha256:abc"
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 10)
    with pytest.raises(ImageError, match="not a ragctl bundle"):
        read_bundle_manifest(junk)
    with pytest.raises(ImageError, match="does not exist"):
        read_bundle_manifest(tmp_path / "missing.tar")


def test_sizes_and_service_states():
    assert parse_bytes("8g") == 8 << 30 and parse_bytes("512m") == 512 << 20 and parse_bytes("1024") == 1024
    with pytest.raises(ValueError):
        parse_bytes("lots")

    def container(state, health):
        return ContainerState(name="c", service="worker", state=state, health=health, exit_code=None)

    assert ServiceStatus("worker", 2, [container("running", "healthy")] * 2).state == "healthy"
    assert ServiceStatus("worker", 3, [container("running", "healthy")] * 2).state == "starting"
    assert not ServiceStatus("worker", 3, [container("running", "healthy")] * 2).ready
    assert ServiceStatus("worker", 1, [container("running", "unhealthy")]).state == "unhealthy"
    assert ServiceStatus("worker", 1, [container("exited", None)]).state == "exited"
    assert ServiceStatus("worker", 1, []).state == "missing"
    assert ServiceStatus("beat", 1, [container("running", None)]).state == "running"


def test_set_config_value_keeps_comments_and_other_tables(tmp_path):
    root = tmp_path / "p"
    init_project(root, {"chunk_size": 300}, runtime="docker", stack={"workers": 2})
    path = root / "ragctl.toml"
    path.write_text(path.read_text() + "# operator's note\n")
    set_config_value(root, "stack", "workers", 5)
    set_config_value(root, "stack", "worker_memory", "3g")
    set_config_value(root, "newtable", "flag", True)
    import tomllib

    data = tomllib.loads(path.read_text())
    assert data["stack"] == {"workers": 5, "worker_memory": "3g"} and data["settings"]["chunk_size"] == 300
    assert data["newtable"] == {"flag": True} and "# operator's note" in path.read_text()
