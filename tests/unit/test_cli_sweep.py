"""Every command and sub-command, driven the ways users get wrong: --help, no arguments, an unknown
option, garbage arguments, each with and without --json.  Never a traceback; only the documented
exit codes; with --json exactly one JSON document on stdout, errors included.

It runs in a folder that is not a project (so nothing starts a stack or loads a model): every
command but ``init``, ``restore`` and ``migrate`` must refuse it with exit 2 and name ``ragctl init``.
"""

from __future__ import annotations

import json

import pytest
import typer.main
from typer.testing import CliRunner

from ragctl.cli import app

DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6}
runner = CliRunner()


def _command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def takes_json(path: tuple[str, ...]) -> bool:
    return any("--json" in getattr(param, "opts", []) for param in _command(path).params)


def command_paths() -> list[tuple[str, ...]]:
    """("ingest",), ("documents", "list"), … for every leaf command."""
    paths = []

    def walk(command, prefix: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk(sub, (*prefix, name))
        else:
            paths.append(prefix)

    walk(typer.main.get_command(app), ())
    return paths


PATHS = command_paths()


def run(tmp_path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGCTL_PROJECT", raising=False)
    result = runner.invoke(app, list(args), catch_exceptions=True)
    text = result.stdout + (result.stderr or "")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"ragctl {' '.join(args)} raised {type(result.exception).__name__}: {result.exception}\n{text}")
    assert "Traceback" not in text, f"ragctl {' '.join(args)} printed a traceback:\n{text}"
    assert result.exit_code in DOCUMENTED_EXIT_CODES, f"ragctl {' '.join(args)} exited {result.exit_code}:\n{text}"
    return result


def test_every_command_is_found():
    assert {("ingest",), ("ask",), ("documents", "list"), ("tasks", "show"), ("bundle", "save"), ("up",),
            ("doctor",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help(tmp_path, monkeypatch, path):
    result = run(tmp_path, monkeypatch, *path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout
    assert "<bool>" not in result.stdout  # a flag takes no value and shows none


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
@pytest.mark.parametrize("extra", [[], ["--definitely-not-an-option"], ["[/]", "[bold]x", "🙂", "\x07"]],
                         ids=["no-args", "unknown-option", "garbage"])
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_awkward_invocations(tmp_path, monkeypatch, path, extra, as_json):
    if path == ("init",) and not extra:
        pytest.skip("init with no arguments makes a project here: covered by the init tests")
    args = [*path, *extra, *(["--json"] if as_json else [])]
    result = run(tmp_path, monkeypatch, *args)
    if extra == ["--definitely-not-an-option"]:
        assert result.exit_code == 2
    if as_json:
        document = json.loads(result.stdout)  # exactly one JSON document, whatever happened
        if result.exit_code != 0:
            assert isinstance(document, dict) and set(document["error"]) >= {"code", "message", "hint"}


@pytest.mark.parametrize("path", [p for p in PATHS if p[0] not in ("init", "restore", "migrate", "wheelhouse",
                                                                   "bundle")], ids=" ".join)
def test_a_folder_that_is_not_a_project_is_refused(tmp_path, monkeypatch, path):
    """Only init creates projects: a typo in -p must not make one (no ragctl.toml appears)."""
    target = tmp_path / "typo"
    (tmp_path / "x.txt").write_text("x")
    json_flag = ["--json"] if takes_json(path) else []
    result = run(tmp_path, monkeypatch, "-p", str(target), *path, *json_flag)
    given: list[str] = []
    while result.exit_code == 2 and "Missing argument" in result.stdout + (result.stderr or "") and len(given) < 3:
        # Give the required arguments (a file that exists, for commands that read one).
        given.append(str(tmp_path / "x.txt"))
        result = run(tmp_path, monkeypatch, "-p", str(target), *path, *given, *json_flag)
    assert not (target / "ragctl.toml").exists() and not target.exists()
    if path == ("scale",):  # "x.txt" is not SERVICE=N: refused before the project is looked at
        assert result.exit_code == 2
        return
    assert result.exit_code == 2, result.stdout
    if json_flag:
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "not_a_project" and "ragctl init" in error["hint"]
    else:
        assert "is not a ragctl project" in result.stderr and "ragctl init" in result.stderr
