"""``ragctl config set KEY VALUE``: change a setting in ragctl.toml, optionally gated on a question
set (issue #28 part 3): ``--eval FILE`` (or ``[eval] file``) runs the set before and after, and puts the
old ragctl.toml back when answer_has_gold or source_has_gold drops by more than ``--max-drop``.  A
setting that shapes the index is applied through a gated blue/green reindex (ragctl.ops.gate); on a
running stack whose services read ragctl.toml (the local runtime) they are restarted to apply it.

Bare ``ragctl config`` is ``ragctl config check`` (validates the rendered Compose stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragctl.cli import gate as gate_cli
from ragctl.cli.context import JsonOption, open_backend, open_embedded, project_root
from ragctl.output import EXIT_ERROR, console, emit, print_json
from ragctl.views import line

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


def _check_together(root: Path, key: str, typed) -> None:
    """A value that is valid alone but not with the others (chunk_overlap ≥ chunk_tokens): refused before
    ragctl.toml is written, so that no later command finds the project's settings broken."""
    from ragctl.errors import UsageError
    from stack.settings import chunking_problem, load_settings

    if key not in ("chunk_tokens", "chunk_overlap"):
        return
    current = load_settings(root)
    values = {"chunk_tokens": current.chunk_tokens, "chunk_overlap": current.chunk_overlap, key: typed}
    problem = chunking_problem(values["chunk_tokens"], values["chunk_overlap"])
    if problem:
        other = "chunk_overlap" if key == "chunk_tokens" else "chunk_tokens"
        raise UsageError(f"{key} = {typed!r} is not valid: {problem}.", f"ragctl config set {other} VALUE first",
                         code="invalid_setting", exit_code=2)


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
    eval_file: gate_cli.EvalOption = None,
    max_drop: gate_cli.MaxDropOption = None,
    no_eval: gate_cli.NoEvalOption = False,
    as_json: JsonOption = False,
) -> None:
    """Change a setting in ragctl.toml (comments kept); with --eval (or [eval] file), only if the answers do
    not get worse.  A setting that shapes the index (chunking, model) is then applied by a blue/green
    reindex of every collection, swapped in only when the answers held."""
    from ragctl.errors import UsageError
    from ragctl.ops.eval import gate
    from ragctl.ops.gate import gated_reindex
    from ragctl.project import CONFIG_NAME, set_config_value

    root = project_root()
    typed = _typed(key, value)
    _check_together(root, key, typed)
    beaten = overridden_by(root, key)
    checked, questions = gate_cli.resolve(root, eval_file, max_drop, no_eval)
    if beaten and checked.file:
        raise UsageError(f"{key} is set by {beaten}, which beats ragctl.toml: the change would not be what the "
                         "questions are asked with.", f"remove it from there, then ragctl config set {key} {value} "
                         f"--eval {checked.file}", code="setting_overridden", exit_code=2)
    config = root / CONFIG_NAME
    before_text = config.read_text(encoding="utf-8")
    if checked.file is None:
        set_config_value(root, "settings", key, typed)
        note = " (takes effect after ragctl reindex)" if key in INDEX_SETTINGS else ""
        if beaten:
            note += f"; but {beaten} beats it"

        emit({"key": key, "value": typed, "config": str(config), "reindex_needed": key in INDEX_SETTINGS,
              "overridden_by": beaten},
             lambda: console.print(line("Set ", (key, "bold"), " = ", repr(typed), f" in {config}{note}.")),
             as_json=as_json)
        return
    from ragctl.backends.embedded import EmbeddedBackend

    old = open_backend(warm=True)
    if not isinstance(old, EmbeddedBackend):
        _set_on_stack(root, key, typed, checked, questions, before_text, as_json=as_json)
        return
    ask = gate_cli.measure(checked.file, questions, as_json=as_json)
    reindexed = None
    try:
        if key in INDEX_SETTINGS:
            set_config_value(root, "settings", key, typed)
            from ragctl.views import ingest_progress

            names = old.collections_with_documents() or [old.settings.collection]
            with ingest_progress(sum(c.documents for c in old.pipeline.collections(only=set(names), models=False)),
                                 enabled=not as_json) as bar:
                reindexed = gated_reindex(open_embedded(), names, measure=ask, max_drop=checked.max_drop,
                                          before=old, on_document=bar.done)
            verdict = reindexed.verdict  # None: documents failed to rebuild, the set was not asked after
            applied = reindexed.applied
        else:
            before = ask(old, ", before")
            set_config_value(root, "settings", key, typed)
            verdict = gate(before, ask(open_embedded(), ", after"), checked.max_drop)
            applied = verdict["passed"]
    except BaseException:
        config.write_text(before_text, encoding="utf-8")  # interrupted or failed: the old settings stay
        raise
    if not applied:
        config.write_text(before_text, encoding="utf-8")
    _report(key, typed, config, applied, verdict, reindexed, {}, as_json=as_json)


def _set_on_stack(root: Path, key: str, typed, checked, questions, before_text: str, *, as_json: bool) -> None:
    """``config set --eval`` on a running stack: its services read ragctl.toml when they start, so the
    change is applied by restarting them (and, for a setting that shapes the index, by a blue/green
    reindex on the workers) between the two runs of the set (ragctl.ops.gate.gated_setting_on_stack)."""
    from ragctl.cli.context import current_runtime
    from ragctl.errors import UsageError
    from ragctl.ops.gate import gated_setting_on_stack, restart_and_wait
    from ragctl.output import err_console
    from ragctl.project import CONFIG_NAME, set_config_value
    from ragctl.runtimes import kind_of
    from stack.settings import load_settings

    runtime = current_runtime()
    if not kind_of(runtime.kind).reads_settings_file:
        raise UsageError(f"--eval on a running {runtime.kind} stack is not possible: its containers do not read "
                         f"[settings] of {CONFIG_NAME}, so the change would not be what the questions are asked with.",
                         f"ragctl down, then ragctl config set {key} {typed} --eval {checked.file}   (embedded), "
                         "or set it in .env and ragctl up", code="gate_needs_settings_file", exit_code=2)
    config = root / CONFIG_NAME
    client = open_backend()
    shapes_index = None
    if key in INDEX_SETTINGS:
        shapes_index = [c.name for c in client.collections() if c.documents] or [load_settings(root).collection]

    def say(text: str) -> None:
        if not as_json:
            err_console.print(text, markup=False, highlight=False)

    def restart(services: list[str]) -> None:
        say(f"restarting {', '.join(services)} to read {config.name}")
        restart_and_wait(runtime, open_backend, services)

    seen: dict = {}

    def on_state(state: dict) -> None:
        line_ = (state.get("collection"), state.get("state"), state.get("done"))
        if line_ != seen.get("last"):
            seen["last"] = line_
            say(f"reindex: {state.get('state')}" + (f" ({state['done']} documents rebuilt)" if state.get("done") else ""))

    outcome = gated_setting_on_stack(
        open_backend, change=lambda: set_config_value(root, "settings", key, typed),
        undo=lambda: config.write_text(before_text, encoding="utf-8"), restart=restart,
        measure=gate_cli.measure(checked.file, questions, as_json=as_json),
        shapes_index=shapes_index, default_collection=load_settings(root).collection, max_drop=checked.max_drop,
        on_state=on_state,
        dead_after_s=load_settings(root).worker_dead_after_s)
    _report(key, typed, config, outcome.applied, outcome.verdict, outcome.reindex,
            {"restarted": outcome.restarted}, as_json=as_json)


def _report(key: str, typed, config: Path, applied: bool, verdict: dict | None, reindexed, extra: dict, *,
            as_json: bool) -> None:
    """A gated change's outcome, embedded or on a stack; exit 1 when it was not applied."""
    result = {"key": key, "value": typed, "config": str(config), "applied": applied, "gate": verdict,
              "reindex": reindexed.to_dict() if reindexed else None, **extra}
    if as_json:
        print_json(result)
    else:
        if verdict:
            gate_cli.print_verdict(verdict)
        if reindexed and reindexed.reason == "failed documents":
            gate_cli.refused(f"Not applied: documents failed to rebuild with {key} = {typed!r}; {config.name} is "
                             "as it was and the old indexes answer.")
        elif applied:
            swapped = f"; {', '.join(reindexed.collections)} reindexed and swapped in" if reindexed else ""
            console.print(line(("Set ", "green"), (key, "bold"), " = ", repr(typed), f"{swapped}"
                               f"{gate_cli.held(verdict)}."))
        else:
            gate_cli.refused(f"Not applied: {config.name} is as it was ({key} unchanged)"
                             + ("; the old indexes answer." if reindexed else "."), verdict)
    if not applied:
        raise typer.Exit(EXIT_ERROR)
