"""The README and docs/ say what the CLI does: every ``ragctl …`` command they show exists, and
every ``--flag`` they give it is one of that command's options."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main

from ragctl.cli import app
from tests.support.suite import REPO

GLOBAL_OPTIONS = {"-p", "--project", "--version", "-h", "--help"}
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _snippets(text: str) -> list[str]:
    """Command lines that start with ``ragctl``: in code blocks, and in inline code."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line):
                part = part.strip().removeprefix("$ ")
                if part.startswith("ragctl "):
                    found.append(part)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    found += [f"ragctl {m}" for m in re.findall(r"`ragctl ([^`]+)`", text)]
    return found


def _tokens(snippet: str) -> list[str]:
    snippet = snippet.split("#", 1)[0]  # a shell comment
    snippet = re.sub(r"\s{2,}\(.*", "", snippet)  # "ragctl up   (then …)": prose after the command
    try:
        return shlex.split(snippet)[1:]
    except ValueError:
        return snippet.split()[1:]


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*getattr(param, "opts", []),
                                                          *getattr(param, "secondary_opts", []))}


def mentions() -> list[tuple[str, str]]:
    return [(doc.relative_to(REPO).as_posix(), snippet) for doc in DOCS
            for snippet in _snippets(doc.read_text(encoding="utf-8"))]


def check(snippet: str) -> list[str]:
    root = typer.main.get_command(app)
    tokens = _tokens(snippet)
    while tokens and tokens[0] in GLOBAL_OPTIONS:
        tokens = tokens[2:] if tokens[0] in ("-p", "--project") else tokens[1:]
    if not tokens or not re.fullmatch(r"[a-z][a-z-]*", tokens[0]):
        return []  # "ragctl --help", "ragctl …", a placeholder
    command, path = root, []
    while getattr(command, "commands", None) and tokens and tokens[0] in command.commands:
        path.append(tokens[0])
        command = command.commands[tokens.pop(0)]
    if not path:
        return [f"no command {tokens[0]!r}"]
    if getattr(command, "commands", None) and "run" in command.commands and tokens and not tokens[0].startswith("-"):
        path.append("run")  # "ragctl eval FILE" is "ragctl eval run FILE" (ragctl.cli.app.EvalGroup)
        command = command.commands["run"]
    if getattr(command, "commands", None):
        if tokens and re.fullmatch(r"[a-z][a-z-]*", tokens[0]):
            return [f"no command {' '.join(path)} {tokens[0]!r}"]
        return []
    known = _options(command) | GLOBAL_OPTIONS
    problems = []
    for token in tokens:
        flag = token.split("=", 1)[0]
        if re.fullmatch(r"--?[a-z][a-z-]*", flag) and flag not in known:
            problems.append(f"ragctl {' '.join(path)} has no option {flag}")
    return problems


def test_the_docs_show_commands():
    assert len(mentions()) > 50


@pytest.mark.parametrize(("doc", "snippet"), mentions(), ids=lambda value: value[:60])
def test_every_command_in_the_docs_exists_with_its_options(doc, snippet):
    assert check(snippet) == [], f"{doc}: {snippet}"


def test_the_checker_catches_a_wrong_command_and_a_wrong_flag():
    assert check("ragctl injest x") == ["no command 'injest'"]
    assert check("ragctl ingest x --forse") == ["ragctl ingest has no option --forse"]
    assert check("ragctl documents lst") == ["no command documents 'lst'"]
    assert check("ragctl -p demo ask \"q\" --json") == []
    assert check("ragctl eval q.jsonl --html r.html") == [] and check("ragctl eval q.csv --htm x") == [
        "ragctl eval run has no option --htm"]
