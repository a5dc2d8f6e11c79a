"""Make the sample documents ragctl ships in samples/ (original content, written for ragctl).

    python scripts/make_samples.py          # rewrites the files in samples/

Facts in the samples (README questions are written against these):

휴가_규정.hwpx (Korean, HWPX made with python-hwpx) — 주식회사 한빛소프트 휴가 규정, written as a
regulation (제1장 총칙 / 제2장 휴가, 제1조–제4조 with 항 ①②③, 부칙) so citations carry a heading path
("제1장 총칙 > 제1조(목적)", "제2장 휴가 > 제2조(연차 휴가) > ①")
  - 제2조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다. ② 3년 이상 근속하면 2년마다 1일씩
    더해지며 최대 25일이다.
  - 제3조(신청 절차) ① 연차 휴가는 사용 예정일 3일 전까지 그룹웨어로 신청하고 팀장이 승인한다.
    ② 5일 이상 연속 휴가는 2주 전까지 신청한다. ③ 쓰지 못한 연차는 다음 해 3월 31일까지 이월된다.
  - 제4조(휴가의 종류), 표 1. 휴가의 종류와 일수 (the table's caption): 연차 휴가 15일 유급 / 병가 연 10일 유급, 3일 이상이면
    진단서 / 경조 휴가 본인 결혼 5일 / 출산 전후 휴가 90일 / 배우자 출산 휴가 10일.
  - Korean question: "연차 휴가는 며칠인가요?" → 15일 (신청: 3일 전까지 그룹웨어).

backup-procedure.pdf (English, 2 pages, reportlab) — Server Backup Procedure
  - Page 1: nightly full backups run at 02:00 (server local time) to the NAS "vault-01";
    backups are kept for 30 days (30-day retention), then deleted automatically.
  - Page 2: a restore test is performed monthly, on the first Monday of each month, by the on-call
    engineer; results are logged in the ops wiki. Off-site copy weekly on Sunday at 04:00.
  - English question: "What time do nightly backups run?" → 02:00; "How long are backups kept?" → 30 days.

expense-policy.docx (English, python-docx) — Expense Policy, header "Acme Corp — Internal"
  - Receipts are required for any expense over $25. Claims must be filed within 30 days.
  - Table: Meals $50 per day / Hotel $180 per night / Taxi $40 per trip.

deployment-notes.md (Korean + English) — 배포 노트
  - 배포는 매주 화요일 오후 3시 (Tuesday 15:00 KST); rollback with `ragctl down` then the previous tag.
  - Staging must pass smoke tests before production; 배포 동결 기간: 12월 20일–1월 3일.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "samples"


def make_hwpx(path: Path) -> None:
    """A regulation as Korean companies write them: 장, 조 with titles, 항 ①②, a table and 부칙.

    Plain paragraphs only (python-hwpx's add_heading makes 개요 paragraphs that Hancom would number
    "1.", "2." in front of "제1조", and the paragraphs added after one inherit its numbering).
    """
    from hwpx import HwpxDocument

    doc = HwpxDocument.new()
    doc.paragraphs[0].text = "주식회사 한빛소프트 휴가 규정"
    for text in (
        "제1장 총칙",
        "제1조(목적) 이 규정은 주식회사 한빛소프트 직원의 휴가에 관한 사항을 정함을 목적으로 한다.",
        "제2장 휴가",
        "제2조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다.",
        "② 3년 이상 근속하면 2년마다 1일씩 더해지며, 최대 25일까지 받을 수 있다.",
        "제3조(신청 절차) ① 연차 휴가는 사용 예정일 3일 전까지 그룹웨어로 신청하고, 팀장이 승인한다.",
        "② 5일 이상 연속 휴가는 2주 전까지 신청한다.",
        "③ 쓰지 못한 연차는 다음 해 3월 31일까지 이월된다.",
        "제4조(휴가의 종류) 휴가의 종류와 일수는 다음 표와 같다.",
    ):
        doc.add_paragraph(text)
    rows = [
        ("휴가 종류", "일수", "비고"),
        ("연차 휴가", "15일", "유급"),
        ("병가", "연 10일", "유급, 3일 이상이면 진단서 제출"),
        ("경조 휴가", "본인 결혼 5일", "유급"),
        ("출산 전후 휴가", "90일", "근로기준법에 따름"),
        ("배우자 출산 휴가", "10일", "유급"),
    ]
    table = doc.add_table(len(rows), len(rows[0]))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.set_cell_text(r, c, text)
    table.set_caption("표 1. 휴가의 종류와 일수")
    doc.add_paragraph("부칙")
    doc.add_paragraph("이 규정은 2025년 1월 1일부터 시행한다.")
    doc.save_to_path(str(path))


def make_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story = [
        Paragraph("Server Backup Procedure", styles["Title"]),
        Paragraph("1. Nightly backups", styles["Heading2"]),
        Paragraph(
            "Nightly full backups of every production server run at 02:00 (server local time). The backup "
            "job copies the database dumps and the document store to the NAS named vault-01 and verifies "
            "each archive with its SHA-256 checksum.",
            styles["BodyText"],
        ),
        Spacer(1, 12),
        Paragraph("2. Retention", styles["Heading2"]),
        Paragraph(
            "Backups are kept for 30 days (30-day retention). Archives older than 30 days are deleted "
            "automatically by the cleanup job that runs after the nightly backup.",
            styles["BodyText"],
        ),
        PageBreak(),
        Paragraph("3. Restore test", styles["Heading2"]),
        Paragraph(
            "A restore test is performed monthly, on the first Monday of each month, by the on-call "
            "engineer. The engineer restores the latest backup to the staging server and records the "
            "result in the operations wiki.",
            styles["BodyText"],
        ),
        Spacer(1, 12),
        Paragraph("4. Off-site copy", styles["Heading2"]),
        Paragraph(
            "Every Sunday at 04:00 the newest backup is copied off-site to the second data centre.",
            styles["BodyText"],
        ),
    ]
    doc = SimpleDocTemplate(str(path), pagesize=A4, title="Server Backup Procedure", author="ragctl samples")
    doc.build(story)


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Acme Corp — Internal"
    document.sections[0].footer.paragraphs[0].text = "Expense Policy v1.0"
    document.add_heading("Expense Policy", level=1)
    document.add_paragraph(
        "Receipts are required for any expense over $25. Expense claims must be filed within 30 days of "
        "the purchase through the finance portal."
    )
    document.add_heading("Daily limits", level=2)
    table = document.add_table(rows=4, cols=2)
    for r, (kind, limit) in enumerate(
        [
            ("Expense", "Limit"),
            ("Meals", "$50 per day"),
            ("Hotel", "$180 per night"),
            ("Taxi", "$40 per trip"),
        ]
    ):
        table.cell(r, 0).text = kind
        table.cell(r, 1).text = limit
    document.add_paragraph("Alcohol and personal entertainment are never reimbursed.")
    document.core_properties.title = "Expense Policy"
    document.save(str(path))


MARKDOWN = """# 배포 노트 (Deployment notes)

배포는 매주 화요일 오후 3시에 진행합니다 (deployments happen every Tuesday at 15:00 KST).

## 절차 (Procedure)

1. Staging must pass the smoke tests before anything goes to production.
2. `ragctl up` 으로 새 버전을 올리고, `ragctl status` 로 상태를 확인합니다.
3. Rollback: run `ragctl down`, then start the previous image tag.

## 배포 동결 기간 (Freeze)

| 기간 | 설명 |
|---|---|
| 12월 20일 – 1월 3일 | 연말 배포 동결 (year-end freeze) |
| 분기 마지막 주 | hotfix only |
"""


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_hwpx(out / "휴가_규정.hwpx")
    make_pdf(out / "backup-procedure.pdf")
    make_docx(out / "expense-policy.docx")
    (out / "deployment-notes.md").write_text(MARKDOWN, encoding="utf-8")
    for name in ("휴가_규정.hwpx", "backup-procedure.pdf", "expense-policy.docx", "deployment-notes.md"):
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
