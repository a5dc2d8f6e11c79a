"""``ragctl config set KEY VALUE``: change a setting in ragctl.toml, optionally gated on a question
set (issue #28 part 3): ``--eval FILE`` runs the set before and after, and puts the old ragctl.toml
back when answer_has_gold or source_has_gold drops by more than ``--max-drop``.

Bare ``ragctl config`` is ``ragctl config check`` (validates the rendered Compose stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, open_backend, open_embedded, project_root
from ragctl.output import EXIT_ERROR, console, emit, err_console, print_json
from ragctl.views import cell, line

#: Settings that shape the index, not only the answers: a change takes effect after ``ragctl reindex``.
INDEX_SETTINGS = {"chunk_tokens", "chunk_overlap", "embed_model"}
#: Not settable here: where the project is, and secrets (they belong in .env or a secret file).
NOT_SETTABLE = {"project_root"}


def _typed(key: str, value: str):
    """``value`` as the setting's own type (validated by the one settings model), for TOML."""
    from pydantic import SecretStr, ValidationError

    from ragctl.errors import UsageError
    from stack.settings import Settings

    fields = Settings.model_fields
    if key not in fields or key in NOT_SETTABLE:
        import difflib

        close = difflib.get_close_matches(key, [f for f in fields if f not in NOT_SETTABLE], n=3)
        raise UsageError(f"'{key}' is not a setting." + (f" Did you mean {', '.join(close)}?" if close else ""),
                         "the settings are listed in docs/configuration.md", code="unknown_setting", exit_code=2)
    from typing import Annotated as Constrained

    from pydantic import TypeAdapter

    field = fields[key]
    try:  # the field's own type and constraints (ge, gt …), not load_settings: the environment beats an override
        kind = Constrained[field.annotation, *field.metadata] if field.metadata else field.annotation
        typed = TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise UsageError(f"{key} = {value!r} is not valid: {problem}.", f"ragctl config set {key} VALUE   "
                         "(see docs/configuration.md)", code="invalid_setting", exit_code=2) from None
    if isinstance(typed, SecretStr):
        raise UsageError(f"{key} is a secret: it does not belong in ragctl.toml.",
                         f"put it in .env ({key.upper()}=…) or a secret file", code="secret_setting", exit_code=2)
    return str(typed) if isinstance(typed, Path) else typed


def overridden_by(root: Path, key: str) -> str | None:
    """Where a value that beats ragctl.toml's for ``key`` comes from (the environment or .env), if any."""
    import os

    from ragctl.project import read_dotenv
    from stack.settings import Settings

    alias = Settings.model_fields[key].validation_alias
    names = list(getattr(alias, "choices", None) or [key])
    dotenv = read_dotenv(root / ".env") if (root / ".env").is_file() else {}
    for name in names:
        if name in os.environ:
            return f"the environment variable {name}"
        if name in dotenv:
            return f"{name} in {root / '.env'}"
    return None


def config_set(
    key: Annotated[str, typer.Argument(help="A setting's name, as in [settings] of ragctl.toml (e.g. top_k).")],
    value: Annotated[str, typer.Argument(help="Its new value.")],
    eval_file: Annotated[Path | None, typer.Option("--eval", help="A question set to run before and after; the "
                                                   "change is undone when the answers get worse.",
                                                   show_default=False)] = None,
    max_drop: Annotated[float, typer.Option("--max-drop", min=0.0, max=1.0, help="The largest drop of "
                                            "answer_has_gold or source_has_gold the gate lets through (a share).")]
    = 0.02,
    as_json: JsonOption = False,
) -> None:
    """Change a setting in ragctl.toml (comments kept); with --eval, only if the answers do not get worse."""
    from ragctl.cli.eval import load_questions_or_fail, run_set
    from ragctl.errors import UsageError
    from ragctl.ops.eval import eval_folder, gate, save_run
    from ragctl.project import CONFIG_NAME, set_config_value

    root = project_root()
    typed = _typed(key, value)
    beaten = overridden_by(root, key)
    if beaten and eval_file:
        raise UsageError(f"{key} is set by {beaten}, which beats ragctl.toml: the change would not be what the "
                         "questions are asked with.", f"remove it from there, then ragctl config set {key} {value} "
                         f"--eval {eval_file}", code="setting_overridden", exit_code=2)
    config = root / CONFIG_NAME
    before_text = config.read_text(encoding="utf-8")
    before = None
    if eval_file:
        if key in INDEX_SETTINGS:
            raise UsageError(f"{key} shapes the index: its effect shows only after ragctl reindex, and a gated "
                             "reindex is not built yet.", f"ragctl config set {key} {value}, then ragctl reindex, "
                             f"then ragctl eval {eval_file} and ragctl eval compare", code="gate_needs_reindex",
                             exit_code=2)
        questions, errors = load_questions_or_fail(eval_file)
        from ragctl.backends.embedded import EmbeddedBackend

        backend = open_backend(warm=True)
        if not isinstance(backend, EmbeddedBackend):
            raise UsageError("--eval on a running stack is not built yet: its services read their settings when "
                             "they start.", f"ragctl down, then ragctl config set {key} {value} --eval {eval_file}",
                             code="gate_needs_embedded", exit_code=2)
        folder = eval_folder(backend.settings.data_path)
        before = run_set(backend, eval_file, questions, errors, as_json=as_json, label=", before")
        save_run(folder, before)
    set_config_value(root, "settings", key, typed)
    if before is None:
        note = " (takes effect after ragctl reindex)" if key in INDEX_SETTINGS else ""
        if beaten:
            note += f"; but {beaten} beats it"

        emit({"key": key, "value": typed, "config": str(config), "reindex_needed": key in INDEX_SETTINGS,
              "overridden_by": beaten},
             lambda: console.print(line("Set ", (key, "bold"), " = ", repr(typed), f" in {config}{note}.")),
             as_json=as_json)
        return
    try:
        after = run_set(open_embedded(), eval_file, questions, errors, as_json=as_json, label=", after")
    except BaseException:
        config.write_text(before_text, encoding="utf-8")  # interrupted or failed: the old settings stay
        raise
    save_run(folder, after)
    verdict = gate(before, after, max_drop)
    if not verdict["passed"]:
        config.write_text(before_text, encoding="utf-8")
    result = {"key": key, "value": typed, "config": str(config), "applied": verdict["passed"], "gate": verdict}
    if as_json:
        print_json(result)
    else:
        for metric, change in verdict["drops"].items():
            err_console.print(line((f"{metric} ", "bold red"), f"{change['before']:.1%} → {change['after']:.1%} "
                                   f"(−{change['drop']:.1%}, more than the {max_drop:.1%} allowed)"))
        for row in verdict["right_to_wrong"]:
            err_console.print(line(("  broke ", "red"), (row["metric"], "dim"), f"  line {row['line']}: ",
                                   row["question"]))
        if verdict["passed"]:
            console.print(line(("Set ", "green"), (key, "bold"), " = ", repr(typed),
                               f": the answers held (runs {verdict['before']} → {verdict['after']})."))
        else:
            console.print(cell(f"Not applied: {config.name} is as it was ({key} unchanged).", "bold red"))
            console.print(line(("Next: ", "dim"), f"ragctl eval compare {verdict['before']} {verdict['after']}"))
    if not verdict["passed"]:
        raise typer.Exit(EXIT_ERROR)
