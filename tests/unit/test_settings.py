from stack.settings import load_settings


def test_toml_then_env_priority(tmp_path, monkeypatch):
    (tmp_path / "ragctl.toml").write_text('[settings]\ntop_k = 3\nchunk_tokens = 120\n')
    (tmp_path / ".env").write_text("RAG_CHUNK_OVERLAP=11\n")
    monkeypatch.setenv("RAG_TOP_K", "9")
    settings = load_settings(tmp_path)
    assert settings.top_k == 9  # environment beats ragctl.toml
    assert settings.chunk_tokens == 120
    assert settings.chunk_overlap == 11
    assert settings.data_path == tmp_path / "data"
    assert settings.max_upload_bytes == 50 * 1024 * 1024


def test_openai_key_is_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings(tmp_path)
    assert settings.llm_configured
    assert "sk-test" not in repr(settings)


def test_a_broken_project_file_reads_the_same_to_the_cli_and_the_services(tmp_path):
    """One parser (stack.contract.read_project_file): the CLI's ConfigError and the services' error
    name the same file and the same fault, with the same hint."""
    import pytest

    from ragctl.errors import ConfigError
    from ragctl.project import ProjectConfig
    from stack.contract import ProjectFileError

    (tmp_path / "ragctl.toml").write_text('[settings]\ntop_k = \n', encoding="utf-8")
    with pytest.raises(ProjectFileError) as service_side:
        load_settings(tmp_path)
    with pytest.raises(ConfigError) as cli_side:
        ProjectConfig.load(tmp_path)
    assert service_side.value.message == cli_side.value.message
    assert cli_side.value.message.startswith(f"{tmp_path / 'ragctl.toml'} cannot be read: ")
    assert cli_side.value.hint == service_side.value.hint == f"fix {tmp_path / 'ragctl.toml'}"
    assert isinstance(service_side.value, ValueError)  # the settings' callers catch ValueError
