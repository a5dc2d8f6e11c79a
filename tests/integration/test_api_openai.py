"""The OpenAI-compatible API over a real ingested document (issue #13, item 1): the official
``openai`` SDK against the in-process app lists the collection as a model and asks, with and
without streaming, extractively and through an LLM (the local test server); every cited source is
checked against the document's stored chunks.  Slow: ingesting loads the embedding model."""

from __future__ import annotations

import re

import openai
import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.pipeline.answer import EXTRACTIVE_LABEL_KO
from stack.pipeline.service import Pipeline
from stack.settings import load_settings
from tests.support.llm_server import FakeLLM
from tests.support.suite import SAMPLES

KEY = "k3y"
SAMPLE = SAMPLES / "휴가_규정.hwpx"
QUESTION = "연차 휴가는 며칠인가요?"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with the sample ingested into the default collection (once for the module)."""
    root = tmp_path_factory.mktemp("openai") / "project"
    pipeline = Pipeline(load_settings(root, {"api_key": KEY}))
    assert pipeline.ingest_file(SAMPLE).status == "done"
    (record,) = pipeline.documents()
    chunks = {chunk_id: (text, metadata) for chunk_id, text, metadata in pipeline.chunks_of(record)}
    return root, record, chunks


def client_for(root, **overrides) -> openai.OpenAI:
    app = create_app(load_settings(root, {"api_key": KEY, **overrides}))
    return openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=TestClient(app), max_retries=0)


def check_sources(extension: dict, text: str, record, chunks: dict) -> None:
    """Every cited [n] names a source; every source is a chunk of the document, as stored."""
    sources = {s["n"]: s for s in extension["sources"]}
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", text.split("\n\n출처:")[0])}
    assert cited and cited <= set(sources)
    for source in sources.values():
        stored_text, metadata = chunks[source["chunk_id"]]
        assert source["file"] == SAMPLE.name == record.file_name and source["document_id"] == record.id
        assert source["text"] == stored_text and source["heading"] == metadata.get("heading")
    # The text lists the cited sources, "[n] file, location", as the extension field says them.
    listed = text.split("\n\n출처:\n", 1)[1].splitlines()
    assert listed == [f"[{n}] {sources[n]['file']}, {sources[n]['location']}" for n in sorted(cited)]


def test_models_list_the_ingested_collection(project):
    root, _, _ = project
    assert [m.id for m in client_for(root).models.list().data] == ["ragctl", "ragctl/default"]


def test_ask_extractive_with_and_without_streaming(project):
    root, record, chunks = project
    client = client_for(root)
    completion = client.chat.completions.create(model="ragctl:default",
                                                messages=[{"role": "user", "content": QUESTION}])
    text = completion.choices[0].message.content
    assert text.startswith(EXTRACTIVE_LABEL_KO) and "15일" in text.split("\n\n출처:")[0]
    assert completion.ragctl["mode"] == "extractive" and completion.ragctl["collection"] == "default"
    check_sources(completion.ragctl, text, record, chunks)
    first = completion.ragctl["sources"][0]
    assert "15일" in first["text"] and first["location"] == "제2장 휴가 > 제2조(연차 휴가)"

    chunks_streamed = list(client.chat.completions.create(
        model="ragctl:default", messages=[{"role": "user", "content": QUESTION}], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks_streamed)
    assert streamed == text  # the same answer, in pieces
    assert chunks_streamed[-1].choices[0].finish_reason == "stop"
    assert chunks_streamed[-1].ragctl["sources"] == completion.ragctl["sources"]


def test_ask_through_an_llm(project):
    root, record, chunks = project
    with FakeLLM() as llm:
        client = client_for(root, openai_api_key="sk-local", openai_base_url=llm.base_url, llm_model="local-model")
        completion = client.chat.completions.create(
            model="ragctl:default", messages=[{"role": "system", "content": "Answer briefly."},
                                              {"role": "user", "content": QUESTION}], temperature=0.7)
        chunks_streamed = list(client.chat.completions.create(
            model="ragctl:default", messages=[{"role": "user", "content": QUESTION}], stream=True))
    text = completion.choices[0].message.content
    assert completion.ragctl["mode"] == "llm" and completion.ragctl["llm_model"] == "local-model"
    # The test server quotes the first line of source [1] and cites it.
    assert text.startswith("According to the documents:") and text.split("\n\n출처:")[0].endswith("[1]")
    check_sources(completion.ragctl, text, record, chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks_streamed) == text
    # The LLM was asked the question with the sources, never the client's own system prompt or options.
    prompt = llm.requests[0]["body"]["messages"][-1]["content"]
    assert QUESTION in prompt and "Answer briefly." not in prompt and llm.requests[0]["body"]["temperature"] == 0


def test_wrong_key_unknown_model_and_empty_question(project):
    root, _, _ = project
    client = client_for(root)
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="wrong").chat.completions.create(
            model="ragctl:default", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="ragctl:elsewhere", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="ragctl:default", messages=[{"role": "user", "content": "  "}])
    assert raised.value.code == "empty_question"


def test_the_model_name_picks_the_collection_and_a_scoped_key_sees_only_its_own(tmp_path):
    """Issue #26: two collections, HR's sample and a finance note; ``ragctl/hr`` cites only HR's
    document; a key scoped to finance lists only its model and gets OpenAI's 404 for ``ragctl/hr``."""
    root = tmp_path / "teams"
    pipeline = Pipeline(load_settings(root, {"api_key": KEY}))
    finance = tmp_path / "finance.md"
    finance.write_text("# 경비 규정\n\n출장 경비는 하루 10만 원까지 정산한다. 연차 휴가와 무관하다.\n", encoding="utf-8")
    assert pipeline.ingest_file(SAMPLE, collection="hr").status == "done"
    assert pipeline.ingest_file(finance, collection="finance").status == "done"
    app = create_app(load_settings(root, {"api_key": KEY}))
    http = TestClient(app)
    made = http.post("/api/keys", json={"name": "fin", "role": "ask", "collections": ["finance"]},
                     headers={"Authorization": f"Bearer {KEY}"})
    finance_key = made.json()["key"]

    def sdk(key):
        return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=TestClient(app), max_retries=0)

    assert [m.id for m in sdk(KEY).models.list().data] == ["ragctl", "ragctl/default", "ragctl/finance", "ragctl/hr"]
    assert [m.id for m in sdk(finance_key).models.list().data] == ["ragctl", "ragctl/finance"]
    answer = sdk(KEY).chat.completions.create(model="ragctl/hr", messages=[{"role": "user", "content": QUESTION}])
    assert answer.ragctl["collection"] == "hr" and answer.ragctl["sources"]
    assert {s["file"] for s in answer.ragctl["sources"]} == {SAMPLE.name}
    assert "15일" in answer.choices[0].message.content
    mine = sdk(finance_key).chat.completions.create(model="ragctl", messages=[{"role": "user", "content": QUESTION}])
    assert {s["file"] for s in mine.ragctl["sources"]} <= {"finance.md"} and mine.ragctl["collection"] == "finance"
    with pytest.raises(openai.NotFoundError) as hidden:
        sdk(finance_key).chat.completions.create(model="ragctl/hr", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(finance_key).chat.completions.create(model="ragctl/zzz", messages=[{"role": "user", "content": QUESTION}])
    assert hidden.value.body["code"] == missing.value.body["code"] == "model_not_found"
    assert hidden.value.body["message"].replace("ragctl/hr", "M") == missing.value.body["message"].replace("ragctl/zzz", "M")
