"""``ragctl eval``: a team's own questions run through the same path ``ask`` takes, scored, stored
and compared (issue #28).

* :func:`load_questions` reads a question set (JSONL or CSV; UTF-8 with or without a BOM, Excel's
  CSV with CRLF and quoted newlines, or Korean Excel's plain "CSV" in CP949) into
  :class:`Question` rows and a :class:`RowError` for each malformed row, with its line number;
* :func:`run_questions` asks each through a backend (the embedded ``Pipeline`` or the stack's
  ``StackClient``: the same ``ask``) and scores it (:class:`Outcome`);
* :func:`summarize` gives the set's metrics; :func:`fingerprint` what shaped the answers;
* :func:`save_run`, :func:`list_runs`, :func:`load_run` keep every run under ``data/eval/``;
  :func:`compare_runs` says which questions flipped between two runs and the metric deltas.

Scoring uses :mod:`ragctl.gold`, the definition ``bench/answers.py`` reports with.  Standard library
only at import time: a base install evaluates a running stack.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath

from ragctl.errors import UsageError
from ragctl.gold import answer_body, answer_has_gold, cited_numbers
from stack.contract import RagError

#: Column names accepted in a CSV header (case and surrounding spaces ignored), and JSONL keys.
COLUMNS = {
    "question": ("question", "질문", "q"),
    "answer": ("answer", "answers", "정답", "답", "a"),
    "file": ("file", "source", "파일", "문서"),
    "collection": ("collection", "컬렉션"),
}
#: In a CSV cell, several acceptable answers are separated by this.
ANSWER_SEPARATOR = "|"
RUN_FORMAT = 1


@dataclass
class Question:
    line: int
    question: str
    answers: list[str]
    file: str | None = None
    collection: str | None = None


@dataclass
class RowError:
    line: int
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    """One question's result."""

    line: int
    question: str
    answers: list[str]
    file: str | None
    collection: str | None
    answer: str = ""
    mode: str | None = None
    model: str | None = None
    sources: list[dict] = field(default_factory=list)
    answer_has_gold: bool = False
    #: The expected file is among the sources the answer cites ([n]; all its sources when it cites
    #: none); None when the question names no file.
    source_has_gold: bool | None = None
    #: Rank (1 = first) of the first source from the expected file among the answer's sources.
    file_rank: int | None = None
    answer_chars: int = 0
    latency_ms: float = 0.0
    error: dict | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.answer_has_gold and self.source_has_gold is not False

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


# -- loading ---------------------------------------------------------------------------------
def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text"
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:  # Korean Excel saves "CSV (쉼표로 분리)" in CP949
        return raw.decode("cp949")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is neither UTF-8 nor CP949 text (byte {exc.start}).",
                         "save it as UTF-8 (Excel: 'CSV UTF-8 (쉼표로 분리)'), then run ragctl eval again",
                         code="questions_unreadable") from exc


def _is_jsonl(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return True
    if suffix in (".csv", ".tsv", ".txt"):
        return False
    return text.lstrip().startswith("{")


def _answers(value, line: int, errors: list[RowError], *, split: bool) -> list[str] | None:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(ANSWER_SEPARATOR)] if split else [value.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = [v.strip() for v in value]
    elif value is None:
        errors.append(RowError(line, "no 'answer': give one or more acceptable answer texts"))
        return None
    else:
        errors.append(RowError(line, f"'answer' must be a text or a list of texts, not {type(value).__name__}"))
        return None
    parts = [p for p in parts if p]
    if not parts:
        errors.append(RowError(line, "'answer' is empty: give one or more acceptable answer texts"))
        return None
    return parts


def _row(values: dict, line: int, errors: list[RowError], *, split: bool) -> Question | None:
    from stack.contract import MAX_QUESTION_CHARS

    question = values.get("question")
    if not isinstance(question, str) or not question.strip():
        errors.append(RowError(line, "no 'question'" if question is None or isinstance(question, str)
                               else f"'question' must be a text, not {type(question).__name__}"))
        return None
    if len(question) > MAX_QUESTION_CHARS:
        errors.append(RowError(line, f"'question' is {len(question):,} characters, over the limit of "
                               f"{MAX_QUESTION_CHARS:,}"))
        return None
    answers = _answers(values.get("answer"), line, errors, split=split)
    if answers is None:
        return None
    extra = {}
    for key in ("file", "collection"):
        value = values.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(RowError(line, f"'{key}' must be a text, not {type(value).__name__}"))
            return None
        extra[key] = value.strip() or None if isinstance(value, str) else None
    return Question(line, question.strip(), answers, **extra)


def _canonical(key: str) -> str | None:
    key = unicodedata.normalize("NFC", key.strip().lower())
    return next((name for name, aliases in COLUMNS.items() if key in aliases), None)


def _from_jsonl(text: str, errors: list[RowError]) -> list[Question]:
    questions = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            errors.append(RowError(number, f"a line must be a JSON object, not {type(data).__name__}"))
            continue
        values = {}
        for key, value in data.items():
            name = _canonical(str(key))
            if name and name not in values:
                values[name] = value
        row = _row(values, number, errors, split=False)
        if row:
            questions.append(row)
    return questions


def _from_csv(text: str, path: Path, errors: list[RowError]) -> list[Question]:
    sample = text[:4096]
    first = sample.splitlines()[0] if sample else ""
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        header = []
    names = [_canonical(h) for h in header]
    if "question" not in names or "answer" not in names:
        raise UsageError(f"{path}: the first line must name the columns; it needs 'question' and 'answer' "
                         f"(found: {', '.join(h.strip() for h in header) or 'nothing'}).",
                         "make the first line: question,answer,file,collection   (file and collection optional)",
                         code="questions_no_header")
    questions = []
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(start, f"not valid CSV: {exc}"))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            errors.append(RowError(line, f"{len(cells)} values for {len(header)} columns (quote a value that "
                                   f"holds '{delimiter}')"))
            continue
        values = {name: cell for name, cell in zip(names, cells, strict=False) if name and cell.strip()}
        row = _row(values, line, errors, split=True)
        if row:
            questions.append(row)
    return questions


def load_questions(path: Path) -> tuple[list[Question], list[RowError]]:
    """The questions of a set, and one error per malformed row (the others are still returned)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"No question set at {path}.", "ragctl eval generate -o questions.jsonl   (writes a first "
                         "set to review)", code="questions_not_found") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}.", "check the path and its permissions",
                         code="questions_unreadable") from None
    text = _decode(raw, path)
    errors: list[RowError] = []
    questions = _from_jsonl(text, errors) if _is_jsonl(path, text) else _from_csv(text, path, errors)
    if not questions and not errors:
        raise UsageError(f"{path} holds no questions.", "add lines such as "
                         '{"question": "…", "answer": "…", "file": "…"}', code="questions_empty")
    return questions, errors


# -- running and scoring ---------------------------------------------------------------------
def _same_file(expected: str, cited: str) -> bool:
    def norm(name: str) -> str:
        return unicodedata.normalize("NFC", PurePath(name.replace("\\", "/")).name).casefold()

    return norm(expected) == norm(cited)


def score(question: Question, answer, latency_ms: float) -> Outcome:
    """An answer (``stack.contract.Answer``) to ``question``, scored."""
    sources = list(answer.sources)
    cited = cited_numbers(answer.answer)
    cited_sources = [s for s in sources if s.n in cited] or sources
    outcome = Outcome(question.line, question.question, question.answers, question.file, question.collection,
                      answer=answer.answer, mode=answer.mode, model=answer.model,
                      sources=[{"n": s.n, "file": s.file, "location": s.location, "score": round(s.score, 4),
                                "text": s.text, "cited": s.n in cited} for s in sources],
                      answer_has_gold=answer_has_gold(answer.answer, question.answers),
                      answer_chars=len(answer_body(answer.answer)), latency_ms=round(latency_ms, 1))
    if question.file:
        outcome.source_has_gold = any(_same_file(question.file, s.file) for s in cited_sources)
        outcome.file_rank = next((rank for rank, s in enumerate(sources, 1) if _same_file(question.file, s.file)),
                                 None)
    return outcome


def run_questions(backend, questions: list[Question], *, collection: str | None = None, parallel: int = 1,
                  top_k: int | None = None, on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Ask every question through ``backend.ask`` (``parallel`` at a time), in the set's order.

    A question's own failure (its collection does not exist, the LLM refused it…) is that question's
    error and the set goes on; an error that ends every question (the stack is down: exit code other
    than 1) is raised."""
    def one(question: Question) -> Outcome:
        started = time.perf_counter()
        try:
            answer = backend.ask(question.question, collection=question.collection or collection, top_k=top_k)
        except RagError as exc:
            if exc.exit_code not in (1, 2):  # the stack is down, say: every question would fail alike
                raise
            outcome = Outcome(question.line, question.question, question.answers, question.file,
                              question.collection, error={"code": exc.code, "message": exc.message},
                              latency_ms=round(1000 * (time.perf_counter() - started), 1))
        else:
            outcome = score(question, answer, 1000 * (time.perf_counter() - started))
        if on_result:
            on_result(outcome)
        return outcome

    if parallel <= 1:
        return [one(q) for q in questions]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, questions))


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))  # nearest rank
    return round(ordered[index], 1)


def summarize(outcomes: list[Outcome], *, row_errors: int = 0, wall_s: float | None = None) -> dict:
    """The set's metrics: shares over the questions that ran (source_has_gold over those naming a file)."""
    ran = [o for o in outcomes if o.error is None]
    with_file = [o for o in ran if o.source_has_gold is not None]
    ranks = [o.file_rank for o in with_file if o.file_rank is not None]
    latencies = [o.latency_ms for o in ran]

    def share(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    summary = {
        "questions": len(outcomes),
        "answered": len(ran),
        "errors": len(outcomes) - len(ran),
        "malformed_rows": row_errors,
        "passed": sum(o.passed for o in outcomes),
        "answer_has_gold": share(sum(o.answer_has_gold for o in ran), len(ran)),
        "source_has_gold": share(sum(bool(o.source_has_gold) for o in with_file), len(with_file)),
        "with_file": len(with_file),
        "mean_file_rank": round(statistics.fmean(ranks), 2) if ranks else None,
        "mean_answer_chars": round(statistics.fmean(o.answer_chars for o in ran), 1) if ran else None,
        "latency_ms_p50": _percentile(latencies, 0.50),
        "latency_ms_p95": _percentile(latencies, 0.95),
    }
    if wall_s is not None:
        summary["seconds"] = round(wall_s, 2)
        summary["questions_per_min"] = round(60 * len(outcomes) / wall_s, 1) if wall_s > 0 else None
    return summary


# -- what shaped the answers -----------------------------------------------------------------
def fingerprint(backend, settings, collection: str | None) -> dict:
    """Everything that shapes the answers, to tell two runs apart: version, embedding, chunking, fusion,
    LLM, and how many documents and chunks the collection holds."""
    from ragctl import __version__

    name = collection or settings.collection
    try:
        records = [r for r in backend.documents(collection=name) if r.status == "done"]
    except Exception:  # noqa: BLE001 - a fingerprint never stops a run; it says what it could not read
        records = None
    try:  # embedded: the collection's own recorded model; a stack: where its live workers encode
        embedding = {"model": settings.embed_model} | backend.embedding(name)
    except Exception:  # noqa: BLE001 - a fingerprint never stops a run
        embedding = {"model": settings.embed_model}
    return {
        "ragctl_version": __version__,
        "mode": backend.mode,
        "collection": name,
        "embedding": embedding,
        "chunking": {"chunk_tokens": settings.chunk_tokens, "chunk_overlap": settings.chunk_overlap},
        "fusion": {"top_k": settings.top_k, "dense_weight_korean": settings.dense_weight_korean,
                   "dense_weight_other": settings.dense_weight_other},
        "llm": settings.llm_model if settings.llm_configured else None,
        "documents": None if records is None else len(records),
        "chunks": None if records is None else sum(r.chunks for r in records),
    }


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# -- stored runs -----------------------------------------------------------------------------
def eval_folder(data_path: Path) -> Path:
    return Path(data_path) / "eval"


def set_digest(questions: Iterable[Question]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for q in questions:
        digest.update(json.dumps([q.question, q.answers, q.file, q.collection], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def new_run(source: Path, questions: list[Question], errors: list[RowError], outcomes: list[Outcome],
            fingerprint_: dict, wall_s: float) -> dict:
    now = datetime.now(UTC)
    return {
        "format": RUN_FORMAT,
        "id": now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
        "created_at": now.isoformat(timespec="seconds"),
        "question_set": {"path": str(source), "questions": len(questions), "digest": set_digest(questions)},
        "fingerprint": fingerprint_,
        "summary": summarize(outcomes, row_errors=len(errors), wall_s=wall_s),
        "malformed_rows": [e.to_dict() for e in errors],
        "results": [o.to_dict() for o in outcomes],
    }


def save_run(folder: Path, run: dict) -> Path:
    """Write the run as ``<folder>/<id>.json`` (whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run['id']}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(run, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, path)
    return path


def list_runs(folder: Path) -> list[dict]:
    """The stored runs, oldest first: id, when, the set, summary and fingerprint (no per-question results)."""
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "id" in data:
            runs.append({key: data.get(key) for key in ("id", "created_at", "question_set", "summary", "fingerprint")})
    return runs


def resolve_run(folder: Path, name: str) -> Path:
    """A stored run by id, unique id prefix, ``latest`` or ``previous``, or a run file's path."""
    given = Path(name)
    if given.suffix == ".json" and given.is_file():
        return given
    ids = [r["id"] for r in list_runs(folder)]
    if name in ("latest", "previous"):
        index = -1 if name == "latest" else -2
        if len(ids) >= -index:
            return folder / f"{ids[index]}.json"
        raise UsageError(f"There is no {name} run: {len(ids)} stored.", "ragctl eval FILE   (runs a question set)",
                         code="run_not_found")
    matches = [i for i in ids if i == name] or [i for i in ids if i.startswith(name)]
    if len(matches) == 1:
        return folder / f"{matches[0]}.json"
    if matches:
        raise UsageError(f"'{name}' names {len(matches)} runs: {', '.join(matches[:5])}.",
                         "give more of the id (ragctl eval list)", code="run_ambiguous")
    raise UsageError(f"No stored run '{name}'.", "ragctl eval list   (shows the stored runs)", code="run_not_found")


def load_run(folder: Path, name: str) -> dict:
    path = resolve_run(folder, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"The run file {path} cannot be read: {exc}.", "ragctl eval list",
                         code="run_unreadable") from None


# -- comparing -------------------------------------------------------------------------------
METRICS = ("answer_has_gold", "source_has_gold", "mean_file_rank", "mean_answer_chars", "latency_ms_p50",
           "latency_ms_p95")


def compare_runs(a: dict, b: dict) -> dict:
    """What changed from run ``a`` to run ``b``: questions that went from right to wrong (answer_has_gold
    or source_has_gold) and back, the metric deltas, and the fingerprint's differences."""
    def key(row: dict) -> tuple:  # the same question with other expectations is another row
        return (row["question"], row.get("collection"), tuple(row["answers"]), row.get("file"))

    before = {key(r): r for r in a["results"]}
    after = {key(r): r for r in b["results"]}
    broke, fixed = [], []
    for k, new in after.items():
        old = before.get(k)
        if old is None or old.get("error") or new.get("error"):
            continue
        row = {"question": new["question"], "answers": new["answers"], "file": new.get("file"),
               "line": new.get("line"), "before": old["answer"], "after": new["answer"]}
        for metric in ("answer_has_gold", "source_has_gold"):
            was, now = old.get(metric), new.get(metric)
            if was is True and now is False:
                broke.append(row | {"metric": metric})
            elif was is False and now is True:
                fixed.append(row | {"metric": metric})
    deltas = {}
    for metric in METRICS:
        x, y = a["summary"].get(metric), b["summary"].get(metric)
        deltas[metric] = {"a": x, "b": y, "delta": None if x is None or y is None else round(y - x, 4)}
    fa, fb = _flatten(a.get("fingerprint") or {}), _flatten(b.get("fingerprint") or {})
    changed = {k: {"a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
    return {
        "a": a["id"], "b": b["id"],
        "same_question_set": a["question_set"].get("digest") == b["question_set"].get("digest"),
        "only_in_a": len(set(before) - set(after)), "only_in_b": len(set(after) - set(before)),
        "right_to_wrong": broke, "wrong_to_right": fixed,
        "metrics": deltas, "fingerprint_changes": changed,
    }


# -- the gate --------------------------------------------------------------------------------
GATED = ("answer_has_gold", "source_has_gold")


def gate_scores(run: dict) -> dict:
    """The gated shares over every question of a run: a question that failed to run counts as wrong."""
    rows = run["results"]
    with_file = [r for r in rows if r.get("file")]
    return {
        "answer_has_gold": round(sum(bool(r["answer_has_gold"]) and not r.get("error") for r in rows) / len(rows), 4)
        if rows else None,
        "source_has_gold": round(sum(r.get("source_has_gold") is True for r in with_file) / len(with_file), 4)
        if with_file else None,
    }


def gate(before: dict, after: dict, max_drop: float) -> dict:
    """Whether ``after`` keeps ``before``'s quality: neither answer_has_gold nor source_has_gold (over every
    question; one that failed to run counts as wrong) drops by more than ``max_drop`` (a share: 0.02 is
    two points); the drops and the questions that broke."""
    diff = compare_runs(before, after)
    old, new = gate_scores(before), gate_scores(after)
    drops = {}
    for metric in GATED:
        a, b = old[metric], new[metric]
        if a is not None and b is not None and a - b > max_drop + 1e-9:
            drops[metric] = {"before": a, "after": b, "drop": round(a - b, 4)}
    broke = diff["right_to_wrong"] + [
        {"question": r["question"], "line": r.get("line"), "metric": "error", "error": r["error"]}
        for r in after["results"] if r.get("error") and not any(
            x["question"] == r["question"] and not x.get("error") for x in before["results"])]
    return {"passed": not drops, "max_drop": max_drop, "drops": drops, "right_to_wrong": broke,
            "wrong_to_right": diff["wrong_to_right"], "before": before["id"], "after": after["id"]}
