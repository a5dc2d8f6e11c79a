"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Chat front-ends (Open WebUI, LibreChat, Chatbox, IDE plugins) and every OpenAI SDK speak this
interface; pointed at ``<api>/v1`` with the stack's API key they ask the documents.  Each collection
the key may see is a model, ``ragctl/<collection>``, and ``ragctl`` is the default collection (the
key's own default when it is scoped); the older spelling ``ragctl:<collection>`` is still accepted.  A chat completion answers the last user message through
``Pipeline.ask`` (an LLM when one is configured, else the extractive answer, labelled), with its
``[n]`` citations, a "Sources" list appended to the text (most clients show no extra fields), and
the structured sources in the extension field ``ragctl``.  Errors on these routes are in OpenAI's
shape, ``{"error": {"message", "type", "param", "code"}}``; the rest of the API keeps its envelope.
docs/api.md describes it all.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from stack.api.deps import AuditDep, Caller, CallerDep, PipelineDep, SettingsDep, ask_auth
from stack.api.errors import headers_of, status_of
from stack.pipeline.answer import Answer
from stack.pipeline.errors import PipelineError
from stack.pipeline.questions import MAX_QUESTION_CHARS, InvalidQuestion, check_question
from stack.pipeline.retrieve import is_korean
from stack.pipeline.service import Pipeline
from stack.settings import Settings

log = logging.getLogger("stack.api")

#: A model id is this prefix and a collection name: ``ragctl/hr``; plain ``ragctl`` is the default collection.
MODEL_PREFIX = "ragctl/"
#: The spelling of ragctl before issue #26, still accepted in requests: ``ragctl:hr``.
OLD_MODEL_PREFIX = "ragctl:"
OWNED_BY = "ragctl"


# -- errors in OpenAI's shape ---------------------------------------------------------------------
def openai_error(status: int, message: str, *, code: str | None = None, param: str | None = None,
                 kind: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": {"message", "type", "param", "code"}}``, as api.openai.com answers."""
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    parts = []
    for error in errors[:5]:
        field = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return openai_error(400, f"Invalid request: {'; '.join(parts) or 'the body does not match the schema'}.",
                        code="invalid_request", param=param)


def _pipeline_error(exc: PipelineError) -> JSONResponse:
    if isinstance(exc, InvalidQuestion):  # the CLI's hint ("ragctl ask ...") would not help a chat client
        return openai_error(400, f"{exc.message} (the last user message is the question)", code=exc.code,
                            param="messages")
    if isinstance(exc, ModelNotFound):
        return openai_error(404, exc.message, code=exc.code, param="model")
    message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    status = status_of(exc)
    if status == 401:
        return openai_error(401, "Incorrect or missing API key: send 'Authorization: Bearer <RAG_API_KEY>' "
                            "(the key is in the project's .env).", code="invalid_api_key")
    if status == 403:
        return openai_error(403, message, code=exc.code, kind="permission_error")
    if status == 429:  # too many failed authentications from this address
        return openai_error(429, message, code="rate_limit_exceeded", kind="requests",
                            headers=headers_of(exc))
    if status == 422:  # a pipeline error of no particular kind (an LLM that failed, say): not the client's
        status = 500
    return openai_error(status, message, code=exc.code)


class OpenAIRoute(APIRoute):
    """A route whose every error (the key check, the body's schema, the pipeline) is answered in
    OpenAI's error shape rather than ragctl's envelope: the SDKs turn these into their exceptions."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except PipelineError as exc:
                return _pipeline_error(exc)
            except StarletteHTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), code=f"http_{exc.status_code}")
            except Exception as exc:  # the client gets OpenAI's shape; the log gets the traceback
                log.exception("unhandled error in %s %s", request.method, request.url.path)
                return openai_error(500, f"Internal error: {type(exc).__name__}: {exc}"[:500], code="internal_error")

        return route


router = APIRouter(tags=["openai"], dependencies=ask_auth, route_class=OpenAIRoute)


# -- request and response bodies ------------------------------------------------------------------
class ContentPart(BaseModel):
    """One part of a message's content; only ``text`` parts are read (images and the like are ignored)."""

    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(description="system, developer, user, assistant or tool; only user messages are read")
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completion request.  The usual optional fields (temperature, max_tokens, top_p,
    n, stop, user, tools, …) are accepted and ignored: the answer comes from the documents."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="ragctl:<collection>, as GET /v1/models lists", examples=["ragctl:default"])
    messages: list[ChatMessage] = Field(min_length=1, description="the last user message is the question",
                                        examples=[[{"role": "user", "content": "연차 휴가는 며칠인가요?"}]])
    stream: bool | None = False
    stream_options: dict[str, Any] | None = Field(
        default=None, description="{\"include_usage\": true} adds a last chunk with the usage and no choices")


def text_of(message: ChatMessage) -> str:
    """A message's text: its string content, or its text parts joined by newlines."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content if part.type == "text" and part.text)


# -- models ---------------------------------------------------------------------------------------
def collections(pipeline: Pipeline, settings: Settings, caller: Caller | None = None) -> dict[str, int]:
    """The collections the caller may see that exist (recorded, holding documents, or the default),
    with when each was made (0 when unknown)."""
    from stack.pipeline.catalog import DELETING

    known = {}
    for info in pipeline.collections(models=False):
        if info.state != DELETING and (caller is None or caller.sees(info.name)):
            known[info.name] = int(info.created_at or 0)
    if caller is not None and caller.collections is not None:
        for name in caller.collections:  # a collection named in the key's scope is its to fill
            known.setdefault(name, 0)
    return known


def collection_of_model(model: str, pipeline: Pipeline, settings: Settings, caller: Caller | None = None) -> str:
    """The collection a model id names; 404 (``model_not_found``) for any other id, and for a
    collection the caller may not see (the same answer)."""
    name = model.strip()
    if name == OWNED_BY:  # plain "ragctl": the default collection (the key's own default)
        return caller.default_collection(settings) if caller is not None else settings.collection
    for prefix in (MODEL_PREFIX, OLD_MODEL_PREFIX):
        if name.startswith(prefix) and name[len(prefix):] in collections(pipeline, settings, caller):
            return name[len(prefix):]
    raise ModelNotFound(f"The model '{model}' does not exist: ragctl's models are 'ragctl' (the default "
                        "collection) and ragctl/<collection>, one per collection (GET /v1/models lists them).")


class ModelNotFound(PipelineError):
    code = "model_not_found"
    http_status = 404


def model_entry(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNED_BY}


@router.get("/v1/models", summary="List models (one per collection the key may see)")
def list_models(pipeline: PipelineDep, settings: SettingsDep, caller: CallerDep) -> dict:
    """``{"object": "list", "data": [{"id": "ragctl" | "ragctl/<collection>", "object": "model", "created",
    "owned_by"}]}``: ``ragctl`` (the default collection), then one per collection the key may see."""
    known = collections(pipeline, settings, caller)
    default = caller.default_collection(settings)
    return {"object": "list", "data": [model_entry(OWNED_BY, known.get(default, 0))] + [
        model_entry(f"{MODEL_PREFIX}{name}", created) for name, created in sorted(known.items())]}


@router.get("/v1/models/{model:path}", summary="One model")
def get_model(model: str, pipeline: PipelineDep, settings: SettingsDep, caller: CallerDep) -> dict:
    collection = collection_of_model(model, pipeline, settings, caller)
    created = collections(pipeline, settings, caller).get(collection, 0)
    return model_entry(model.strip() if model.strip() == OWNED_BY else f"{MODEL_PREFIX}{collection}", created)


# -- the question a conversation asks -------------------------------------------------------------
#: A follow-up this short (characters, spaces not counted) is read with the question before it.
SHORT_FOLLOW_UP_CHARS = 12
#: Words that open a follow-up pointing back at the previous question ("그럼 병가는?", "What about sick leave?").
_REFERS_BACK = re.compile(
    r"^\s*(?:그럼|그러면|그런데|그건|그것|그거|그게|이건|이것|이거|저건|그|이|저|그리고|또|또한|그때|그 경우|"
    r"what about|how about|and|also|then|so|it|its|that|this|those|these|they|them|what else)(?:\b|\s|$)",
    re.IGNORECASE,
)


def retrieval_query(messages: list[ChatMessage]) -> tuple[str, str]:
    """The question (the last user message) and the query the documents are asked.

    Earlier turns are context by one rule: when the last question is short (under
    ``SHORT_FOLLOW_UP_CHARS`` characters besides spaces) or opens with a word that points back
    ("그럼", "그건", "what about", "it", …), the previous user question is put before it, so "그럼
    병가는?" after "연차 휴가는 며칠인가요?" searches for both.  Otherwise the last question alone.
    System and assistant messages are never part of the query."""
    user_turns = [text_of(m) for m in messages if m.role == "user"]
    if not user_turns:
        raise InvalidQuestion("no_user_message", "messages hold no user message")
    question = user_turns[-1]
    check_question(question)  # blank or over-long: 400 with empty_question / question_too_long
    query = question.strip()
    earlier = [turn.strip() for turn in user_turns[:-1] if turn.strip()]
    if earlier:
        short = len("".join(query.split())) < SHORT_FOLLOW_UP_CHARS
        if short or _REFERS_BACK.match(query):
            combined = f"{earlier[-1]}\n{query}"
            if len(combined) <= MAX_QUESTION_CHARS:
                query = combined
    return question, query


# -- the answer as OpenAI's objects ---------------------------------------------------------------
_CITED = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    return sorted({int(n) for match in _CITED.finditer(text) for n in match.group(1).split(",")})


def content_of(answer: Answer, question: str) -> str:
    """The answer's text with a "Sources" list after it: the cited sources (all of them when none
    is cited), one line each, ``[n] file, location``."""
    cited = set(cited_numbers(answer.answer))
    listed = [s for s in answer.sources if s.n in cited] or answer.sources
    if not listed:
        return answer.answer
    heading = "출처" if is_korean(question) else "Sources"
    lines = [f"[{s.n}] {s.file}{', ' + s.location if s.location else ''}" for s in listed]
    return f"{answer.answer.rstrip()}\n\n{heading}:\n" + "\n".join(lines)


def extension_of(answer: Answer, collection: str, query: str) -> dict:
    """The ``ragctl`` extension field: what the client's text shows, as data."""
    return {
        "collection": collection,
        "mode": answer.mode,
        "llm_model": answer.model,
        "query": query,
        "sources": [
            {"n": s.n, "file": s.file, "page": s.page, "section": s.section, "location": s.location,
             "heading": s.heading, "document_id": s.document_id, "chunk_id": s.chunk_id, "score": s.score,
             "text": s.text}
            for s in answer.sources
        ],
        "invalid_citations": answer.invalid_citations,
    }


_TOKEN = re.compile(r"\w+|[^\w\s]")


def approx_tokens(text: str) -> int:
    """A rough token count (words and punctuation marks), not any tokenizer's: ragctl's answers
    are not priced, and clients only display the number."""
    return len(_TOKEN.findall(text))


def usage_of(messages: list[ChatMessage], content: str) -> dict[str, int]:
    prompt = sum(approx_tokens(text_of(m)) for m in messages)
    completion = approx_tokens(content)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def pieces(text: str) -> list[str]:
    """The text in word-sized pieces that join back to it exactly (each piece ends with its spaces)."""
    return [part for part in re.split(r"(?<=\s)(?=\S)", text) if part]


def sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


@router.post("/v1/chat/completions", summary="Ask (OpenAI chat completions; streamed or not)")
def chat_completions(body: ChatCompletionRequest, pipeline: PipelineDep, settings: SettingsDep, audit: AuditDep,
                     caller: CallerDep):
    """The last user message is the question; the collection is the model's.  Answers with a
    ``chat.completion`` (or, with ``stream``, ``chat.completion.chunk`` server-sent events and
    ``[DONE]``) carrying the ``ragctl`` extension field."""
    collection = collection_of_model(body.model, pipeline, settings, caller)
    question, query = retrieval_query(body.messages)
    audit.question(question, route="chat.completions", collection=collection)
    # A sync route: FastAPI runs it in its thread pool, off the event loop, as /api/ask.
    answer = pipeline.ask(query, collection=collection)
    content = content_of(answer, question)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    extension = extension_of(answer, collection, query)
    usage = usage_of(body.messages, content)
    if not body.stream:
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []}}],
            "usage": usage,
            "ragctl": extension,
        }
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(
        stream_chunks(completion_id, created, body.model, content, extension, usage if include_usage else None),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # Nginx: pass each event at once
    )


def stream_chunks(completion_id: str, created: int, model: str, content: str, extension: dict,
                  usage: dict | None) -> Iterator[str]:
    """The answer as ``chat.completion.chunk`` events: the role, the text in pieces, then an empty
    delta with ``finish_reason: "stop"`` and the ``ragctl`` field; with ``include_usage`` a last
    chunk with no choices and the usage (every other chunk then says ``"usage": null``)."""
    def chunk(delta: dict, finish_reason: Literal["stop"] | None = None, **extra) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": None,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if usage is not None:
            payload["usage"] = None
        return sse({**payload, **extra})

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(content):
        yield chunk({"content": piece})
    yield chunk({}, "stop", ragctl=extension)
    if usage is not None:
        yield sse({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": None, "choices": [], "usage": usage})
    yield sse("[DONE]")


@router.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown(path: str, request: Request):
    """Any other /v1 endpoint (embeddings, completions, …): 404 in OpenAI's shape, 405 for a known path."""
    known = {"models": "GET", "chat/completions": "POST"}
    if path in known:
        return openai_error(405, f"/v1/{path} does not accept {request.method}; use {known[path]}.",
                            code="method_not_allowed", headers={"Allow": known[path]})
    return openai_error(404, f"ragctl does not serve {request.method} /v1/{path}: only GET /v1/models and "
                        "POST /v1/chat/completions.", code="unknown_url")
