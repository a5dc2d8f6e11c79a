"""Human output: errors and hints print user text as it is; piped progress names the path and keeps
talking during a long stage; help shows choices; embedded projects say they have no services."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ragctl import views
from ragctl.cli import app
from ragctl.errors import RagctlError

runner = CliRunner()


def test_errors_and_hints_print_brackets_as_they_are(capsys, monkeypatch):
    import typer

    from ragctl import output

    stream = io.StringIO()
    monkeypatch.setattr(output, "err_console", Console(file=stream, width=200))
    with pytest.raises(typer.Exit):
        output.fail(RagctlError("dir[/x].txt: [bold]not found[/bold]", "set api_cpus under [stack] in ragctl.toml"))
    text = stream.getvalue()
    assert "dir[/x].txt: [bold]not found[/bold]" in text and "under [stack] in ragctl.toml" in text


def test_piped_progress_names_the_path_and_reports_a_long_stage(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(views, "err_console", Console(file=stream, width=10_000))
    monkeypatch.setattr(views, "PLAIN_EVERY_S", 0.0)
    progress = views.IngestProgress(1, enabled=True)
    assert progress.plain
    report = progress.track("[v2] 메모.md", key="inbox/a/[v2] 메모.md")
    report("embedding", 0.25)
    report("embedding", 0.5)  # the same stage again: still a line, as time passes
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 2 and all("inbox/a/[v2] 메모.md" in line for line in lines)
    assert "25%" in lines[0] and "50%" in lines[1]


@pytest.mark.parametrize(("args", "choices"), [(["up", "--help"], "local|docker"),
                                               (["init", "--help"], "embedded|local|docker"),
                                               (["search", "--help"], "hybrid|bm25|dense")])
def test_help_shows_choices(args, choices):
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and choices in result.stdout


def test_an_embedded_project_says_it_has_no_services(tmp_path):
    project = tmp_path / "p"
    assert runner.invoke(app, ["init", str(project), "--yes"]).exit_code == 0
    logs = runner.invoke(app, ["-p", str(project), "logs", "worker"])
    assert logs.exit_code == 2 and "no service logs" in logs.stderr and "Unknown service" not in logs.stderr
    status = runner.invoke(app, ["-p", str(project), "status", "--json"])
    assert json.loads(status.stdout)["runtime"] == "embedded"
    health = runner.invoke(app, ["-p", str(project), "health", "--json"])
    assert health.exit_code == 5 and "runs embedded" in json.loads(health.stdout)["error"]["message"]


def test_an_unforeseen_exception_is_one_clear_error_not_a_traceback(tmp_path, monkeypatch):
    import ragctl.cli.stack as stack_commands

    def broken(*_args, **_kwargs):
        raise KeyError("containers/16e4: No such container")  # e.g. the engine losing a container mid-read

    project = tmp_path / "p"
    assert runner.invoke(app, ["init", str(project), "--yes"]).exit_code == 0
    monkeypatch.setattr(stack_commands, "current_runtime", broken)
    human = runner.invoke(app, ["-p", str(project), "status"])
    assert human.exit_code == 1 and "Traceback" not in human.stdout + human.stderr
    assert "Unexpected KeyError" in human.stderr and "RAGCTL_DEBUG=1" in human.stderr
    as_json = runner.invoke(app, ["-p", str(project), "status", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["code"] == "internal_error"
    monkeypatch.setenv("RAGCTL_DEBUG", "1")
    debug = runner.invoke(app, ["-p", str(project), "status"])
    assert isinstance(debug.exception, KeyError)
