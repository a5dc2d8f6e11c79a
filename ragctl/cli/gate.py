"""What every gated command (reindex, config set, restore, migrate) shares: the ``--eval``,
``--max-drop`` and ``--no-eval`` options, asking the set with a progress bar and storing the run, and
printing the verdict.  The gate itself is ``ragctl.ops.gate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragctl.output import console, err_console
from ragctl.views import cell, line

EvalOption = Annotated[Path | None, typer.Option(
    "--eval", help="A question set to ask before and after; the change is undone when the answers get worse "
    "(default: [eval] file of ragctl.toml).", show_default=False)]
MaxDropOption = Annotated[float | None, typer.Option(
    "--max-drop", min=0.0, max=1.0, help="The largest drop of answer_has_gold or source_has_gold the gate lets "
    "through, a share (default: [eval] max_drop, else 0.02).", show_default=False)]
NoEvalOption = Annotated[bool, typer.Option("--no-eval", help="Do not run the project's gate ([eval] file).")]


def resolve(root: Path, eval_file: Path | None, max_drop: float | None, no_eval: bool):
    """The gate's settings for this command, and the set's questions when there is one."""
    from ragctl.cli.eval import load_questions_or_fail
    from ragctl.ops.gate import gate_settings

    settings = gate_settings(root, eval_file, max_drop, skip=no_eval)
    questions = load_questions_or_fail(settings.file) if settings.file else None
    return settings, questions


def measure(file: Path, questions, *, as_json: bool, collection: str | None = None):
    """``measure(reading, label)`` for :mod:`ragctl.ops.gate`: asks the set with a progress bar and
    stores the run under the project's data/eval/.  ``reading`` is the backend the gate hands over: an
    embedded one pinned to given indexes, or a stack's client (possibly asking a given generation).
    ``collection``: where the set's questions that name none are asked (default: the project's default
    collection)."""
    from ragctl.cli.eval import _runs_folder, run_set
    from ragctl.ops.eval import save_run

    rows, errors = questions

    def ask(reading, label: str) -> dict:
        run = run_set(reading, file, rows, errors, collection=collection, as_json=as_json, label=label)
        save_run(_runs_folder(), run)  # found at each run: a restore may have made the project
        return run

    return ask


def print_verdict(verdict: dict) -> None:
    """The metrics that dropped and the questions that broke (stderr)."""
    max_drop = verdict["max_drop"]
    for metric, change in verdict["drops"].items():
        err_console.print(line((f"{metric} ", "bold red"), f"{change['before']:.1%} → {change['after']:.1%} "
                               f"(−{change['drop']:.1%}, more than the {max_drop:.1%} allowed)"))
    for row in verdict["right_to_wrong"]:
        err_console.print(line(("  broke ", "red"), (row["metric"], "dim"), f"  line {row['line']}: ", row["question"]))


def held(verdict: dict | None) -> str:
    """How a passed gate is said after the change's own sentence."""
    if verdict is None:
        return ""
    return f": the answers held (runs {verdict['before']} → {verdict['after']})"


def refused(what: str, verdict: dict | None = None) -> None:
    """Why the change was not made, then (after a gate) the runs to compare."""
    console.print(cell(what, "bold red"))
    if verdict and not verdict["passed"]:
        console.print(line(("Next: ", "dim"), f"ragctl eval compare {verdict['before']} {verdict['after']}"))


def print_reindex(name: str, outcome, model: str = "") -> None:
    """A reindex's documents, the gate's verdict, and which index answers now."""
    from ragctl.views import results_table

    if outcome.results:
        console.print(results_table(outcome.results))
    if outcome.verdict:
        print_verdict(outcome.verdict)
    if outcome.applied:
        console.print(cell(f"'{name}' now answers from its new index ({model}{len(outcome.results)} documents)"
                           f"{held(outcome.verdict)}.", "green"))
    else:
        why = "documents failed to rebuild" if outcome.reason == "failed documents" else "the answers got worse"
        refused(f"Not swapped: {why}; '{name}' answers from its old index.", outcome.verdict)
