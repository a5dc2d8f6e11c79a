"""Table QA on the corpus's own tables, through the real pipeline's ``search`` and ``ask``.

Every HWP, HWPX, DOCX and PDF file of the corpus (``RAGCTL_CORPUS`` or ``../shared/corpus``) is
parsed; each data cell of a table that has a row heading and a column heading becomes the question
"ROW의 COLUMN은?" with the cell as its gold answer, numbers and short texts only (at most
``--max-gold-chars``).  A question asked of two cells with different values (the same table headings
in two editions of a report) is ambiguous by construction and left out; the same question from the
same document saved as .hwp and .hwpx is asked once.  The files that hold a table (with or without
headings) are ingested into a fresh embedded project, and a fixed sample of the questions
(random.Random(seed), default 300) is asked with no LLM configured, so each answer is the extractive
one.

    python bench/tables.py --json

The last line of output is one JSON object with

* ``cell_chunk_top3`` — share of questions where one of the first three search hits holds the cell's
  line ("ROW · COLUMN: VALUE": the cell with both its headings);
* ``answer_has_gold`` — share of answers whose body contains the cell's value (``ragctl.gold``, as
  bench/answers.py scores it);
* ``answer_quotes_cell`` — share whose body holds the whole cell line (the value with its headings);
* ``n_questions``, ``n_candidates`` (questions before sampling), ``n_ambiguous`` (left out),
  ``n_files``, ``n_chunks``, ``ingest_seconds``, ``ask_ms_mean``, ``embed_model`` and ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

from _common import machine, temporary_pipeline

from ragctl.gold import answer_body, contains_gold
from stack.pipeline.errors import PipelineError
from stack.pipeline.parsers import parse_file
from stack.pipeline.tables import cell_lines, is_number

SUFFIXES = (".hwp", ".hwpx", ".docx", ".pdf")


def corpus_folder() -> Path:
    return Path(os.environ.get("RAGCTL_CORPUS") or Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus")


def question_for(row: str, column: str) -> str:
    return f"{row}의 {column}은?"


def table_questions(files: list[Path], max_gold_chars: int) -> tuple[list[Path], list[dict], int]:
    """The files that hold tables, the questions their cells give (once each), and how many
    questions were left out as ambiguous."""
    with_tables: list[Path] = []
    by_question: dict[str, list[dict]] = {}
    for path in files:
        try:
            document = parse_file(path)
        except PipelineError:
            continue
        tables = [block.table() for block in document.blocks if block.kind == "table"]
        if not tables:
            continue
        with_tables.append(path)
        for table in tables:
            for line in cell_lines(table):  # type: ignore[arg-type]
                value = line.value
                if not (line.row_heading and line.column_heading):
                    continue
                if not (is_number(value) or len(value) <= max_gold_chars) or set(value) <= set("-−–‒—·… "):
                    continue
                question = question_for(line.row_heading, line.column_heading)
                by_question.setdefault(question, []).append(
                    {"question": question, "gold": value, "cell_line": line.text, "file": path.name})
    questions, ambiguous = [], 0
    for asked in by_question.values():
        if len({qa["gold"] for qa in asked}) > 1:
            ambiguous += 1
            continue
        questions.append(asked[0])
    return with_tables, questions, ambiguous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=300, help="how many questions to sample (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-gold-chars", type=int, default=20, help="longest text answer (numbers always)")
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    parser.add_argument("--details", default=None, help="write one JSON line per question to this file")
    parser.add_argument("--list", action="store_true", help="only list the files and count the questions")
    parser.add_argument("--project", default=None, help="ingest into (or reuse) this project folder; kept")
    parser.add_argument("--formats", default=",".join(s.lstrip(".") for s in SUFFIXES),
                        help="which files' tables, by suffix (default hwp,hwpx,docx,pdf; e.g. --formats pdf)")
    args = parser.parse_args()

    os.environ.pop("OPENAI_API_KEY", None)  # extractive answers only
    corpus = corpus_folder()
    if not corpus.is_dir():
        raise SystemExit(f"no corpus at {corpus}: set RAGCTL_CORPUS")
    suffixes = {f".{name.strip().lstrip('.').lower()}" for name in args.formats.split(",")} & set(SUFFIXES)
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    with_tables, questions, ambiguous = table_questions(files, args.max_gold_chars)
    sample = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    if args.list:
        for path in with_tables:
            print(path.relative_to(corpus), sum(qa["file"] == path.name for qa in questions))
        print(f"{len(questions)} questions, {ambiguous} ambiguous left out")
        return

    if args.project:
        from stack.pipeline.service import Pipeline
        from stack.settings import load_settings

        folder = Path(args.project)
        folder.mkdir(parents=True, exist_ok=True)
        pipeline, keep = Pipeline(load_settings(folder, {"openai_api_key": None})), True
    else:
        (pipeline, folder), keep = temporary_pipeline(openai_api_key=None), False
    if pipeline.settings.llm_configured:
        raise SystemExit("an LLM is configured; this benchmark measures extractive answers")
    try:
        started = time.perf_counter()
        results = pipeline.ingest_files(with_tables)
        ingest_s = time.perf_counter() - started
        n_chunks = sum(result.chunks for result in results)
        print(f"ingested {len(with_tables)} files in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

        top3 = has_gold = quotes = 0
        details = []
        started = time.perf_counter()
        for qa in sample:
            hits = pipeline.search(qa["question"], top_k=3)
            in_top3 = any(qa["cell_line"] in hit.text for hit in hits[:3])
            answer = pipeline.ask(qa["question"])
            if answer.mode != "extractive":
                raise SystemExit(f"expected an extractive answer, got {answer.mode}")
            body = answer_body(answer.answer)
            found = contains_gold(body, [qa["gold"]])
            quoted = contains_gold(body, [qa["cell_line"]])
            top3 += in_top3
            has_gold += found
            quotes += quoted
            details.append({**qa, "answer": body, "in_top3": in_top3, "has_gold": found, "quotes_cell": quoted})
            if len(details) % 25 == 0:
                print(f"{len(details)}/{len(sample)}: top3 {top3}, has_gold {has_gold}", file=sys.stderr, flush=True)
        query_s = time.perf_counter() - started
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)

    n = max(1, len(sample))
    result = {
        "cell_chunk_top3": round(top3 / n, 4),
        "answer_has_gold": round(has_gold / n, 4),
        "answer_quotes_cell": round(quotes / n, 4),
        "n_questions": len(sample),
        "n_candidates": len(questions),
        "n_ambiguous": ambiguous,
        "n_files": len(with_tables),
        "n_chunks": n_chunks,
        "ingest_seconds": round(ingest_s, 1),
        "ask_ms_mean": round(1000 * query_s / n, 1),
        "embed_model": pipeline.settings.embed_model,
        "machine": machine(),
    }
    if args.details:
        with open(args.details, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in details)
    if not args.json:
        for key in ("cell_chunk_top3", "answer_has_gold", "answer_quotes_cell", "n_questions", "n_files"):
            print(f"{key:>18}: {result[key]}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
