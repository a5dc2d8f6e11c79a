"""Answers with citations: an LLM through the openai SDK, or an extractive answer without one.

Sources are numbered [1]..[n] in retrieval order; both modes cite them the same way, and
``Answer.sources`` maps each number to its file, page or section, chunk id, score and text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from stack.pipeline.chunk import split_sentences
from stack.pipeline.errors import PipelineError
from stack.pipeline.lexical import tokenize_many
from stack.pipeline.retrieve import Hit, is_korean

EXTRACTIVE_LABEL_EN = "Extractive answer (no LLM configured): the most relevant passages, quoted."
EXTRACTIVE_LABEL_KO = "추출형 답변 (LLM 미설정): 가장 관련 있는 문장을 그대로 인용합니다."
NO_SOURCES_EN = "No passage in the indexed documents matches this question."
NO_SOURCES_KO = "색인된 문서에서 이 질문과 관련된 내용을 찾지 못했습니다."

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources provided. Cite every claim with the "
    "source number in square brackets, like [1] or [2][3]. If the sources do not contain the "
    "answer, say so. Answer in the language of the question."
)


@dataclass
class Source:
    n: int
    file: str
    location: str
    page: int | None
    section: str | None
    document_id: str
    chunk_id: str
    score: float
    text: str


@dataclass
class Answer:
    question: str
    answer: str
    mode: Literal["llm", "extractive"]
    sources: list[Source] = field(default_factory=list)
    model: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def sources_from_hits(hits: Sequence[Hit]) -> list[Source]:
    return [
        Source(
            n=i,
            file=hit.metadata.get("file_name", ""),
            location=hit.location,
            page=hit.metadata.get("page"),
            section=hit.metadata.get("section"),
            document_id=hit.document_id,
            chunk_id=hit.chunk_id,
            score=round(hit.score, 6),
            text=hit.text,
        )
        for i, hit in enumerate(hits, start=1)
    ]


def extractive_answer(question: str, hits: Sequence[Hit], *, max_sentences: int = 3) -> Answer:
    """The sentences of the retrieved passages that share the most content words with the question."""
    sources = sources_from_hits(hits)
    korean = is_korean(question)
    if not sources:
        return Answer(question, NO_SOURCES_KO if korean else NO_SOURCES_EN, "extractive", [])
    candidates = [(source.n, sentence) for source in sources for sentence in split_sentences(source.text)]
    token_lists = tokenize_many([question] + [sentence for _, sentence in candidates])
    question_terms = set(token_lists[0])
    scored = []
    for order, ((n, sentence), terms) in enumerate(zip(candidates, token_lists[1:], strict=True)):
        overlap = len(question_terms & set(terms))
        # Earlier sources rank higher on ties: retrieval already ordered them.
        scored.append((overlap, -n, -order, n, sentence))
    scored.sort(reverse=True)
    best = scored[0][0]
    # Keep sentences that carry at least half the best overlap: a bare heading sharing one word
    # with the question should not stand beside the sentence that answers it.
    chosen = [item for item in scored if item[0] * 2 > best][:max_sentences] or scored[:1]
    chosen.sort(key=lambda item: (-item[1], -item[2]))  # back to reading order
    body = "\n".join(f"{sentence} [{n}]" for *_, n, sentence in chosen)
    label = EXTRACTIVE_LABEL_KO if korean else EXTRACTIVE_LABEL_EN
    return Answer(question, f"{label}\n{body}", "extractive", sources)


def build_messages(question: str, sources: Sequence[Source]) -> list[dict[str, str]]:
    context = "\n\n".join(
        f"[{source.n}] {source.file}{', ' + source.location if source.location else ''}\n{source.text}"
        for source in sources
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Sources:\n{context}\n\nQuestion: {question}"},
    ]


def _client(api_key: str, base_url: str | None, timeout_s: float):
    from openai import OpenAI

    return OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=2)


def llm_answer(
    question: str,
    hits: Sequence[Hit],
    *,
    api_key: str,
    model: str,
    base_url: str | None = None,
    timeout_s: float = 60.0,
) -> Answer:
    sources = sources_from_hits(hits)
    if not sources:
        return Answer(question, NO_SOURCES_KO if is_korean(question) else NO_SOURCES_EN, "llm", [], model)
    import openai

    try:
        response = _client(api_key, base_url, timeout_s).chat.completions.create(
            model=model, messages=build_messages(question, sources), temperature=0
        )
    except openai.APIError as exc:
        raise PipelineError(
            f"The LLM at {base_url or 'api.openai.com'} failed: {exc}",
            hint="Check OPENAI_API_KEY, OPENAI_BASE_URL and RAG_LLM_MODEL, or unset OPENAI_API_KEY "
            "for extractive answers",
        ) from exc
    return Answer(question, response.choices[0].message.content or "", "llm", sources, model)


def stream_llm_answer(
    question: str,
    sources: Sequence[Source],
    *,
    api_key: str,
    model: str,
    base_url: str | None = None,
    timeout_s: float = 60.0,
) -> Iterator[str]:
    """Text deltas of the LLM's answer, as they arrive."""
    stream = _client(api_key, base_url, timeout_s).chat.completions.create(
        model=model, messages=build_messages(question, sources), temperature=0, stream=True
    )
    for event in stream:
        if event.choices and event.choices[0].delta.content:
            yield event.choices[0].delta.content
