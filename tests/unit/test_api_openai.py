"""The OpenAI-compatible API (issue #13, item 1) in-process, with the official ``openai`` SDK as the
client: the shapes it parses, streaming, the extension field, auth and OpenAI's error shape.
``Pipeline.ask`` is replaced by a recorder returning a fixed answer, so no model loads; the real
pipeline over an ingested HWPX answers in tests/integration/test_api_openai.py."""

from __future__ import annotations

import json

import openai
import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.api.routes.openai_compat import ChatMessage, pieces, retrieval_query
from stack.pipeline.answer import EXTRACTIVE_LABEL_KO, Answer, Source
from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.errors import StoreUnavailable
from stack.pipeline.questions import MAX_QUESTION_CHARS, InvalidQuestion
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis

KEY = "k3y"
FILE = "휴가_규정.hwpx"


def fixed_answer(question: str) -> Answer:
    sources = [
        Source(1, FILE, "제2장 휴가 > 제2조(연차 휴가)", None, "section 1", "d0c", "d0c:2", 0.98,
               "제2조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다.", "제2장 휴가 > 제2조(연차 휴가)"),
        Source(2, FILE, "제2장 휴가 > 제3조(신청 절차)", None, "section 1", "d0c", "d0c:3", 0.93,
               "제3조(신청 절차) ① 연차 휴가는 사용 예정일 3일 전까지 신청한다.", "제2장 휴가 > 제3조(신청 절차)"),
    ]
    return Answer(question, f"{EXTRACTIVE_LABEL_KO}\n① 입사 1년 이상 직원의 연차 휴가는 연 15일이다. [1]",
                  "extractive", sources)


@pytest.fixture
def app(tmp_path, monkeypatch):
    from stack import coordination

    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    app = create_app(load_settings(tmp_path / "project", {"api_key": KEY}))
    app.state.asked = []

    def ask(question, *, collection=None, top_k=None):
        app.state.asked.append((question, collection))
        return fixed_answer(question)

    app.state.pipeline.ask = ask
    return app


def sdk(app, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=TestClient(app), max_retries=0)


def ask(client: openai.OpenAI, content="연차 휴가는 며칠인가요?", **kwargs):
    return client.chat.completions.create(
        model=kwargs.pop("model", "ragctl:default"),
        messages=kwargs.pop("messages", [{"role": "user", "content": content}]), **kwargs)


def test_models_lists_one_model_per_collection_default_first_known(app):
    app.state.pipeline.catalog.upsert(DocumentRecord(id="ab" * 32, collection="team-docs", file_name="a.md",
                                                     size=1, status="done", created_at=1_700_000_000.5))
    models = sdk(app).models.list()
    assert models.object == "list"
    assert [(m.id, m.object, m.owned_by) for m in models.data] == [
        ("ragctl", "model", "ragctl"), ("ragctl/default", "model", "ragctl"), ("ragctl/team-docs", "model", "ragctl")]
    assert {m.id: m.created for m in models.data} == {"ragctl": 0, "ragctl/default": 0,
                                                      "ragctl/team-docs": 1_700_000_000}
    assert sdk(app).models.retrieve("ragctl/team-docs").id == "ragctl/team-docs"
    assert sdk(app).models.retrieve("ragctl:team-docs").id == "ragctl/team-docs"  # the spelling before #26
    with pytest.raises(openai.NotFoundError):
        sdk(app).models.retrieve("ragctl/nothing-here")


def test_a_completion_has_openai_shape_sources_in_text_and_the_extension(app):
    completion = ask(sdk(app), temperature=0.2, max_tokens=64, top_p=1, n=1, stop=["\n\n\n"], user="kim",
                     presence_penalty=0, frequency_penalty=0, seed=1, metadata={"x": "y"})
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "ragctl:default" and isinstance(completion.created, int)
    (choice,) = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert text.startswith(EXTRACTIVE_LABEL_KO) and "15일이다. [1]" in text  # labelled, cited
    # Only the cited source is listed in the text; the extension field holds them all.
    assert text.endswith(f"\n\n출처:\n[1] {FILE}, 제2장 휴가 > 제2조(연차 휴가)")
    extension = completion.ragctl
    assert extension["mode"] == "extractive" and extension["collection"] == "default"
    assert extension["query"] == "연차 휴가는 며칠인가요?" and extension["llm_model"] is None
    assert [s["n"] for s in extension["sources"]] == [1, 2]
    assert extension["sources"][0] == {
        "n": 1, "file": FILE, "page": None, "section": "section 1", "location": "제2장 휴가 > 제2조(연차 휴가)",
        "heading": "제2장 휴가 > 제2조(연차 휴가)", "document_id": "d0c", "chunk_id": "d0c:2", "score": 0.98,
        "text": "제2조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다."}
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert app.state.asked == [("연차 휴가는 며칠인가요?", "default")]


def test_the_raw_completion_json_carries_every_field_openai_sends(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    body = client.post("/v1/chat/completions", json={
        "model": "ragctl:default", "messages": [{"role": "user", "content": "연차 휴가는 며칠인가요?"}]}).json()
    assert set(body) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "ragctl"}
    assert set(body["choices"][0]) == {"index", "message", "logprobs", "finish_reason"}
    assert set(body["choices"][0]["message"]) == {"role", "content", "refusal", "annotations"}
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_streaming_sends_role_then_pieces_then_stop_with_the_extension(app):
    whole = ask(sdk(app)).choices[0].message.content
    chunks = list(ask(sdk(app), stream=True))
    assert all(c.object == "chat.completion.chunk" and c.model == "ragctl:default" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    first, *middle, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert all(c.choices[0].finish_reason is None and c.choices[0].delta.role is None for c in middle)
    assert len(middle) > 3 and "".join(c.choices[0].delta.content for c in middle) == whole
    assert last.choices[0].finish_reason == "stop" and last.choices[0].delta.content is None
    assert last.ragctl["mode"] == "extractive" and last.ragctl["sources"][0]["file"] == FILE
    assert all(c.usage is None for c in chunks)


def test_streaming_with_include_usage_ends_with_a_usage_chunk_and_done(app):
    chunks = list(ask(sdk(app), stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    with client.stream("POST", "/v1/chat/completions", json={
            "model": "ragctl:default", "stream": True, "messages": [{"role": "user", "content": "연차는?"}]}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        raw = "".join(response.iter_text())
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and all(e.startswith("data: ") for e in events[:-1])
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_content_as_text_parts_and_other_roles(app):
    ask(sdk(app), messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "연차 휴가는"}, {"type": "text", "text": "며칠인가요?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ])
    assert app.state.asked == [("연차 휴가는\n며칠인가요?", "default")]


def test_a_short_follow_up_is_asked_with_the_previous_question(app):
    completion = ask(sdk(app), messages=[
        {"role": "user", "content": "연차 휴가는 며칠인가요?"},
        {"role": "assistant", "content": "연 15일입니다. [1]"},
        {"role": "user", "content": "그럼 병가는?"},
    ])
    assert app.state.asked == [("연차 휴가는 며칠인가요?\n그럼 병가는?", "default")]
    assert completion.ragctl["query"] == "연차 휴가는 며칠인가요?\n그럼 병가는?"


def m(role: str, content: str) -> ChatMessage:
    return ChatMessage(role=role, content=content)


@pytest.mark.parametrize(("turns", "query"), [
    (["연차 휴가는 며칠인가요?"], "연차 휴가는 며칠인가요?"),
    (["연차 휴가는 며칠인가요?", "병가는 며칠이고 진단서는 언제 내야 하나요?"], "병가는 며칠이고 진단서는 언제 내야 하나요?"),
    (["연차 휴가는 며칠인가요?", "3년 근속하면?"], "연차 휴가는 며칠인가요?\n3년 근속하면?"),
    (["연차 휴가는 며칠인가요?", "그러면 이월은 언제까지 가능한가요?"], "연차 휴가는 며칠인가요?\n그러면 이월은 언제까지 가능한가요?"),
    (["How long are backups kept?", "What about the logs of the nightly job?"],
     "How long are backups kept?\nWhat about the logs of the nightly job?"),
    (["How long are backups kept?", "When does the nightly backup job start?"], "When does the nightly backup job start?"),
    (["first question", "  ", "short?"], "first question\nshort?"),  # blank earlier turns are skipped
])
def test_the_retrieval_query_rule(turns, query):
    messages = [m("system", "ignored")] + [m("user", t) for t in turns]
    question, asked = retrieval_query(messages)
    assert question == turns[-1] and asked == query


def test_a_blank_last_question_is_refused_even_after_a_good_one():
    with pytest.raises(InvalidQuestion) as raised:
        retrieval_query([m("user", "연차 휴가는 며칠인가요?"), m("assistant", "15일 [1]"), m("user", " ")])
    assert raised.value.code == "empty_question"


def test_a_previous_question_too_long_to_prepend_is_left_out():
    _, query = retrieval_query([m("user", "가" * MAX_QUESTION_CHARS), m("user", "그럼?")])
    assert query == "그럼?"


def test_pieces_join_back_to_the_text():
    text = "추출형 답변\n① 연차는  15일이다. [1]\n\n출처:\n[1] a.hwpx"
    assert "".join(pieces(text)) == text and pieces(text)[:4] == ["추출형 ", "답변\n", "① ", "연차는  "]


def test_wrong_or_missing_key_is_an_authentication_error(app):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(app, key="wrong").models.list()
    assert raised.value.code == "invalid_api_key" and raised.value.type == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        ask(sdk(app, key="wrong"))
    anonymous = TestClient(app).post("/v1/chat/completions", json={"model": "ragctl:default", "messages": []})
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) == {"message", "type", "param", "code"}
    assert app.state.asked == []


def test_unknown_model_is_not_found(app):
    for model in ("gpt-4o", "ragctl:nothing-here", "ragctl:"):
        with pytest.raises(openai.NotFoundError) as raised:
            ask(sdk(app), model=model)
        assert raised.value.code == "model_not_found" and raised.value.param == "model"
        assert "GET /v1/models" in raised.value.message
    assert app.state.asked == []


@pytest.mark.parametrize(("messages", "code"), [
    ([{"role": "user", "content": ""}], "empty_question"),
    ([{"role": "user", "content": " \n\u3000"}], "empty_question"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "empty_question"),
    ([{"role": "system", "content": "hello"}], "no_user_message"),
    ([{"role": "user", "content": "x" * (MAX_QUESTION_CHARS + 1)}], "question_too_long"),
    ([], "invalid_request"),
    ([{"content": "no role"}], "invalid_request"),
])
def test_invalid_requests_are_bad_requests(app, messages, code):
    with pytest.raises(openai.BadRequestError) as raised:
        ask(sdk(app), messages=messages)
    assert raised.value.status_code == 400 and raised.value.code == code
    assert raised.value.type == "invalid_request_error" and raised.value.param.startswith("messages")
    assert app.state.asked == []


def test_a_body_without_model_or_messages_is_a_bad_request(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert client.post("/v1/chat/completions", content=b"not json",
                       headers={"Content-Type": "application/json"}).status_code == 400


def test_an_unavailable_store_is_503(app):
    def down(question, **kwargs):
        raise StoreUnavailable("The vector store is unreachable while searching: refused", hint="ragctl ps")

    app.state.pipeline.ask = down
    with pytest.raises(openai.InternalServerError) as raised:
        ask(sdk(app))
    assert raised.value.status_code == 503 and raised.value.code == "store_unavailable"
    assert raised.value.type == "server_error" and "unreachable" in raised.value.message


def test_other_v1_paths_and_methods_answer_in_openai_shape(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    embeddings = client.post("/v1/embeddings", json={"model": "x", "input": "y"})
    assert embeddings.status_code == 404 and embeddings.json()["error"]["code"] == "unknown_url"
    wrong_method = client.post("/v1/models")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    assert set(wrong_method.json()["error"]) == {"message", "type", "param", "code"}


def test_the_rest_of_the_api_keeps_its_envelope(app):
    anonymous = TestClient(app)
    assert anonymous.get("/api/documents").json()["error"]["code"] == "unauthorized"
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    refused = client.post("/api/ask", json={"question": " "})
    assert refused.status_code == 422 and set(refused.json()["error"]) == {"code", "message", "hint"}
    assert client.get("/api/nothing").json()["error"]["code"] == "not_found"
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/chat/completions"} <= set(paths) and "/v1/{path}" not in paths


def test_invalid_question_stays_a_pipeline_error():
    # The route relies on check_question raising InvalidQuestion (its code becomes OpenAI's code).
    with pytest.raises(InvalidQuestion):
        retrieval_query([m("user", " ")])
