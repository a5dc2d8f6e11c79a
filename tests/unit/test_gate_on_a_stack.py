"""``config set --eval`` on a running stack (ragctl/ops/gate.py ``gated_setting_on_stack``, issue #28):
which services restart when, what is built, swapped or removed, and that ragctl.toml is put back; and
``upgrade --eval`` (``gated_upgrade``): a drop raised inside the runtime's upgrade undoes it there.

The stack here is a stand-in (:class:`_Stack`): services that read the settings file when they restart,
and a worker that builds a collection's next generation with the settings it read.  Its answers are
right unless the index was built with 30-token chunks or the API asks an empty collection, so the
verdict is the real gate's (``ragctl.ops.eval.gate`` over runs scored by ``run_questions``).  The same
paths on a real local-runtime stack: tests/integration/test_eval.py; the upgrade that holds on a real
Compose stack: tests/compose/test_compose_e2e.py."""

from __future__ import annotations

from pathlib import Path

from ragctl.ops.eval import Question, new_run, run_questions
from ragctl.ops.gate import gated_setting_on_stack
from stack.contract import Answer, Source

QUESTIONS = [Question(1, "연차 휴가는 며칠인가요?", ["15일"], file="휴가_규정.hwpx"),
             Question(2, "How long are backups kept?", ["30 days"], file="backup-procedure.pdf")]
FACTS = {"연차 휴가는 며칠인가요?": ("15일", "휴가_규정.hwpx"), "How long are backups kept?": ("30 days", "backup-procedure.pdf")}


class _Stack:
    def __init__(self) -> None:
        self.file = {"chunk_tokens": 200, "collection": "default"}  # ragctl.toml's [settings]
        self.running = {"api": dict(self.file), "worker": dict(self.file)}
        self.live = 0
        self.built_with = {0: dict(self.file)}  # generation → the worker settings it was built with
        self.restarts: list[list[str]] = []
        self.steps: list[str] = []
        self.state: dict = {}

    # the runtime's lifecycle: a restarted service reads the file again
    def restart(self, services: list[str]) -> None:
        self.restarts.append(list(services))
        for service in services:
            self.running[service] = dict(self.file)

    # the client
    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None,
            generation: int | None = None) -> Answer:
        index = self.built_with[self.live if generation is None else generation]
        text, file = FACTS[question]
        empty = (collection or self.running["api"]["collection"]) == "empty"
        if empty or index["chunk_tokens"] == 30:
            return Answer(question, "관련 내용을 찾지 못했습니다.", "extractive")
        return Answer(question, f"{text}.", "extractive",
                      [Source(1, file, "", None, None, "d", "d:0", 1.0, text)])

    def reindex(self, collection: str, action: str) -> dict:
        self.steps.append(action)
        if action == "build":
            generation = max(self.built_with) + 1
            self.built_with[generation] = dict(self.running["worker"])
            self.state = {"state": "built", "generation": generation, "results": []}
        elif action == "swap":
            self.live = self.state["generation"]
            self.state = {**self.state, "state": "swapped"}
        elif action == "discard":
            del self.built_with[self.state["generation"]]
            self.state = {**self.state, "state": "discarded"}
        return self.state

    def reindex_state(self, collection: str) -> dict:
        return self.state


def _measure(reading, label: str) -> dict:
    return new_run(Path("gate.jsonl"), QUESTIONS, [], run_questions(reading, QUESTIONS), {}, 0.1)


def _set(stack: _Stack, key: str, value, *, shapes_index: bool):
    before = dict(stack.file)

    def undo() -> None:
        stack.file = before

    return gated_setting_on_stack(lambda: stack, change=lambda: stack.file.update({key: value}), undo=undo,
                                  restart=stack.restart, measure=_measure,
                                  shapes_index=["default"] if shapes_index else None, poll_s=0)


def test_a_worse_index_setting_is_built_asked_and_removed_and_the_file_put_back():
    stack = _Stack()
    outcome = _set(stack, "chunk_tokens", 30, shapes_index=True)
    assert not outcome.applied and outcome.reindex.reason == "answers got worse"
    assert outcome.verdict["drops"]["answer_has_gold"] == {"before": 1.0, "after": 0.0, "drop": 1.0}
    assert stack.steps == ["build", "discard"] and stack.live == 0 and set(stack.built_with) == {0}
    # The workers built with the new file and read the old one again; the API never restarted.
    assert stack.restarts == [["worker"], ["worker"]]
    assert stack.file["chunk_tokens"] == 200 and stack.running["worker"]["chunk_tokens"] == 200


def test_an_index_setting_that_holds_is_swapped_in_and_the_api_restarted_after():
    stack = _Stack()
    outcome = _set(stack, "chunk_tokens", 120, shapes_index=True)
    assert outcome.applied and outcome.verdict["passed"] and outcome.reindex.applied
    assert stack.steps == ["build", "swap"] and stack.live == 1 and stack.built_with[1]["chunk_tokens"] == 120
    assert stack.restarts == [["worker"], ["api"]] and outcome.restarted == ["worker", "api"]
    assert stack.running["api"]["chunk_tokens"] == 120


def test_a_worse_query_setting_restarts_api_and_workers_and_again_on_the_old_file():
    stack = _Stack()
    outcome = _set(stack, "collection", "empty", shapes_index=False)
    assert not outcome.applied and outcome.reindex is None and stack.steps == []
    assert {r["question"] for r in outcome.verdict["right_to_wrong"]} == {q.question for q in QUESTIONS}
    assert stack.restarts == [["api", "worker"], ["api", "worker"]]
    assert stack.file["collection"] == "default" and stack.running["api"]["collection"] == "default"


class _Upgradable:
    """A Compose stack's upgrade as the runtime does it (``Upgradable.upgrade_state``): switch, start, call
    ``check``, and on any exception its own undo.  ``answers_on_postgres``: whether the moved state answers."""

    kind = "docker"
    uses_postgres = False

    def __init__(self, root: Path, *, answers_on_postgres: bool) -> None:
        self.root, self.database, self.answers_on_postgres, self.undone = root, "sqlite", answers_on_postgres, False

    def status(self):
        return type("Status", (), {"running": True})()

    def catalog_documents(self) -> dict[str, list[str]]:
        return {"default": ["d"]}

    def upgrade_state(self, *, replace: bool = False, progress=None, check=None) -> dict:
        self.database = "postgres"
        try:
            if check is not None:
                check()
        except BaseException:
            self.database, self.undone = "sqlite", True
            raise
        return {"upgraded": True, "database": "postgres"}

    def ask(self, question: str, **_kwargs) -> Answer:
        stack = _Stack()
        if self.database == "postgres" and not self.answers_on_postgres:
            stack.file["collection"] = stack.running["api"]["collection"] = "empty"
        return stack.ask(question)


def test_an_upgrade_that_answers_worse_is_undone_by_the_runtime(project):
    from ragctl.ops.gate import gated_upgrade

    runtime = _Upgradable(project, answers_on_postgres=False)
    outcome = gated_upgrade(runtime, measure=_measure, open_reading=lambda: runtime)
    assert not outcome.applied and outcome.result is None and runtime.undone and runtime.database == "sqlite"
    assert outcome.verdict["drops"]["source_has_gold"]["after"] == 0.0
    assert outcome.to_dict()["applied"] is False and outcome.to_dict()["upgraded"] is False

    held = _Upgradable(project, answers_on_postgres=True)
    passed = gated_upgrade(held, measure=_measure, open_reading=lambda: held)
    assert passed.applied and passed.verdict["passed"] and passed.result["upgraded"] and held.database == "postgres"
