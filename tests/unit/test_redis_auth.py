"""Issue #14, the Redis row of docs/security.md: a generated password (never a default) in .env,
Redis started with it, and every client's REDIS_URL carrying it; nothing shows it.

The real stacks prove it end to end: tests/integration/test_local_runtime.py
(test_redis_refuses_a_client_without_the_password) and tests/compose/test_compose_e2e.py
(test_redis_refuses_a_client_without_the_password)."""

from __future__ import annotations

import re

import pytest

from ragctl.deploy import (
    REDIS_PASSWORD_KEY,
    checked_redis_password,
    redis_conf,
    redis_url,
    render_files,
    write_rendered,
)
from ragctl.errors import ConfigError
from ragctl.ops.doctor import diagnose
from ragctl.project import init_project, read_dotenv, redact, redact_url
from ragctl.runtime.capabilities import GuardsRedis
from tests.support.fakes import FakeRuntime


def docker_project(tmp_path, **stack):
    root = tmp_path / "deploy"
    init_project(root, {}, runtime="docker", stack={"gpu": False, "flower": True, "nginx": True, **stack})
    return root


def test_init_generates_the_password_for_a_stack_only(tmp_path):
    for runtime in ("local", "docker"):
        root = tmp_path / runtime
        init_project(root, runtime=runtime, stack={})  # what `ragctl init --runtime local|docker` passes
        password = read_dotenv(root / ".env")[REDIS_PASSWORD_KEY]
        assert len(password) >= 32 and checked_redis_password(password) == password
        assert (root / ".env").stat().st_mode & 0o077 == 0
    init_project(tmp_path / "embedded")
    assert not (tmp_path / "embedded" / ".env").exists()
    # Two projects never share one.
    assert read_dotenv(tmp_path / "local" / ".env") != read_dotenv(tmp_path / "docker" / ".env")


def test_render_puts_requirepass_and_authenticated_urls_in_the_files_and_keeps_the_password(tmp_path):
    root = docker_project(tmp_path)
    (root / ".env").unlink()  # render generates it too (a project from before init did)
    write_rendered(root)
    password = read_dotenv(root / ".env")[REDIS_PASSWORD_KEY]
    assert len(password) >= 32
    files = {name: (root / name).read_text() for name in ("compose.yaml", "redis.conf", ".env")}
    compose = files["compose.yaml"]
    # Redis gets requirepass on stdin from its environment, and refuses to start without a password.
    assert 'requirepass "$$REDIS_PASSWORD"' in compose and "redis-server /app/redis.conf -" in compose
    assert '[ -n "$$REDIS_PASSWORD" ] || {' in compose
    assert compose.count("REDIS_PASSWORD: ${REDIS_PASSWORD:?") == 1
    # Every client (api, worker, beat, flower: the x-app anchor and the worker's own block) authenticates.
    urls = re.findall(r"REDIS_URL: (.+)", compose)
    assert len(urls) == 2 and all(u.startswith("redis://:${REDIS_PASSWORD:?") and u.endswith("}@redis:6379/0")
                                  for u in urls), urls
    assert "redis://redis:6379" not in compose
    # The healthcheck authenticates (redis-cli exits 0 on NOAUTH: only PONG counts).
    assert 'REDISCLI_AUTH=\\"$$REDIS_PASSWORD\\" redis-cli --no-auth-warning ping | grep -q PONG' in compose
    # The secret itself is only in .env (0600): not in compose.yaml nor redis.conf.
    assert password not in compose and password not in files["redis.conf"]
    assert "requirepass" in files["redis.conf"] and "appendonly yes" in files["redis.conf"]
    assert f"{REDIS_PASSWORD_KEY}={password}\n" in files[".env"]
    assert files[".env"].count(REDIS_PASSWORD_KEY) == 1
    assert (root / ".env").stat().st_mode & 0o077 == 0
    # The password persists across renders; a render changes nothing.
    assert render_files(root)[".env"] == files[".env"]
    assert not any(f.changed for f in write_rendered(root))
    assert read_dotenv(root / ".env")[REDIS_PASSWORD_KEY] == password


def test_a_render_diff_never_shows_the_password(tmp_path):
    root = docker_project(tmp_path)
    password = read_dotenv(root / ".env")[REDIS_PASSWORD_KEY]
    changed = {f.name: f for f in write_rendered(root, dry_run=True)}
    assert changed[".env"].changed and f" {REDIS_PASSWORD_KEY}=***" in changed[".env"].diff  # kept from init
    assert not any(password in f.diff for f in changed.values())


def test_a_bad_password_in_env_is_refused_not_rendered(tmp_path):
    root = docker_project(tmp_path)
    (root / ".env").write_text(f"{REDIS_PASSWORD_KEY}=short\n")
    with pytest.raises(ConfigError, match=REDIS_PASSWORD_KEY):
        render_files(root)
    (root / ".env").write_text(f'{REDIS_PASSWORD_KEY}="has spaces and quotes in it"\n')
    with pytest.raises(ConfigError):
        render_files(root)


def test_the_local_redis_conf_and_urls():
    conf = redis_conf(bind="127.0.0.1", port=7000, directory='"/x/data/redis"', password="a" * 20 + "-_.~")
    assert f'requirepass "{"a" * 20}-_.~"' in conf and "bind 127.0.0.1" in conf
    assert "requirepass" not in redis_conf(bind="127.0.0.1", port=7000, directory="/d")
    assert redis_url("127.0.0.1", 7000, "p~a.s-s_") == "redis://:p~a.s-s_@127.0.0.1:7000/0"
    assert redis_url("h", 1, "a/b@c") == "redis://:a%2Fb%40c@h:1/0"
    assert redis_url("h", 1, None) == "redis://h:1/0"


def test_local_redis_conf_is_written_owner_only(tmp_path):
    from ragctl.runtime.local import LocalRuntime
    from ragctl.runtime.local.plan import render_redis_conf

    runtime = LocalRuntime(tmp_path)
    runtime.run_dir.mkdir()
    path = runtime.run_dir / "redis.conf"
    path.write_text("old\n")
    path.chmod(0o644)
    password = "p" * 40
    render_redis_conf(runtime, 6390, password)
    assert path.stat().st_mode & 0o777 == 0o600
    assert f'requirepass "{password}"' in path.read_text()


def test_urls_are_redacted_wherever_they_are_shown():
    url = "redis://:s3cr3t-Pass_word@127.0.0.1:6379/0"
    assert redact_url(url) == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url(None) is None
    assert "s3cr3t" not in redact(f"[config] .> transport: {url}", [])
    assert redact("http://127.0.0.1:8000/api/health", []) == "http://127.0.0.1:8000/api/health"


def test_local_status_json_redacts_the_redis_password(tmp_path):
    from ragctl.runtime.local import RuntimeStatus

    status = RuntimeStatus(running=True, project_root=tmp_path, redis_url="redis://:s3cr3t-Pass_word@127.0.0.1:1/0")
    assert status.to_dict()["redis_url"] == "redis://:***@127.0.0.1:1/0"
    assert status.redis_url.startswith("redis://:s3cr3t")  # clients in this process still connect with it


# -- doctor's security check, fault-tested on a runtime that runs nothing -------------------------
class FakeLocal(FakeRuntime, GuardsRedis):
    kind = "local"

    def __init__(self, root, answer: str, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.answer = answer

    def anonymous_redis_ping(self):
        return self.answer, "127.0.0.1:6390"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "ragctl.toml").write_text('[project]\nname = "fake"\nruntime = "local"\n')
    return tmp_path


def findings(project, answer, **kwargs):
    return {c.name: c for c in diagnose(project, runtime=FakeLocal(project, answer, **kwargs))}


def test_doctor_passes_a_protected_redis(project):
    (project / ".env").write_text(f"{REDIS_PASSWORD_KEY}={'x' * 43}\n")
    found = findings(project, "-NOAUTH Authentication required.")
    assert found["redis password"].status == "ok" and found["redis auth"].status == "ok"


def test_doctor_fails_a_redis_that_answers_without_the_password(project):
    (project / ".env").write_text(f"{REDIS_PASSWORD_KEY}={'x' * 43}\n")
    found = findings(project, "+PONG")
    assert found["redis auth"].status == "fail" and "without a password" in found["redis auth"].detail
    assert found["redis auth"].hint == "ragctl down && ragctl up"


def test_doctor_fails_a_missing_or_weak_password(project):
    found = findings(project, "+PONG")
    assert found["redis password"].status == "fail" and "no REDIS_PASSWORD" in found["redis password"].detail
    (project / ".env").write_text(f"{REDIS_PASSWORD_KEY}=redis\n")
    found = findings(project, "-NOAUTH Authentication required.")
    assert found["redis password"].status == "fail" and "is 5 characters" in found["redis password"].detail
    # A stack that does not run yet: the password comes with the first up.
    (project / ".env").unlink()
    found = findings(project, "", running=False)
    assert found["redis password"].status == "warn" and "redis auth" not in found
