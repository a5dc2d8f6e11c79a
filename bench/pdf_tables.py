"""PDF parse time with and without the ruled-table finder (stack/pipeline/parsers/pdf_tables.py),
on every PDF of the corpus (``RAGCTL_CORPUS`` or ``../shared/corpus``), OCR off.

Each file is parsed ``--runs`` times each way, alternating, and the median taken per file: "without"
parses the text layer alone (the table finder replaced by one text run per page, as before the
finder existed).  Also counts the tables found and the characters of text each way.

    python bench/pdf_tables.py --runs 5 --json

The last line is one JSON object: per-file medians (``files``), ``total_with_s``,
``total_without_s``, ``ratio``, ``pages``, ``tables`` and ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _common import machine

from stack.pipeline.errors import PipelineError
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers import pdf as pdf_parser
from stack.pipeline.parsers.pdf_tables import page_parts


def _text_only(page, textpage, lines, number):
    return [lines]


def parse(path: Path, with_tables: bool) -> tuple[float, int, int, int]:
    """(seconds, pages, tables, characters of text) of one parse."""
    pdf_parser.page_parts = page_parts if with_tables else _text_only
    start = time.perf_counter()
    try:
        document = pdf_parser.parse_pdf(path, OcrOptions(mode="off"))
    except PipelineError:
        return time.perf_counter() - start, 0, 0, 0
    seconds = time.perf_counter() - start
    tables = sum(1 for block in document.blocks if block.kind == "table")
    return seconds, document.metadata.get("pages", 0), tables, len(document.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    args = parser.parse_args()
    corpus = Path(os.environ.get("RAGCTL_CORPUS") or Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus")
    files = sorted((corpus / "pdf").glob("*.pdf"))
    if not files:
        raise SystemExit(f"no PDFs under {corpus / 'pdf'}: set RAGCTL_CORPUS")
    rows = []
    for path in files:
        times: dict[bool, list[float]] = {True: [], False: []}
        info: dict[bool, tuple[int, int, int]] = {}
        for _ in range(args.runs):
            for with_tables in (True, False):
                seconds, pages, tables, chars = parse(path, with_tables)
                times[with_tables].append(seconds)
                info[with_tables] = (pages, tables, chars)
        rows.append({"file": path.name, "pages": info[True][0], "tables": info[True][1],
                     "chars_with": info[True][2], "chars_without": info[False][2],
                     "with_ms": round(statistics.median(times[True]) * 1000, 1),
                     "without_ms": round(statistics.median(times[False]) * 1000, 1)})
        if not args.json:
            print(rows[-1])
    with_s = sum(row["with_ms"] for row in rows) / 1000
    without_s = sum(row["without_ms"] for row in rows) / 1000
    result = {"files": rows, "total_with_s": round(with_s, 3), "total_without_s": round(without_s, 3),
              "ratio": round(with_s / without_s, 3) if without_s else None,
              "pages": sum(row["pages"] for row in rows), "tables": sum(row["tables"] for row in rows),
              "runs": args.runs, "machine": machine()}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
