"""The image's build id (issue #12: doctor finds a swarm node holding a different build under the same tag):
``ragctl build`` computes it from what goes into the image and bakes it in; doctor's ``image on NODE``
rows compare every node's with the image on the engine ragctl talks to, and with each other."""

from __future__ import annotations

import os
import re
import time

import pytest

from ragctl.images import SOURCE_ITEMS, BuildOptions, build_id, build_of
from ragctl.runtime.swarm.checks import NODE_PROBE, build_checks, probe_checks

IMAGE = "ragctl:e2e"
A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture
def source(tmp_path):
    """A small source tree shaped like the one the build context carries."""
    tree = tmp_path / "source"
    for item in SOURCE_ITEMS:
        if "." in item:
            (tree / item).parent.mkdir(parents=True, exist_ok=True)
            (tree / item).write_text(f"{item}\n")
        else:
            (tree / item / "sub").mkdir(parents=True)
            (tree / item / "__init__.py").write_text(f"# {item}\n")
            (tree / item / "sub" / "mod.py").write_text("X = 1\n")
    return tree


def test_the_rendered_dockerfile_bakes_the_build_id_in_after_the_last_run(deployment):
    text = (deployment / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM "):]  # the final stage: the build stage never sees the argument
    assert "RAGCTL_BUILD_ID" not in text[:text.rindex("\nFROM ")].split("ARG BASE_IMAGE")[1]
    lines = final.splitlines()
    arg = lines.index("ARG RAGCTL_BUILD_ID=")
    assert lines[arg + 1] == "ENV RAGCTL_BUILD_ID=$RAGCTL_BUILD_ID"
    assert lines[arg + 2] == 'LABEL io.ragctl.build="$RAGCTL_BUILD_ID"'
    # After every RUN and COPY: a new id changes metadata only, never a cached layer.
    assert max(i for i, line in enumerate(lines) if re.match(r"(RUN|COPY) ", line)) < arg


def test_build_id_is_deterministic_and_follows_what_goes_into_the_image(deployment, source, tmp_path):
    options = BuildOptions("ragctl:1", "ragctl-base:bookworm", "cpu")
    first = build_id(deployment, options, base_image_id="sha256:base", source=source)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert build_id(deployment, options, base_image_id="sha256:base", source=source) == first
    # Nothing that stays out of the image changes it: compiled files, a touched file's time.
    (source / "ragctl" / "__pycache__").mkdir()
    (source / "ragctl" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (source / "stack" / "sub" / "mod.pyc").write_bytes(b"\0")
    later = time.time() + 100
    os.utime(source / "stack" / "sub" / "mod.py", (later, later))
    assert build_id(deployment, options, base_image_id="sha256:base", source=source) == first

    seen = {first}

    def changed() -> str:
        new = build_id(deployment, options, base_image_id="sha256:base", source=source)
        assert new not in seen
        seen.add(new)
        return new

    (source / "stack" / "sub" / "mod.py").write_text("X = 2\n")  # a source file's bytes
    changed()
    (source / "templates" / "new.j2").write_text("")  # a new (empty) file
    changed()
    (source / "templates" / "new.j2").rename(source / "templates" / "renamed.j2")  # a file's name
    changed()
    (deployment / "Dockerfile").write_text((deployment / "Dockerfile").read_text() + "# changed\n")
    changed()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    options.wheelhouse = wheels
    changed()
    (wheels / "demo-1.0-py3-none-any.whl").rename(wheels / "demo-1.1-py3-none-any.whl")
    changed()
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    options.ca_bundle = ca
    changed()
    options.torch_variant = "cuda"
    changed()
    assert build_id(deployment, options, base_image_id="sha256:other", source=source) not in seen


def test_build_of_reads_the_environment_the_containers_see_then_the_label():
    # An image made FROM another keeps its label but may set another RAGCTL_BUILD_ID: the probe sees that.
    assert build_of({"Config": {"Labels": {"io.ragctl.build": A}, "Env": [f"RAGCTL_BUILD_ID={B}"]}}) == B
    assert build_of({"Config": {"Labels": {"io.ragctl.build": A}, "Env": ["PATH=/x"]}}) == A
    assert build_of({"Config": {"Labels": None, "Env": ["PATH=/x", f"RAGCTL_BUILD_ID={B}"]}}) == B
    assert build_of({"Config": {"Labels": {"io.ragctl.image": IMAGE}, "Env": ["PATH=/x"]}}) == ""
    assert build_of({}) == ""


def test_same_build_everywhere_is_ok_and_names_it():
    rows = build_checks(IMAGE, A, {"n1": A, "n2": A, "n3": A})
    assert [r.status for r in rows.values()] == ["ok"] * 3
    assert rows["n2"].name == "image on n2" and rows["n2"].detail == f"{IMAGE} runs on n2, build {A[:12]}"
    assert rows["n2"].data == {"build": A, "reference": A}


def test_a_node_with_another_build_fails_naming_it_both_builds_and_the_next_command():
    rows = build_checks(IMAGE, A, {"n1": A, "n2": B, "n3": A})
    assert [rows[n].status for n in ("n1", "n2", "n3")] == ["ok", "fail", "ok"]
    row = rows["n2"]
    assert row.detail == f"n2's {IMAGE} is build {B[:12]}, this engine's is build {A[:12]}"
    assert "ragctl build --push" in row.hint and "ragctl bundle load FILE on n2" in row.hint
    assert "ragctl up" in row.hint
    # Against this engine's image, not a vote: two nodes that agree with each other still differ from it.
    rows = build_checks(IMAGE, C, {"n1": A, "n2": A})
    assert {r.status for r in rows.values()} == {"fail"} and f"build {C[:12]}" in rows["n1"].detail


@pytest.mark.parametrize("reference", [None, ""])
def test_without_a_reference_the_nodes_are_compared_with_each_other(reference):
    # None: this engine lacks the image; "": its image carries no build id.
    rows = build_checks(IMAGE, reference, {"n1": A, "n2": B, "n3": A})
    assert [rows[n].status for n in ("n1", "n2", "n3")] == ["ok", "fail", "ok"]
    assert rows["n2"].detail == f"n2's {IMAGE} is build {B[:12]}, the other nodes' is build {A[:12]}"
    # A tie names no majority: every node fails, and each row lists every node's build.
    rows = build_checks(IMAGE, reference, {"n1": A, "n2": B})
    assert {r.status for r in rows.values()} == {"fail"}
    assert f"n1 {A[:12]}, n2 {B[:12]}" in rows["n1"].detail and "2 different builds" in rows["n2"].detail


def test_an_image_without_a_build_id_warns_to_rebuild():
    rows = build_checks(IMAGE, A, {"n1": A, "n2": ""})
    assert rows["n1"].status == "ok" and rows["n2"].status == "warn"
    assert "carries no build id" in rows["n2"].detail and rows["n2"].hint.startswith("rebuild: ragctl build")
    rows = build_checks(IMAGE, "", {"n1": "", "n2": ""})  # an older build everywhere
    assert {r.status for r in rows.values()} == {"warn"}


def test_probe_results_become_one_row_per_node_and_concern():
    now = time.time()

    def probe(node, build, clock=now, redis="ok"):
        return {"node": node, "state": "complete", "error": "",
                "output": {"node": node, "time": clock, "redis": redis, "build": build}}

    results = [probe("n1", A), probe("n2", B, clock=now - 60), probe("n3", None, redis="timed out"),
               {"node": "n4", "state": "rejected", "error": "No such image: ragctl:e2e", "output": None},
               {"node": "n5", "state": None, "error": "no task ran there", "output": None}]
    rows = {r.name: r for r in probe_checks(IMAGE, A, results, started=now - 1, finished=now + 1)}
    assert rows["image on n1"].status == "ok" and rows["image on n2"].status == "fail"
    assert rows["image on n3"].status == "warn"  # the probe ran an image with no build id
    assert rows["image on n4"].status == "fail" and rows["image on n4"].detail == f"n4 lacks {IMAGE}"
    assert rows["node probe n5"].status == "warn" and "image on n5" not in rows
    assert rows["clock on n1"].status == "ok" and rows["clock on n2"].status == "fail"
    assert rows["overlay from n3"].status == "fail" and rows["overlay from n1"].status == "ok"


def test_the_node_probe_reports_the_build_id_from_its_environment(monkeypatch, capsys):
    import json

    monkeypatch.setenv("NODE", "n9")
    monkeypatch.setenv("RAGCTL_BUILD_ID", A)
    exec(compile(NODE_PROBE, "NODE_PROBE", "exec"), {})  # noqa: S102 - the probe's own code, as the job runs it
    report = json.loads(capsys.readouterr().out)
    assert report["node"] == "n9" and report["build"] == A
