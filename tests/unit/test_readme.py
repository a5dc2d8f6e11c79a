"""The README's set-up commands are the contract with a fresh machine; keep CI on the same one."""

import re

from tests.support.suite import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.DOTALL)


def test_readme_gives_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "ragctl" in main_job and "ingest samples/" in main_job and "ask" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_samples_the_main_job_ingests_cover_the_promised_formats():
    suffixes = {p.suffix for p in (REPO / "samples").iterdir()}
    assert {".hwpx", ".pdf", ".docx", ".md"} <= suffixes
