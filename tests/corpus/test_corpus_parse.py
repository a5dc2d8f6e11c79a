"""Parsers over the real-world corpus (../shared/corpus or RAGCTL_CORPUS).

Skips with a reason where the corpus is absent, except under CI=true, where its absence fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from parse_quality import bigram_f1, read_manifest, reference_for, reference_text

from stack.pipeline.errors import (
    CorruptDocument,
    DistributionProtected,
    NoText,
    PasswordProtected,
    PipelineError,
)
from stack.pipeline.parsers import parse_file
from tests.support.suite import require_corpus

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus() -> Path:
    return require_corpus()


def _unhwp_has_text(path: Path) -> bool:
    import unhwp

    try:
        return any(ch.isalnum() for ch in unhwp.extract_text(str(path)))
    except Exception:  # noqa: BLE001 - library boundary
        return False


def test_every_hwp_parses_or_gives_its_specific_error(corpus):
    flags = read_manifest(corpus)
    problems = []
    files = sorted(p for p in (corpus / "hwp").rglob("*") if p.suffix.lower() in (".hwp", ".hwpx"))
    assert files
    for path in files:
        rel = path.relative_to(corpus).as_posix()
        expected = flags.get(rel)
        try:
            doc = parse_file(path)
        except PasswordProtected:
            if expected != "PASSWORD":
                problems.append(f"{rel}: PasswordProtected, MANIFEST says {expected}")
            continue
        except DistributionProtected:
            if expected != "DISTRIBUTION":
                problems.append(f"{rel}: DistributionProtected, MANIFEST says {expected}")
            continue
        except NoText:
            # A blank document (feature samples with only shapes or images) may hold no text; but
            # then an independent extractor must find none either.
            if expected or _unhwp_has_text(path):
                problems.append(f"{rel}: NoText, but unhwp finds text (or MANIFEST says {expected})")
            continue
        except PipelineError as exc:
            problems.append(f"{rel}: {type(exc).__name__}: {exc.message}")
            continue
        if expected:
            problems.append(f"{rel}: parsed, but MANIFEST flags it {expected}")
        elif not doc.text.strip():
            problems.append(f"{rel}: empty text")
    assert not problems, "\n".join(problems)


def test_hwp_and_hwpx_versions_agree(corpus):
    hwpjs = corpus / "hwp" / "hwpjs"
    pairs = [
        (p, p.with_suffix(".hwpx")) for p in sorted(hwpjs.glob("*.hwp")) if p.with_suffix(".hwpx").exists()
    ]
    assert pairs
    worst = []
    for hwp, hwpx in pairs:
        try:
            a, b = parse_file(hwp).text, parse_file(hwpx).text
        except NoText:
            continue
        score = bigram_f1(a, b)
        if score < 0.98:
            worst.append(f"{hwp.name}: {score:.3f}")
    assert not worst, worst


def test_f1_against_hancom_html(corpus):
    hwpjs = corpus / "hwp" / "hwpjs"
    ref_dir = hwpjs / "reference_html"
    for suffix in (".hwp", ".hwpx"):
        scores = []
        for doc in sorted(hwpjs.glob(f"*{suffix}")):
            ref = reference_for(doc, ref_dir)
            if ref is None:
                continue
            try:
                text = parse_file(doc).text
            except PipelineError:
                text = ""
            scores.append(bigram_f1(text, reference_text(ref)))
        assert scores
        mean = sum(scores) / len(scores)
        assert mean > 0.9, f"{suffix}: mean bigram F1 {mean:.3f}"


def test_pdfs_parse_or_give_specific_errors(corpus):
    problems = []
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        try:
            doc = parse_file(path)
            assert all(b.page and b.page >= 1 for b in doc.blocks)
        except (PasswordProtected, NoText, CorruptDocument) as exc:
            assert exc.hint
            if "password" in path.name.lower() and not isinstance(exc, PasswordProtected):
                problems.append(f"{path.name}: {type(exc).__name__}, expected PasswordProtected")
        except Exception as exc:  # noqa: BLE001 - library boundary
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    no_text = corpus / "pdf" / "hwpjs_table_pdf_generated.pdf"
    if no_text.exists():
        with pytest.raises(NoText):
            parse_file(no_text)
    for path in (corpus / "pdf").glob("*password*.pdf"):
        with pytest.raises(PasswordProtected):
            parse_file(path)
    assert not problems, problems


def test_docx_parse(corpus):
    problems = []
    for path in sorted((corpus / "docx").glob("*.docx")):
        try:
            doc = parse_file(path)
            assert doc.format == "docx"
        except NoText:
            continue  # image-only documents (has_pict, having-images) hold no text
        except Exception as exc:  # noqa: BLE001 - library boundary
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    strict = corpus / "docx" / "docx2python__strict.docx"
    if strict.exists():
        assert "Cellaa" in parse_file(strict).text
    assert not problems, problems
