"""A private PostgreSQL cluster for the tests of the Postgres state backend (issue #12).

Debian's ``postgresql`` package (scripts/setup-test-host.sh installs it): ``initdb`` into a
temporary folder with password authentication (scram-sha-256) and ``pg_ctl start`` on a free
loopback port, once per test session; stopped and removed at the end.  PostgreSQL refuses to run
as root, so under root the server runs as the ``postgres`` user (``runuser``), in a folder it owns.

Fixtures (import them into a test module): ``postgres_server`` (the cluster), ``postgres_url`` (a
fresh database per test, dropped after it).  Without PostgreSQL they skip with the reason, except
under ``CI=true``, where they fail: the Postgres suite must run there.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "ragctl"


@dataclass
class PostgresServer:
    host: str
    port: int
    password: str
    root: Path

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        auth = f"{USER}:{secret}" if secret else USER
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the Postgres suite must run; scripts/setup-test-host.sh installs it)")
    pytest.skip(reason)


def start_server() -> PostgresServer:
    """initdb + pg_ctl start; the caller stops it with :func:`stop_server`."""
    bin_dir = _bin()
    if bin_dir is None:
        _unavailable("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ragctl-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            _unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    root.chmod(0o700)
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], check=False, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off "
                   "-c max_connections=200 -c shared_buffers=128MB")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "120",
            "start")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return PostgresServer("127.0.0.1", port, password, root)


def stop_server(server: PostgresServer) -> None:
    bin_dir = _bin()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    try:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(server.root / "data"), "-m", "fast", "-w",
                        "-t", "60", "stop"], capture_output=True, timeout=90, check=True)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the session's cluster, dropped after the test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        from stack.pipeline import postgres

        db = postgres._databases.pop(postgres_server.url(name), None)
        if db is not None:
            db.close()
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
