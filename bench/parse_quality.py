"""Parse quality on the shared corpus: bigram F1 against Hancom's HTML export, and parse rate.

    python bench/parse_quality.py --corpus ../shared/corpus [--json]

F1: characters reduced to letters and digits, order-insensitive multiset of character bigrams,
per document, then the mean per format (.hwp, .hwpx) over ``hwp/hwpjs`` against
``hwp/hwpjs/reference_html``. Parse rate: share of every HWP/HWPX file in the corpus that parses
with text, where files MANIFEST.tsv flags PASSWORD / DISTRIBUTION count only when they raise
their specific error.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from stack.pipeline.errors import (
    DistributionProtected,
    NoText,
    PasswordProtected,
    PipelineError,
)
from stack.pipeline.parsers import parse_file


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(raw: str) -> str:
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    return html.unescape(" ".join(parser.parts))


def bigrams(text: str) -> Counter:
    chars = [ch for ch in text if ch.isalnum()]
    return Counter(a + b for a, b in itertools.pairwise(chars))


def bigram_f1(candidate: str, reference: str) -> float:
    cand, ref = bigrams(candidate), bigrams(reference)
    if not cand and not ref:
        return 1.0
    overlap = sum((cand & ref).values())
    if not overlap:
        return 0.0
    precision = overlap / sum(cand.values())
    recall = overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def read_manifest(corpus: Path) -> dict[str, str]:
    flags: dict[str, str] = {}
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.exists():
        return flags
    for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 5:
            notes = cols[4]
            if "PASSWORD" in notes:
                flags[cols[0]] = "PASSWORD"
            elif "DISTRIBUTION" in notes:
                flags[cols[0]] = "DISTRIBUTION"
    return flags


def reference_for(doc: Path, ref_dir: Path) -> Path | None:
    for candidate in ref_dir.iterdir():
        if candidate.stem == doc.stem and candidate.suffix.lower() == ".html":
            return candidate
    return None


def reference_text(ref: Path) -> str:
    """Text of Hancom's export; a multi-page export is a frame page whose iframes hold the pages."""
    raw = ref.read_text(encoding="utf-8", errors="replace")
    frames = re.findall(r'<iframe[^>]*\ssrc="([^"]+)"', raw, flags=re.IGNORECASE)
    if frames:
        parts = []
        for src in frames:
            page = ref.parent / Path(src).name
            if page.is_file():
                parts.append(html_text(page.read_text(encoding="utf-8", errors="replace")))
        return "\n".join(parts)
    return html_text(raw)


def f1_scores(corpus: Path) -> dict[str, list[tuple[str, float]]]:
    hwpjs = corpus / "hwp" / "hwpjs"
    ref_dir = hwpjs / "reference_html"
    scores: dict[str, list[tuple[str, float]]] = {".hwp": [], ".hwpx": []}
    for doc in sorted(hwpjs.iterdir()):
        if doc.suffix.lower() not in scores:
            continue
        ref = reference_for(doc, ref_dir)
        if ref is None:
            continue
        reference = reference_text(ref)
        try:
            text = parse_file(doc).text
        except PipelineError:
            text = ""
        scores[doc.suffix.lower()].append((doc.name, bigram_f1(text, reference)))
    return scores


def parse_rate(corpus: Path) -> tuple[int, int, list[tuple[str, str]]]:
    flags = read_manifest(corpus)
    ok = total = blank = 0
    failures: list[tuple[str, str]] = []
    for doc in sorted((corpus / "hwp").rglob("*")):
        if not doc.is_file() or doc.suffix.lower() not in (".hwp", ".hwpx"):
            continue
        total += 1
        rel = doc.relative_to(corpus).as_posix()
        expected = flags.get(rel)
        try:
            parsed = parse_file(doc)
            good = expected is None and bool(parsed.text.strip())
            why = "" if good else f"parsed, but MANIFEST flags {expected}"
        except PasswordProtected as exc:
            good, why = expected == "PASSWORD", f"PasswordProtected: {exc.message}"
        except DistributionProtected as exc:
            good, why = expected == "DISTRIBUTION", f"DistributionProtected: {exc.message}"
        except NoText as exc:
            # A blank document parses to no text; it counts only when unhwp finds none either.
            good = expected is None and not _unhwp_has_text(doc)
            why = f"NoText: {exc.message} (unhwp finds text)"
            blank += good
        except PipelineError as exc:
            good, why = False, f"{type(exc).__name__}: {exc.message}"
        except Exception as exc:  # a crash is a failure to parse, reported  # noqa: BLE001 - library boundary
            good, why = False, f"crash {type(exc).__name__}: {exc}"
        ok += good
        if not good:
            failures.append((rel, why))
    return ok, total, failures, blank


def _unhwp_has_text(path: Path) -> bool:
    import unhwp

    try:
        return any(ch.isalnum() for ch in unhwp.extract_text(str(path)))
    except Exception:  # noqa: BLE001 - library boundary
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the shared corpus folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--per-file", action="store_true", help="list every file's F1")
    args = parser.parse_args(argv)
    corpus: Path = args.corpus
    if not (corpus / "hwp" / "hwpjs" / "reference_html").is_dir():
        print(
            f"error: {corpus} has no hwp/hwpjs/reference_html; pass --corpus ../shared/corpus",
            file=sys.stderr,
        )
        return 2

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=args.json)
    started = time.perf_counter()
    scores = f1_scores(corpus)
    ok, total, failures, blank = parse_rate(corpus)
    elapsed = time.perf_counter() - started

    table = Table(title="Parse quality vs Hancom HTML export (hwp/hwpjs)")
    table.add_column("format")
    table.add_column("documents", justify="right")
    table.add_column("mean bigram F1", justify="right")
    table.add_column("min F1", justify="right")
    result: dict = {"corpus": str(corpus), "f1": {}, "elapsed_s": round(elapsed, 2)}
    for fmt, rows in scores.items():
        values = [f1 for _, f1 in rows]
        mean = sum(values) / len(values) if values else 0.0
        worst = min(rows, key=lambda r: r[1]) if rows else ("", 0.0)
        table.add_row(fmt, str(len(values)), f"{mean:.4f}", f"{worst[1]:.3f} ({worst[0]})")
        result["f1"][fmt] = {"documents": len(values), "mean": round(mean, 4), "min": round(worst[1], 4)}
    console.print(table)
    if args.per_file:
        for fmt, rows in scores.items():
            for name, f1 in sorted(rows, key=lambda r: r[1]):
                console.print(f"  {f1:.3f}  {name}")
    rate = ok / total if total else 0.0
    console.print(
        f"HWP/HWPX parse rate: {ok}/{total} = {rate:.1%} ({blank} blank documents, confirmed by unhwp)"
    )
    for rel, why in failures:
        console.print(f"  [red]✗[/red] {rel}: {why}", markup=True, highlight=False)
    result["parse_rate"] = {
        "ok": ok,
        "total": total,
        "rate": round(rate, 4),
        "blank": blank,
        "failures": failures,
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
