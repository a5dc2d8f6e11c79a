"""OCR quality without hand labels, and OCR throughput: the corpus's own text rendered as scans.

    python bench/ocr_quality.py --corpus ../shared/corpus [--json] [--compare] [--deskew]

Text from real HWP/HWPX documents of the corpus (parsed by the project's parser; Korean) and from
SQuAD paragraphs (English) is set on A4 pages in NanumMyeongjo (fonts-nanum), one page per
document, at 200 and 300 dpi, clean and degraded (a 1-3 degree skew, blur, speckle, JPEG quality
40; tests/support/scans.py), plus every clean 300 dpi page upside down.  Each page is saved as a
PNG and read through the pipeline's parser (``parse_file``: OSD, tesseract, line joining, Korean
spacing), and scored with bench/parse_quality.py's character-bigram F1 against the text it was
made from.

Throughput: pages per minute of one process reading pages one after another (a worker does the
same, one page at a time), and the share of that time spent in tesseract processes.

``--deskew`` reads each 300 dpi page, clean and degraded, twice: with the pipeline's deskew
(stack/pipeline/deskew.py) and without it, to show what straightening a slanted scan gains and that
it costs a straight page nothing.

``--compare`` also reads the clean 300 dpi Korean pages three other ways, for the choice of how to
call tesseract: tesseract with its default OpenMP threads; ``--psm 3`` instead of ``--psm 4``; and
ocrmypdf (when installed) on the same page as an image-only PDF with a text sidecar.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine
from parse_quality import bigram_f1

from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers import parse_file
from tests.support import scans

KOREAN_DOCUMENTS = [
    "hwp/python-hwpx/m2_corpus__public_official_table.hwpx",
    "hwp/python-hwpx/m3_gongmun_gold__mfds_admin_notice.hwpx",
    "hwp/rhwp/2010-01-06.hwp",
    "hwp/rhwp/20250130-hongbo_saved.hwp",
    "hwp/rhwp/basic__BookReview.hwp",
    "hwp/rhwp/basic__interview.hwp",
    "hwp/rhwp/basic__sungeo.hwp",
    "hwp/rhwp/k-water-rfp.hwp",
    "hwp/rhwp/kps-ai.hwp",
    "hwp/rhwp/hwpx__2024년 연간 해외직접투자 보도자료 _ ff.hwpx",
]
ENGLISH_DATASET = "eval/squad_v1.1_dev_a.json"
PAGE_CHARS = 900  # about one A4 page at 11 pt with room to spare


def _clip(text: str, limit: int = PAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit)]


def sources(corpus: Path, korean: int, english: int) -> list[tuple[str, str, str]]:
    """(name, language, text) per page: the running text of each Korean document, SQuAD paragraphs."""
    pages = []
    for relative in KOREAN_DOCUMENTS[:korean]:
        document = parse_file(corpus / relative)
        text = " ".join(b.text for b in document.blocks if b.kind in ("paragraph", "heading", "list"))
        pages.append((Path(relative).name, "ko", _clip(text)))
    data = json.loads((corpus / ENGLISH_DATASET).read_text(encoding="utf-8"))["data"]
    for article in data[:english]:
        pages.append((article["title"], "en", _clip(article["paragraphs"][0]["context"])))
    return pages


def variants(text: str, seed: int):
    """(variant name, dpi, page image) for one text."""
    for dpi in (300, 200):
        page = scans.render_pages([text], dpi=dpi)[0]
        yield f"{dpi} clean", dpi, page
        yield f"{dpi} degraded", dpi, scans.degrade(page, seed=seed)
        if dpi == 300:
            yield "300 upside down", dpi, scans.upside_down(page)


def read(image, dpi: int, folder: Path, *, deskew: bool = True) -> tuple[str, dict, float]:
    path = folder / "page.png"
    image.save(path, dpi=(dpi, dpi))
    started = time.perf_counter()
    document = parse_file(path, ocr=OcrOptions(deskew=deskew))
    return document.text, document.metadata["ocr"]["pages"][0], time.perf_counter() - started


def compare(pages: list[tuple[str, str, str]], folder: Path) -> dict:
    """The other ways to call tesseract, on the clean 300 dpi Korean pages: seconds and F1 per page."""
    ways: dict[str, list[tuple[float, float]]] = {"tesseract, OpenMP threads": [], "psm 3": [], "ocrmypdf": []}
    ocrmypdf = subprocess.run(["which", "ocrmypdf"], capture_output=True, check=False).returncode == 0
    for _, language, text in pages:
        if language != "ko":
            continue
        image = scans.render_pages([text])[0]
        png = folder / "cmp.png"
        image.save(png, dpi=(300, 300))
        for way, args, env in [("tesseract, OpenMP threads", ["--psm", "4"], {}),
                               ("psm 3", ["--psm", "3"], {"OMP_THREAD_LIMIT": "1"})]:
            started = time.perf_counter()
            out = subprocess.run(["tesseract", str(png), "stdout", "-l", "kor+eng", *args], capture_output=True,
                                 text=True, check=False, env={**os.environ, **env}).stdout
            ways[way].append((time.perf_counter() - started, bigram_f1(out, text)))
        if ocrmypdf:
            pdf = scans.save_scan([image], folder / "cmp.pdf")
            sidecar = folder / "cmp.txt"
            started = time.perf_counter()
            subprocess.run(["ocrmypdf", "-q", "-l", "kor+eng", "--rotate-pages", "--sidecar", str(sidecar),
                            str(pdf), str(folder / "cmp-out.pdf")], capture_output=True, check=False)
            seconds = time.perf_counter() - started
            ways["ocrmypdf"].append((seconds, bigram_f1(sidecar.read_text(encoding="utf-8"), text)
                                     if sidecar.exists() else 0.0))
    return {way: {"pages": len(rows), "median_seconds": round(statistics.median(r[0] for r in rows), 2),
                  "mean_f1": round(statistics.mean(r[1] for r in rows), 4)}
            for way, rows in ways.items() if rows}


def deskew_compare(pages: list[tuple[str, str, str]], folder: Path, quiet: bool) -> dict:
    """Bigram F1 of each 300 dpi page, clean and degraded, read without and with deskew."""
    rows: dict[str, dict[str, list[float]]] = {}
    angles = []
    for seed, (name, language, text) in enumerate(pages):
        page = scans.render_pages([text])[0]
        for variant, image in (("300 clean", page), ("300 degraded", scans.degrade(page, seed=seed))):
            for deskew in (False, True):
                got, info, wall = read(image, 300, folder, deskew=deskew)
                f1 = bigram_f1(got, text)
                rows.setdefault(variant, {}).setdefault("deskew" if deskew else "as scanned", []).append(f1)
                if deskew:
                    angles.append((variant, name, info["deskewed"]))
                if not quiet:
                    print(f"{variant:>14} {'deskew' if deskew else 'as is':>6} {language} {f1:.3f} {wall:5.1f}s "
                          f"skew {info['deskewed']} {name}", file=sys.stderr)
    return {"bigram_f1": {variant: {way: round(statistics.mean(v), 4) for way, v in ways.items()}
                          for variant, ways in rows.items()},
            "per_page": {variant: {way: [round(f, 3) for f in v] for way, v in ways.items()}
                         for variant, ways in rows.items()},
            "deskewed_degrees": angles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=os.environ.get("RAGCTL_CORPUS", "../shared/corpus"))
    parser.add_argument("--korean", type=int, default=len(KOREAN_DOCUMENTS),
                        help=f"Korean documents to render, in the listed order (default {len(KOREAN_DOCUMENTS)})")
    parser.add_argument("--english", type=int, default=3, help="SQuAD paragraphs to render (default 3)")
    parser.add_argument("--compare", action="store_true", help="also time other ways to call tesseract")
    parser.add_argument("--compare-only", action="store_true", help="only --compare (no quality pages)")
    parser.add_argument("--deskew", action="store_true", help="only 300 dpi pages, read without and with deskew")
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    missing = scans.font_missing()
    if missing:
        raise SystemExit(missing)
    pages = sources(corpus, args.korean, args.english)
    if args.deskew:
        with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
            result = deskew_compare(pages, Path(tmp), args.json)
        print(json.dumps(result | {"documents": [name for name, _, _ in pages], "machine": machine()},
                         ensure_ascii=False))
        return
    if args.compare_only:
        with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
            ours = []
            for _, language, text in pages:
                if language == "ko":
                    image = scans.render_pages([text])[0]
                    got, _, wall = read(image, 300, Path(tmp))
                    ours.append((wall, bigram_f1(got, text)))
            result = compare(pages, Path(tmp))
        result["this pipeline (OSD + psm 4, OMP_THREAD_LIMIT=1, spacing)"] = {
            "pages": len(ours), "median_seconds": round(statistics.median(r[0] for r in ours), 2),
            "mean_f1": round(statistics.mean(r[1] for r in ours), 4)}
        print(json.dumps({"compare": result, "machine": machine()}, ensure_ascii=False))
        return
    scores: dict[str, list[float]] = {}
    by_language: dict[str, list[float]] = {}
    turned = upside = 0
    seconds, in_tesseract, worst = [], [], []
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
        folder = Path(tmp)
        for seed, (name, language, text) in enumerate(pages):
            for variant, dpi, image in variants(text, seed):
                got, page, wall = read(image, dpi, folder)
                f1 = bigram_f1(got, text)
                scores.setdefault(variant, []).append(f1)
                by_language.setdefault(f"{variant} {language}", []).append(f1)
                seconds.append(wall)
                in_tesseract.append(page["tesseract_seconds"])
                if variant == "300 upside down":
                    upside += 1
                    turned += page["rotated"] == 180
                worst.append((round(f1, 3), variant, name))
                if not args.json:
                    print(f"{variant:>16} {language} {f1:.3f} {wall:5.1f}s conf {page['confidence']} {name}",
                          file=sys.stderr)
        comparison = compare(pages, folder) if args.compare else None
    result = {
        "bigram_f1": {variant: round(statistics.mean(values), 4) for variant, values in scores.items()},
        "bigram_f1_by_language": {key: round(statistics.mean(values), 4) for key, values in by_language.items()},
        "upside_down_turned": f"{turned}/{upside}",
        "pages": len(seconds),
        "seconds_per_page_median": round(statistics.median(seconds), 2),
        "pages_per_minute_one_process": round(60 / statistics.median(seconds), 1),
        "share_in_tesseract": round(sum(in_tesseract) / sum(seconds), 3),
        "worst": sorted(worst)[:5],
        "documents": [name for name, _, _ in pages],
        "machine": machine(),
    }
    if comparison:
        result["compare"] = comparison
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
