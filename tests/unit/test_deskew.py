"""Skew of scanned pages (stack/pipeline/deskew.py) on pages rendered here, turned by known angles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stack.pipeline.deskew import MIN_ANGLE, deskew, skew_angle
from stack.pipeline.ocr import missing, read_page
from tests.support import scans
from tests.support.suite import skip_or_fail

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))
from parse_quality import bigram_f1

TEXT = ("제3조(연차 휴가) 1년간 80퍼센트 이상 출근한 근로자에게는 15일의 유급휴가를 주어야 한다. "
        "사용자는 근로자가 청구한 시기에 휴가를 주어야 한다. Meals are limited to 50,000 won per person.")


@pytest.fixture(scope="module")
def page():
    if scans.font_missing():
        skip_or_fail(f"deskew tests render pages: {scans.font_missing()} (scripts/setup-test-host.sh)", "OCR")
    return scans.render_pages([TEXT] * 6)[0]


@pytest.mark.parametrize("angle", [3.0, -3.0, 1.2, -0.8])
def test_the_skew_of_a_turned_page_is_found_within_half_a_degree(page, angle):
    turned = page.rotate(angle, expand=True, fillcolor=255)
    assert abs(skew_angle(turned) - angle) <= 0.5
    degraded = scans.degrade(page, seed=3, angle=angle)  # blurred, speckled, JPEG 40 as well
    assert abs(skew_angle(degraded) - angle) <= 0.5


def test_a_straight_page_is_left_as_it_is_and_a_blank_one_cannot_be_measured(page):
    assert abs(skew_angle(page)) < MIN_ANGLE
    same, angle = deskew(page)
    assert same is page and angle == 0.0
    from PIL import Image

    assert skew_angle(Image.new("L", (2481, 3508), 255)) is None


def test_a_page_scanned_at_3_degrees_is_straightened_before_ocr(page):
    reason = missing("kor+eng")
    if reason:
        skip_or_fail(f"OCR tests need tesseract: {reason} (scripts/setup-test-host.sh)", "OCR")
    short = page.crop((0, 0, page.width, 900))
    read = read_page(short.rotate(3.0, expand=True, fillcolor=255), 1)
    assert abs(read.deskewed - 3.0) <= 0.5 and read.summary()["deskewed"] == read.deskewed
    first = " ".join(line.text for line in read.paragraphs[0])  # tesseract's own spacing, lines as read
    assert bigram_f1(TEXT.replace(" ", ""), first.replace(" ", "")) >= 0.9, first
