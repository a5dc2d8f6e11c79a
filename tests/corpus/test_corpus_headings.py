"""Heading paths and generated outline numbers on real documents (../shared/corpus or RAGCTL_CORPUS).

Skips with a reason where the corpus is absent, except under CI=true, where its absence fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from parse_quality import bigram_f1, reference_text

from stack.pipeline.chunk import chunk_document
from stack.pipeline.parsers import parse_file
from tests.support.suite import require_corpus

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus() -> Path:
    return require_corpus()


@pytest.mark.parametrize("name", ["outline.hwp", "outline.hwpx"])
def test_outline_numbers_match_hancom(corpus, name):
    """Hancom draws 개요 numbers that are not in the text: 1. 가. 1) 가) (1) (가) ①, levels restarting."""
    doc = parse_file(corpus / "hwp" / "hwpjs" / name)
    texts = [b.text for b in doc.blocks]
    assert texts[:11] == [
        "1. 개요 1", "가. 개요2", "1) 개요3", "가) 개요4", "(1) 개요 5", "(2) 개요 5-2",
        "나. 개요2-2", "(가) 개요 6", "(나) 개요 6-2", "① 개요7", "② 개요7-2",
    ]
    assert texts[-1] == "2. 개요 1-2"
    assert doc.blocks[6].heading == "1. 개요 1 > 나. 개요2-2"
    reference = reference_text(corpus / "hwp" / "hwpjs" / "reference_html" / "outline.HTML")
    assert bigram_f1(doc.text, reference) > 0.99


def test_paragraph_numbers_match_hwpxlib_expected_text(corpus):
    """hwpxlib's own expected extraction of ParaHead.hwpx (numbers 1. 3.1. 4.1.1.1., outline 가. 1))."""
    doc = parse_file(corpus / "hwp" / "hwpxlib" / "tool__textextractor__ParaHead.hwpx")
    texts = [b.text for b in doc.blocks]
    for expected in ["1. 번호1", "3.1. 번호3-1", "4.1.1.1. 번호-4-1-1-1", "4.1.2. 번호-4-1-2",
                     "4.1.2.1. 번호-4-1-2-1", "다. 개요1-3", "1) 개요2-1-1"]:
        assert expected in texts


def test_real_agreement_cites_its_articles(corpus):
    """A real 공동수급협정서 (rhwp/kps-ai.hwp): 제N조(title) and its 항 ① and 호 1. give the path."""
    doc = parse_file(corpus / "hwp" / "rhwp" / "kps-ai.hwp")
    by_start = {b.text[:12]: b for b in doc.blocks}
    third = next(b for b in doc.blocks if b.text.startswith("제3조(공동수급체의 구성원)"))
    assert third.heading.endswith("제3조(공동수급체의 구성원) > ①")
    second = next(b for b in doc.blocks if b.text.startswith("②공동수급체의 대표자는"))
    assert second.heading.endswith("제3조(공동수급체의 구성원) > ②")
    item = next(b for b in doc.blocks if b.text.startswith("1. 발주자 및 구성원 전원이"))
    assert item.heading.endswith("제12조(중도탈퇴에 대한 조치) > ① > 1.")
    assert by_start  # the document parsed into blocks
    # Chunks cite one article each: never two 조 in one chunk.
    for chunk in chunk_document(doc, lambda texts: [len(t.split()) for t in texts], max_tokens=200, overlap_tokens=0):
        assert len(set(re.findall(r"^제\d+조\(", chunk.text, flags=re.MULTILINE))) <= 1, chunk.text[:200]


def test_press_release_tables_cite_their_titles(corpus):
    """보도자료: "< 업종별 동향(억 달러, %) >" titles the table under it; the "별첨" title box opens an
    appendix, "1. 분기별 동향" and "□" lines headings under it; the HWP and the HWPX of the same
    release give the same paths."""
    name = "hwpx__2024년 1분기 해외직접투자 보도자료 ff"
    hwpx = parse_file(corpus / "hwp" / "rhwp" / f"{name}.hwpx")
    hwp = parse_file(corpus / "hwp" / "rhwp" / f"{name}.hwp")
    table = next(b for b in hwpx.blocks if b.kind == "table" and "금융보험업" in b.text)
    assert table.heading == "업종별 동향(억 달러, %)"
    appendix = "별첨 ’24.1분기 해외직접투자 세부 통계"
    assert any(b.heading == f"{appendix} > 1. 분기별 동향 > □ 업종별 동향(상위 5개)" for b in hwpx.blocks)
    assert [b.heading for b in hwp.blocks] == [b.heading for b in hwpx.blocks]
