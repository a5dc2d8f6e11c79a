import itertools

from stack.pipeline.chunk import chunk_document, split_sentences
from stack.pipeline.document import Block, ParsedDocument, table_block


def count_words(texts):
    """A stand-in tokenizer for chunk arithmetic: one token per whitespace word."""
    return [len(text.split()) for text in texts]


def doc(*blocks):
    return ParsedDocument(format="text", parser="test", blocks=list(blocks))


def test_split_sentences_korean_and_english():
    text = "연차 휴가는 15일입니다. 신청은 3일 전까지 해야 합니다! Backups run nightly. Are they kept?\n다음 줄"
    assert split_sentences(text) == [
        "연차 휴가는 15일입니다.", "신청은 3일 전까지 해야 합니다!", "Backups run nightly.", "Are they kept?", "다음 줄",
    ]


def test_chunks_respect_size_and_end_at_sentences():
    sentences = [f"sentence number {i} has six words." for i in range(40)]
    chunks = chunk_document(doc(Block(" ".join(sentences))), count_words, max_tokens=30, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(chunk.tokens <= 30 for chunk in chunks)
    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # Without overlap every sentence appears exactly once.
    assert sum(c.text.count("sentence number") for c in chunks) == 40


def test_overlap_repeats_the_last_sentences():
    sentences = [f"s{i} a b c d e." for i in range(20)]
    chunks = chunk_document(doc(Block(" ".join(sentences))), count_words, max_tokens=24, overlap_tokens=6)
    for previous, current in itertools.pairwise(chunks):
        assert previous.text.split("\n")[-1] == current.text.split("\n")[0]


def test_chunks_never_span_two_pages_and_keep_provenance():
    chunks = chunk_document(
        doc(Block("first page text.", page=1), Block("second page text.", page=2)), count_words, max_tokens=100
    )
    assert [(c.page, c.text) for c in chunks] == [(1, "first page text."), (2, "second page text.")]
    assert chunks[1].location() == "p. 2"


def test_long_sentence_is_cut_to_size():
    chunks = chunk_document(doc(Block(" ".join(["word"] * 95))), count_words, max_tokens=20, overlap_tokens=0)
    assert all(c.tokens <= 20 for c in chunks)
    assert sum(c.tokens for c in chunks) == 95


def test_table_rows_are_units():
    # Text over numbers: the first row is the header, and each cell is indexed with its two headings.
    table = table_block([["종류", "일수"], ["연차", "15일"], ["병가", "10일"]], section="section 1")
    chunks = chunk_document(doc(table), count_words, max_tokens=100)
    assert chunks[0].text == "종류 | 일수\n연차 · 일수: 15일\n병가 · 일수: 10일"
    assert chunks[0].section == "section 1"


def test_table_without_header_keeps_its_rows():
    table = table_block([["성명", "홍길동"], ["직위", "과장"]], section="section 1")
    chunks = chunk_document(doc(table), count_words, max_tokens=100)
    assert chunks[0].text == "성명 | 홍길동\n직위 | 과장"


def test_a_long_table_repeats_its_header_in_every_piece():
    rows = [["연도", "수입", "지출"]] + [[f"{2000 + i}년", f"{i * 10:,}", f"{i * 7:,}"] for i in range(1, 31)]
    before = Block("앞 문단입니다.", section="section 1")
    table = table_block(rows, section="section 1", heading="재정 현황")
    after = Block("뒤 문단입니다.", section="section 1")
    chunks = chunk_document(doc(before, table, after), count_words, max_tokens=40, overlap_tokens=8)
    pieces = [c for c in chunks if c.heading == "재정 현황"]
    assert len(pieces) > 2
    for piece in pieces:
        lines = piece.text.split("\n")
        assert lines[0] == "연도 | 수입 | 지출"  # the header, once, first
        assert all(" · " in line for line in lines[1:])
        assert piece.tokens <= 40
        # a row is never cut from its cells: both of a row's cells are in the same piece
        years = {line.split(" · ")[0] for line in lines[1:]}
        assert all(sum(line.startswith(f"{year} · ") for line in lines) == 2 for year in years)
    text = "\n".join(piece.text for piece in pieces)
    assert all(f"{2000 + i}년 · 수입: {i * 10:,}" in text for i in range(1, 31))
    # the table is chunked apart from the prose around it, with no overlap into it
    assert all("문단" not in piece.text for piece in pieces)
    assert chunks[0].text == "앞 문단입니다." and chunks[-1].text == "뒤 문단입니다."


def test_a_table_that_fits_is_one_chunk():
    rows = [["연도", "수입"]] + [[f"{2000 + i}년", f"{i * 10:,}"] for i in range(1, 4)]
    chunks = chunk_document(doc(table_block(rows, heading="표 1 수입")), count_words, max_tokens=200)
    assert len(chunks) == 1 and chunks[0].heading == "표 1 수입"


def test_overlap_must_be_smaller_than_size():
    import pytest

    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc(Block("a.")), count_words, max_tokens=10, overlap_tokens=10)
