"""Search and ask: ranked passages, and answers with their sources."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from stack.api import schemas
from stack.api.deps import AuditDep, CallerDep, PipelineDep, SettingsDep, ask_auth, collection_of
from stack.api.errors import ERRORS
from stack.pipeline.answer import Answer
from stack.pipeline.questions import check_question
from stack.pipeline.service import Pipeline
from stack.settings import Settings

router = APIRouter(tags=["questions"], dependencies=ask_auth)


@router.post("/api/search", response_model=schemas.SearchResponse, responses=ERRORS)
def search(body: schemas.SearchRequest, pipeline: PipelineDep, settings: SettingsDep, audit: AuditDep,
           caller: CallerDep):
    """Ranked passages with scores and provenance (same JSON as ``ragctl search --json``)."""
    check_question(body.query, what="query")
    collection = collection_of(settings, body.collection, caller)
    audit.question(body.query, route="search", collection=collection)
    hits = pipeline.search(body.query, collection=collection, top_k=body.top_k, mode=body.mode)
    return {"query": body.query, "mode": body.mode,
            "hits": [{"rank": i, **h.to_dict()} for i, h in enumerate(hits, start=1)]}


@router.post("/api/ask", response_model=Answer, responses=ERRORS)
def ask(body: schemas.AskRequest, pipeline: PipelineDep, settings: SettingsDep, audit: AuditDep, caller: CallerDep):
    """An answer with sources [n] (same JSON as ``ragctl ask --json``); ``stream`` gives SSE with an LLM."""
    check_question(body.question)  # blank or over-long: 422 in the error envelope, as the CLI says it
    collection = collection_of(settings, body.collection, caller)
    audit.question(body.question, route="ask", collection=collection)
    if body.generation is not None:  # the gate asks a reindex's new index before it is swapped in
        from stack.pipeline.store import index_name

        pipeline = pipeline.pinned(collection, index_name(collection, body.generation))
    if body.stream and settings.llm_configured:
        return stream_answer(body, collection, pipeline, settings)
    return pipeline.ask(body.question, collection=collection, top_k=body.top_k).to_dict()


def stream_answer(body: schemas.AskRequest, collection: str, pipeline: Pipeline,
                  settings: Settings) -> StreamingResponse:
    """Server-sent events: ``sources``, then ``delta``s of the LLM's answer, then ``done`` (or ``error``)."""
    from stack.pipeline.answer import sources_from_hits, stream_llm_answer

    hits = pipeline.search(body.question, collection=collection, top_k=body.top_k)
    sources = sources_from_hits(hits)

    def events():
        yield f"event: sources\ndata: {json.dumps([s.__dict__ for s in sources], ensure_ascii=False)}\n\n"
        text = []
        try:
            for delta in stream_llm_answer(
                body.question, sources, api_key=settings.openai_api_key.get_secret_value(),
                model=settings.llm_model, base_url=settings.openai_base_url, timeout_s=settings.llm_timeout_s,
            ):
                text.append(delta)
                yield f"event: delta\ndata: {json.dumps(delta, ensure_ascii=False)}\n\n"
        except Exception as exc:  # noqa: BLE001 - the stream is open: report in-band
            yield f"event: error\ndata: {json.dumps(str(exc))}\n\n"
            return
        done = {"question": body.question, "answer": "".join(text), "mode": "llm",
                "sources": [s.__dict__ for s in sources], "model": settings.llm_model}
        yield f"event: done\ndata: {json.dumps(done, ensure_ascii=False)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
