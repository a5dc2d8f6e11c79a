"""The stack's PostgreSQL server in a container: ``python -m stack.db_server`` (issue #12).

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``, in the base image).  On the first
start of an empty volume it runs ``initdb`` with password authentication (scram-sha-256) for the
stack's user, whose password it reads from a file (a Swarm secret: never an environment variable or
an argument; in a Compose stack, the variable ``--password-env`` names), creates the stack's database,
and accepts password logins from the network only; then it becomes ``postgres`` (exec), so signals
and the exit status are the server's own.

``--dump FILE`` and ``--load FILE`` run ``pg_dump -Fc`` / ``pg_restore`` against the running server
instead (backup and restore, from inside its container), with the same password source.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
from pathlib import Path

USER = "ragctl"
DATABASE = "ragctl"
HBA = """# Written by stack.db_server: passwords only, from anywhere on the stack's network.
local all all scram-sha-256
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise SystemExit("stack.db_server: PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres): "
                         "rebuild the base image (bash scripts/make-base-image.sh)")
    return Path(found[-1]).parent


def read_password(password_file: Path, password_env: str | None) -> str:
    """The stack user's password: from the environment variable ``password_env`` when given, else the file."""
    if password_env:
        password, where = os.environ.get(password_env, "").strip(), f"the environment variable {password_env}"
    else:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError:
            password = ""
        where = str(password_file)
    if len(password) < 16:
        raise SystemExit(f"stack.db_server: the password in {where} is missing or shorter than 16 characters")
    return password


def initialise(bin_dir: Path, data: Path, password: str) -> None:
    """initdb into ``data`` (absent or empty), then the stack's database, in single-user mode."""
    scratch = Path("/tmp") / f"pw-{os.getpid()}"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (password + "\n").encode())
        os.close(fd)
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
                        f"--pwfile={scratch}", "-E", "UTF8", "--no-locale"], check=True, stdout=sys.stderr)
    finally:
        scratch.unlink(missing_ok=True)
    (data / "pg_hba.conf").write_text(HBA, encoding="utf-8")
    subprocess.run([str(bin_dir / "postgres"), "--single", "-D", str(data), "postgres"],
                   input=f"CREATE DATABASE {DATABASE} OWNER {USER};\n", text=True, check=True, stdout=sys.stderr)


def dump_or_load(bin_dir: Path, password: str, port: int, *, dump: Path | None, load: Path | None) -> int:
    """pg_dump -Fc into ``dump``, or pg_restore ``load`` over the stack's database (its objects replaced)."""
    env = {**os.environ, "PGPASSWORD": password}
    common = ["-h", "127.0.0.1", "-p", str(port), "-U", USER]
    if dump is not None:
        command = [str(bin_dir / "pg_dump"), "-Fc", *common, "-f", str(dump), DATABASE]
    else:
        command = [str(bin_dir / "pg_restore"), "--clean", "--if-exists", "--no-owner", *common, "-d", DATABASE,
                   str(load)]
    return subprocess.run(command, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.db_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/pgdata/data"), help="the cluster's folder")
    parser.add_argument("--password-file", type=Path, default=Path("/run/secrets/POSTGRES_PASSWORD"))
    parser.add_argument("--password-env", help="read the password from this environment variable instead")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--max-connections", type=int, default=200)
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument("--dump", type=Path, help="write a pg_dump -Fc of the running server's database here")
    actions.add_argument("--load", type=Path, help="pg_restore this dump over the running server's database")
    args = parser.parse_args(argv)
    bin_dir = server_bin()
    password = read_password(args.password_file, args.password_env)
    if args.dump or args.load:
        sys.exit(dump_or_load(bin_dir, password, args.port, dump=args.dump, load=args.load))
    if not (args.data / "PG_VERSION").is_file():
        initialise(bin_dir, args.data, password)
    # The server's processes do not inherit the password (their environment is readable in /proc).
    server_env = {k: v for k, v in os.environ.items() if k != args.password_env}
    os.execve(str(bin_dir / "postgres"), [
        str(bin_dir / "postgres"), "-D", str(args.data), "-p", str(args.port), "-c", "listen_addresses=*",
        "-c", "unix_socket_directories=/tmp", "-c", f"max_connections={args.max_connections}"], server_env)


if __name__ == "__main__":
    main()
