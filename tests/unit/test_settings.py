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
