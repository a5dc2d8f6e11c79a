"""The quality gate (issue #28 part 3): a change that could lower the answers is measured with a
question set before and after, and undone when ``answer_has_gold`` or ``source_has_gold`` drops by
more than the limit.

* :func:`gate_settings` says which set gates a command: ``--eval FILE``, else ``[eval] file`` of
  ragctl.toml (the project's default), unless ``--no-eval``;
* :func:`gated_reindex` rebuilds collections blue/green (the embedded backend's generations) and swaps
  the new indexes in only when the set's answers held (or when no set is given);
* :func:`gated_reindex_on_stack` does the same on a running stack (a worker builds, the API answers);
* :func:`gated_setting_on_stack` applies a changed setting to a running stack whose services read
  ragctl.toml (restarts, and a blue/green reindex for a setting that shapes the index);
* :func:`gated_restore` backs up what answers now, restores an archive, and puts that backup back
  when the answers got worse;
* :func:`gated_upgrade` wraps the runtime's own upgrade and undo (``Upgradable``).
  (``migrate``'s gate lives in :mod:`ragctl.ops.migrate`, beside its ledger.)

The commands (reindex, config set, restore, migrate, upgrade) are thin layers over these; how a set is
asked and stored is the caller's ``measure`` (the CLI's progress bar, ``data/eval/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.errors import RagctlError, UsageError
from ragctl.ops.eval import gate
from stack.contract import RagError

if TYPE_CHECKING:
    from ragctl.backends.embedded import EmbeddedBackend
    from stack.contract import IngestResult

#: The largest drop the gate lets through when neither --max-drop nor [eval] max_drop says (a share).
DEFAULT_MAX_DROP = 0.02

#: measure(backend, label) → a stored eval run (ragctl.ops.eval.new_run's dict)
Measure = Callable[[Any, str], dict]
#: The deployment's backend as it is now (opened anew after its data was replaced).
OpenReading = Callable[[], Any]


@dataclass(frozen=True)
class GateSettings:
    """Which question set gates a command, and the drop it allows; ``file`` None: no gate."""

    file: Path | None
    max_drop: float
    source: str  # "--eval", "ragctl.toml [eval]" or "none"


def gate_settings(root: Path, option: Path | None, max_drop: float | None, *, skip: bool = False) -> GateSettings:
    """``--eval FILE`` first, then ``[eval] file`` of ragctl.toml (relative to the project), unless ``--no-eval``."""
    from ragctl.project import CONFIG_NAME, ProjectConfig

    table = ProjectConfig.load(root).table("eval")
    limit = max_drop if max_drop is not None else table.get("max_drop", DEFAULT_MAX_DROP)
    if not isinstance(limit, (int, float)) or not 0 <= limit <= 1:
        raise UsageError(f"max_drop = {limit!r} under [eval] in {root / CONFIG_NAME} is not a share between 0 and 1.",
                         f"fix [eval] in {root / CONFIG_NAME} (e.g. max_drop = 0.02)", code="config_invalid",
                         exit_code=2)
    if option is not None and skip:
        raise UsageError("--eval and --no-eval say opposite things.", "give one of them", code="usage", exit_code=2)
    if option is not None:
        return GateSettings(option, float(limit), "--eval")
    configured = table.get("file")
    if skip or not configured:
        return GateSettings(None, float(limit), "none")
    path = Path(configured)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise UsageError(f"[eval] file = {configured!r} in {root / CONFIG_NAME} names no file ({path}): the "
                         "project's gate cannot run.", f"fix [eval] in {root / CONFIG_NAME}, or add --no-eval to "
                         "change without it", code="eval_file_missing", exit_code=2)
    return GateSettings(path, float(limit), "ragctl.toml [eval]")


@dataclass
class ReindexOutcome:
    """What a (gated) reindex did: per document results, the gate's verdict, and whether it swapped."""

    collections: list[str]
    results: list[IngestResult] = field(default_factory=list)
    verdict: dict | None = None
    applied: bool = False
    reason: str | None = None  # why not applied: "failed documents" or "answers got worse"

    def to_dict(self) -> dict:
        return {"collections": self.collections, "applied": self.applied, "reason": self.reason,
                "gate": self.verdict, "results": [r.to_dict() for r in self.results]}


def gated_reindex(backend: EmbeddedBackend, collections: list[str], *, measure: Measure | None = None,
                  max_drop: float = DEFAULT_MAX_DROP, before: EmbeddedBackend | None = None,
                  on_document: Callable[[IngestResult], None] | None = None) -> ReindexOutcome:
    """Rebuild ``collections`` blue/green with ``backend``'s settings; swap the new indexes in when every
    document was rebuilt and, with ``measure``, when the set's answers held.

    ``before``: the backend the live indexes answer with now (the old settings, when a setting is
    being changed); ``backend`` by default.  Before and after are each asked of the generations they
    name (:meth:`EmbeddedBackend.pinned`), so nothing is swapped to measure.  Interrupted or failed,
    every new index is removed and the old ones answer as before."""
    before = before or backend
    outcome = ReindexOutcome(list(collections))
    baseline = None
    if measure is not None:
        baseline = measure(before.pinned({name: before.generation(name) for name in collections}), ", before")
    candidates = []
    try:
        for name in collections:
            candidate = backend.build_generation(name, on_document=on_document)
            candidates.append(candidate)
            outcome.results += candidate.results
        if any(c.failed for c in candidates):
            outcome.reason = "failed documents"
        elif measure is not None:
            after = measure(backend.pinned({c.collection: c.generation for c in candidates}), ", after")
            outcome.verdict = gate(baseline, after, max_drop)
            if not outcome.verdict["passed"]:
                outcome.reason = "answers got worse"
    except BaseException:
        for candidate in candidates:
            backend.discard_generation(candidate)
        raise
    if outcome.reason is not None:
        for candidate in candidates:
            backend.discard_generation(candidate)
        return outcome
    for candidate in candidates:
        backend.swap_generation(candidate)
    outcome.applied = True
    return outcome


class _Generation:
    """The stack's client asking given generations of collections' indexes (the gate's "after"); a
    collection not named is asked of the index that answers for it now."""

    def __init__(self, client, generations: dict[str, int], default: str | None = None) -> None:
        self._client, self._generations, self._default = client, dict(generations), default

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None):
        name = collection or self._default
        return self._client.ask(question, collection=name, top_k=top_k, generation=self._generations.get(name))

    def __getattr__(self, name: str):  # documents, readiness…: the client's own
        return getattr(self._client, name)


#: A reindex step's states that end the wait.
_SETTLED = {"built", "swapped", "discarded", "failed", "error"}
#: The most a CLI waits for a stack's reindex by default (``reindex --wait-s``).
DEFAULT_WAIT_S = 3600.0
#: The most a step may wait for a worker to take it (no heartbeat yet): busy workers finish their document
#: first; none taking it for this long means none runs.
QUEUED_S = 600.0


class ReindexStalled(RagctlError):
    """The CLI stopped waiting for a stack's reindex: its worker is gone, none took it, or --wait-s passed."""

    code = "reindex_stalled"


def _wait(client, collection: str, on_state: Callable[[dict], None] | None, poll_s: float, *,
          wait_s: float | None = DEFAULT_WAIT_S, dead_after_s: float = 60.0) -> dict:
    """Poll the step's state until it settles.  A worker's heartbeat (``beat``) that stops growing for
    ``dead_after_s`` means the worker was killed; no heartbeat for :data:`QUEUED_S` means no worker took
    the step; ``wait_s`` bounds the whole wait.  Each ends in :class:`ReindexStalled` saying where the
    reindex stands (the live index answers in every case)."""
    import time

    started = moved = time.monotonic()
    last = None
    while True:
        state = client.reindex_state(collection)
        if on_state:
            on_state(state)
        if state.get("state") in _SETTLED:
            return state
        now = time.monotonic()
        progress = (state.get("state"), state.get("done"), state.get("beat"))
        if progress != last:
            last, moved = progress, now
        where = (f"it is {state.get('state')}" + (f" ({state['done']} documents rebuilt)" if state.get("done") else ""))
        if state.get("beat") is not None and now - moved > dead_after_s:
            raise ReindexStalled(f"The worker rebuilding '{collection}' stopped answering {now - moved:.0f} s ago "
                                 f"({where}): it was killed or its host is gone.  The old index answers.",
                                 _next_steps(collection))
        if state.get("beat") is None and now - moved > QUEUED_S:
            raise ReindexStalled(f"No worker took the reindex of '{collection}' in {now - moved:.0f} s ({where}).  "
                                 "The old index answers.", "ragctl ps   (is a worker running?), then " +
                                 _next_steps(collection))
        if wait_s is not None and now - started > wait_s:
            raise ReindexStalled(f"Stopped waiting for the reindex of '{collection}' after {wait_s:.0f} s ({where}); "
                                 "the worker goes on, the old index answers until a swap.",
                                 f"ragctl reindex -c {collection} --wait-s {2 * wait_s:.0f}   (or " +
                                 _next_steps(collection) + ")")
        time.sleep(poll_s)


def _next_steps(collection: str) -> str:
    return f"ragctl logs worker, then ragctl reindex -c {collection} again (it removes a half-built index first)"


def gated_reindex_on_stack(client, collection: str, *, measure: Measure | None = None,
                           max_drop: float = DEFAULT_MAX_DROP, on_state: Callable[[dict], None] | None = None,
                           poll_s: float = 1.0, wait_s: float | None = DEFAULT_WAIT_S,
                           dead_after_s: float = 60.0) -> ReindexOutcome:
    """:func:`gated_reindex` on a running stack: a worker builds the new index while the API answers from
    the live one; the set is asked through the API before, and of the new generation after; the worker
    swaps it in, or removes it.  ``wait_s`` and ``dead_after_s``: see :func:`_wait`."""
    from stack.contract import IngestResult

    outcome = ReindexOutcome([collection])
    baseline = measure(client, ", before") if measure is not None else None
    client.reindex(collection, "build" if measure is not None else "build_and_swap")
    state = _wait(client, collection, on_state, poll_s, wait_s=wait_s, dead_after_s=dead_after_s)
    outcome.results = [IngestResult(**r) for r in state.get("results", [])]
    if state["state"] == "error":
        error = state.get("error") or {}
        raise RagError(f"The reindex of '{collection}' stopped on the worker: {error.get('message')}",
                       error.get("hint") or f"ragctl logs worker, then ragctl reindex -c {collection} again",
                       code=error.get("code") or "reindex_failed")
    if state["state"] == "failed":
        outcome.reason = "failed documents"
        return outcome
    if measure is not None:
        try:
            after = measure(_Generation(client, {collection: state["generation"]}, collection), ", after")
        except BaseException:
            client.reindex(collection, "discard")
            raise
        outcome.verdict = gate(baseline, after, max_drop)
        step = "swap" if outcome.verdict["passed"] else "discard"
        client.reindex(collection, step)
        state = _wait(client, collection, on_state, poll_s, wait_s=wait_s, dead_after_s=dead_after_s)
        if outcome.verdict["passed"] and state["state"] != "swapped":
            raise RagError(f"The new index of '{collection}' passed the gate but was not swapped in: "
                           f"{(state.get('error') or {}).get('message')}", f"ragctl reindex -c {collection}",
                           code="reindex_failed")
        if not outcome.verdict["passed"]:
            outcome.reason = "answers got worse"
            return outcome
    outcome.applied = True
    return outcome


#: Restarted after a query-time setting changes: every service that answers or works reads its settings
#: when it starts (the API asks, the workers ingest with the same settings).
QUERY_SERVICES = ["api", "worker"]
#: How long a restarted stack's API gets to answer ready again.
READY_S = 180.0


@dataclass
class SettingOutcome:
    """What a gated ``config set`` on a running stack did: the verdict, the reindex of a setting that
    shapes the index (None for a query-time one), and the services restarted to read the change."""

    applied: bool = False
    verdict: dict | None = None
    reindex: ReindexOutcome | None = None
    restarted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"applied": self.applied, "gate": self.verdict,
                "reindex": self.reindex.to_dict() if self.reindex else None, "restarted": self.restarted}


def restart_and_wait(runtime, open_reading: OpenReading, services: list[str], *, ready_s: float = READY_S) -> None:
    """Restart ``services`` through the runtime's lifecycle, then wait until the API answers ready: the
    next question is asked of services that read the changed ragctl.toml."""
    import time

    for service in services:
        runtime.restart(service)
    deadline = time.monotonic() + ready_s
    last: dict | str = {}
    while time.monotonic() < deadline:
        try:
            last = open_reading().readiness()
        except RagctlError as exc:  # the API is still starting
            last = str(exc)
        if isinstance(last, dict) and last.get("status") == "ready":
            return
        time.sleep(0.5)
    raise RagError(f"The stack did not answer ready {ready_s:.0f} s after restarting {', '.join(services)}: {last}",
                   "ragctl ps, then ragctl logs api", code="restart_timeout")


def gated_setting_on_stack(open_reading: OpenReading, *, change: Callable[[], None], undo: Callable[[], None],
                           restart: Callable[[list[str]], None], measure: Measure, shapes_index: list[str] | None,
                           default_collection: str = "default", max_drop: float = DEFAULT_MAX_DROP,
                           on_state: Callable[[dict], None] | None = None, poll_s: float = 1.0, wait_s: float | None = DEFAULT_WAIT_S,
                           dead_after_s: float = 60.0) -> SettingOutcome:
    """A setting changed on a running stack whose services read ragctl.toml when they start, gated on a set.

    The set is asked first.  ``change()`` writes the setting.  A query-time one (``shapes_index`` None)
    restarts the API and the workers (:data:`QUERY_SERVICES`) and the set is asked again.  One that shapes
    the index (``shapes_index``: the collections to rebuild) restarts only the workers, which build each
    collection's new index beside the old while the API (still on the old settings) answers from the old
    ones; the set is asked of the new indexes; they are swapped in, and the API restarted, only when the
    answers held (``default_collection``: where the set's questions that name none are asked).
    Refused, failed or interrupted: ``undo()`` puts ragctl.toml back, new indexes are removed, and the
    services restarted read the old settings again."""
    outcome = SettingOutcome()
    baseline = measure(open_reading(), ", before")
    services = QUERY_SERVICES if shapes_index is None else ["worker"]
    built: dict[str, int] = {}
    client = open_reading()

    def roll_back() -> None:
        for name in built:
            client.reindex(name, "discard")
            _wait(client, name, on_state, poll_s, wait_s=wait_s, dead_after_s=dead_after_s)
        undo()
        restart(services)
        outcome.applied = False

    change()
    outcome.restarted = list(services)
    try:
        restart(services)
        if shapes_index is None:
            after = measure(open_reading(), ", after")
        else:
            from stack.contract import IngestResult

            outcome.reindex = ReindexOutcome(list(shapes_index))
            for name in shapes_index:
                client.reindex(name, "build")
                state = _wait(client, name, on_state, poll_s, wait_s=wait_s, dead_after_s=dead_after_s)
                outcome.reindex.results += [IngestResult(**r) for r in state.get("results", [])]
                if state["state"] == "error":
                    error = state.get("error") or {}
                    raise RagError(f"The reindex of '{name}' stopped on the worker: {error.get('message')}",
                                   error.get("hint") or "ragctl logs worker", code=error.get("code") or "reindex_failed")
                if state["state"] == "failed":  # the worker removed that new index itself
                    outcome.reindex.reason = "failed documents"
                    break
                built[name] = state["generation"]
            else:
                after = measure(_Generation(client, built, default_collection), ", after")
    except BaseException:
        roll_back()
        raise
    if outcome.reindex and outcome.reindex.reason:
        roll_back()
        return outcome
    outcome.verdict = gate(baseline, after, max_drop)
    if not outcome.verdict["passed"]:
        if outcome.reindex:
            outcome.reindex.reason = "answers got worse"
        roll_back()
        return outcome
    if outcome.reindex:
        for name in list(built):
            client.reindex(name, "swap")
            state = _wait(client, name, on_state, poll_s, wait_s=wait_s, dead_after_s=dead_after_s)
            if state["state"] != "swapped":
                raise RagError(f"The new index of '{name}' passed the gate but was not swapped in: "
                               f"{(state.get('error') or {}).get('message')}", f"ragctl reindex -c {name}",
                               code="reindex_failed")
            del built[name]
        outcome.reindex.applied = True
        restart(["api"])  # it answers with the new settings too (the swapped indexes with their own model)
        outcome.restarted.append("api")
    outcome.applied = True
    return outcome


@dataclass
class RestoreOutcome:
    """What a (gated) restore did: the archive's restore, the gate's verdict, and the way back."""

    restored: dict[str, Any]  # ragctl.ops.backup.restore's result for the archive
    applied: bool = True
    verdict: dict | None = None
    skipped: str | None = None  # why a gate that was asked for did not run (nothing answered before)
    safety: Path | None = None  # the backup of what answered before the restore
    rolled_back: dict[str, Any] | None = None  # restore's result for the safety backup, when refused
    runs: list[dict] = field(default_factory=list)  # before and after: data/ was replaced under them

    def to_dict(self) -> dict:
        return {"applied": self.applied, "gate": self.verdict, "gate_skipped": self.skipped,
                "safety_backup": str(self.safety) if self.safety else None, "rolled_back": self.rolled_back}


def nothing_answers(root: Path, runtime=None) -> str | None:
    """Why a change to ``root`` (its ``runtime``, by default the project's) has no "before" to measure,
    or None when something answers now."""
    from ragctl.project import CONFIG_NAME
    from ragctl.runtime import runtime_for
    from ragctl.runtime.base import is_running
    from ragctl.runtimes import kind_of

    if not (root / CONFIG_NAME).is_file():
        return f"no project in {root} yet"
    runtime = runtime or runtime_for(root)
    if kind_of(runtime.kind).has_services and not is_running(runtime):
        return f"the {runtime.kind} stack is not running (ragctl up first to gate the restore)"
    if not any(runtime.catalog_documents().values()):
        return "the project holds no documents"
    return None


def gated_restore(root: Path, archive: Path, *, measure: Measure | None, open_reading: OpenReading,
                  safety: Path, max_drop: float = DEFAULT_MAX_DROP,
                  progress: Callable[[str], None] | None = None) -> RestoreOutcome:
    """Restore ``archive`` into ``root``; with ``measure``, ask the set of what answers now and of the
    restored deployment, and put back what answered before (backed up first to ``safety``) when
    answer_has_gold or source_has_gold dropped by more than ``max_drop``.

    A deployment where nothing answers (no project, no documents, a stack that is down) has no "before":
    the restore is made ungated and ``skipped`` says why.  Interrupted while the restored deployment is
    asked, the state before is put back too."""
    from ragctl.ops.backup import backup, restore

    say = progress or (lambda _text: None)
    skipped = nothing_answers(root) if measure is not None else None
    if measure is None or skipped:
        return RestoreOutcome(restore(root, archive, progress=progress), skipped=skipped)
    baseline = measure(open_reading(), ", before")
    say(f"backing up what answers now to {safety}")
    backup(root, safety, progress=progress)
    outcome = RestoreOutcome(restore(root, archive, progress=progress), safety=safety, runs=[baseline])

    def put_back() -> None:
        say("putting back what answered before the restore")
        outcome.rolled_back = restore(root, safety, progress=progress)
        outcome.applied = False

    try:
        after = measure(open_reading(), ", after")
    except BaseException:
        put_back()
        raise
    outcome.runs.append(after)
    outcome.verdict = gate(baseline, after, max_drop)
    if not outcome.verdict["passed"]:
        put_back()
    return outcome


class AnswersGotWorse(RagctlError):
    """The gate refused a change made inside a runtime's own procedure (``upgrade``): raised from its
    check, so that the runtime's own undo runs."""

    code = "answers_got_worse"

    def __init__(self, verdict: dict) -> None:
        super().__init__("The answers got worse after the change.",
                         f"ragctl eval compare {verdict['before']} {verdict['after']}")
        self.verdict = verdict


@dataclass
class UpgradeOutcome:
    """What a (gated) ``upgrade`` did: the runtime's result, the gate's verdict, why a gate did not run."""

    result: dict[str, Any] | None  # the runtime's upgrade_state result; None when the gate rolled it back
    applied: bool = True
    verdict: dict | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {**(self.result or {"upgraded": False}), "applied": self.applied, "gate": self.verdict,
                "gate_skipped": self.skipped}


def gated_upgrade(runtime, *, measure: Measure | None, open_reading: OpenReading, max_drop: float = DEFAULT_MAX_DROP,
                  replace: bool = False, progress: Callable[[str], None] | None = None) -> UpgradeOutcome:
    """``runtime.upgrade_state`` (the :class:`~ragctl.runtime.capabilities.Upgradable` capability) with the
    set asked before, and again once the upgraded stack runs, from the runtime's ``check`` hook: a drop
    raises :class:`AnswersGotWorse` there and the runtime's own undo puts the stack back as it was (on
    its SQLite files, which the upgrade only read).  Where nothing answers before (the stack is down, no
    documents) or there is nothing to upgrade, the gate does not run and says why."""
    skipped = None
    if measure is not None:
        skipped = ("the stack keeps its state in PostgreSQL already" if runtime.uses_postgres
                   else nothing_answers(runtime.root, runtime))
    if measure is None or skipped:
        return UpgradeOutcome(runtime.upgrade_state(replace=replace, progress=progress), skipped=skipped)
    baseline = measure(open_reading(), ", before")
    outcome = UpgradeOutcome(None)

    def check() -> None:
        outcome.verdict = gate(baseline, measure(open_reading(), ", after"), max_drop)
        if not outcome.verdict["passed"]:
            raise AnswersGotWorse(outcome.verdict)

    try:
        outcome.result = runtime.upgrade_state(replace=replace, progress=progress, check=check)
    except AnswersGotWorse:
        outcome.applied = False
    return outcome
