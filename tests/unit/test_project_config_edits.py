"""Edits of ragctl.toml keep what the user wrote (issue #24 item 6: tomlkit, no regular expressions)."""

from __future__ import annotations

import tomllib

from ragctl.project import record_runtime, set_config_value

WRITTEN = """# our team's project: ask Mina before changing the model
[project]
name = "hr-docs"   # shown in ragctl status
runtime = "embedded"

[settings]
# Korean first
top_k = 8

[stack]
workers = 2 # two cores
"""


def test_an_edit_changes_one_value_and_keeps_every_comment(tmp_path):
    (tmp_path / "ragctl.toml").write_text(WRITTEN, encoding="utf-8")
    set_config_value(tmp_path, "stack", "workers", 4)
    set_config_value(tmp_path, "stack", "worker_memory", "3g")
    set_config_value(tmp_path, "settings", "ocr_languages", ["kor", "eng"])
    set_config_value(tmp_path, "local", "api_port", 0)
    set_config_value(tmp_path, "settings", "data_dir", r"D:\rag\data")
    record_runtime(tmp_path, "local")

    text = (tmp_path / "ragctl.toml").read_text(encoding="utf-8")
    for comment in ("# our team's project: ask Mina before changing the model", "# shown in ragctl status",
                    "# Korean first", "# two cores"):
        assert comment in text
    config = tomllib.loads(text)
    assert config["project"] == {"name": "hr-docs", "runtime": "local"}
    assert config["settings"] == {"top_k": 8, "ocr_languages": ["kor", "eng"], "data_dir": r"D:\rag\data"}
    assert config["stack"] == {"workers": 4, "worker_memory": "3g"}
    assert config["local"] == {"api_port": 0}


def test_an_edit_of_a_folder_with_no_project_creates_one(tmp_path):
    set_config_value(tmp_path, "stack", "gpu", True)
    config = tomllib.loads((tmp_path / "ragctl.toml").read_text(encoding="utf-8"))
    assert config["stack"] == {"gpu": True} and config["project"]["name"] == tmp_path.name
