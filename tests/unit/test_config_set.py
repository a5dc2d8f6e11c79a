"""``ragctl config set`` without a gate: validated by the settings model, written with comments kept,
secrets and unknown names refused, a value the environment beats said so (and refused with --eval).
The gated path runs the real pipeline: tests/integration/test_eval.py."""

from __future__ import annotations

import json
import tomllib

from tests.support.cli import as_json, make_project, output, ragctl


def test_config_set_writes_a_valid_value_and_refuses_the_rest(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", "\n[settings]\n# Korean first\ntop_k = 8\n")
    done = as_json(ragctl(project, "config", "set", "dense_weight_korean", "0.4", "--json"))
    assert done["value"] == 0.4 and done["overridden_by"] is None and not done["reindex_needed"]
    assert as_json(ragctl(project, "config", "set", "chunk_tokens", "120", "--json"))["reindex_needed"]
    text = (project / "ragctl.toml").read_text(encoding="utf-8")
    assert "# Korean first" in text and tomllib.loads(text)["settings"] == {
        "top_k": 8, "dense_weight_korean": 0.4, "chunk_tokens": 120}
    for args, code in ((("top_kk", "3"), "unknown_setting"), (("top_k", "0"), "invalid_setting"),
                       (("openai_api_key", "sk-x"), "secret_setting"), (("project_root", "/"), "unknown_setting")):
        refused = ragctl(project, "config", "set", *args, "--json")
        assert refused.exit_code == 2 and json.loads(refused.stdout)["error"]["code"] == code, output(refused)
    assert "Did you mean top_k?" in output(ragctl(project, "config", "set", "top_kk", "3"))
    assert (project / "ragctl.toml").read_text(encoding="utf-8") == text

    monkeypatch.setenv("RAG_TOP_K", "3")
    beaten = as_json(ragctl(project, "config", "set", "top_k", "4", "--json"))
    assert beaten["overridden_by"] == "the environment variable RAG_TOP_K"
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "q?", "answer": "a"}\n', encoding="utf-8")
    gated = ragctl(project, "config", "set", "top_k", "5", "--eval", str(questions), "--json")
    assert gated.exit_code == 2 and json.loads(gated.stdout)["error"]["code"] == "setting_overridden"


def test_a_chunk_overlap_as_long_as_the_chunk_is_refused_before_it_is_written(tmp_path):
    project = make_project(tmp_path / "p", "\n[settings]\nchunk_overlap = 32\n")
    before = (project / "ragctl.toml").read_text(encoding="utf-8")
    refused = ragctl(project, "config", "set", "chunk_tokens", "32", "--json")
    assert refused.exit_code == 2, output(refused)
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "invalid_setting" and "chunk_overlap (32) must be smaller than chunk_tokens (32)" in error[
        "message"] and "chunk_overlap" in error["hint"]
    assert (project / "ragctl.toml").read_text(encoding="utf-8") == before
    assert as_json(ragctl(project, "config", "set", "chunk_tokens", "64", "--json"))["value"] == 64


def test_settings_refuse_an_overlap_as_long_as_the_chunk():
    import pytest
    from pydantic import ValidationError

    from stack.settings import Settings

    with pytest.raises(ValidationError, match="must be smaller than chunk_tokens"):
        Settings(chunk_tokens=40, chunk_overlap=40)
    assert Settings(chunk_tokens=40, chunk_overlap=39).chunk_overlap == 39
