"""Empty, blank and absurdly long questions (issue 10, item 3): one check in the pipeline
(stack.pipeline.questions), so the embedded CLI, the stack's client and the API refuse them alike:
exit 2 with "question is empty" on the CLI, 422 in the JSON error envelope from the API."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ragctl.cli import app as cli
from ragctl.client import StackClient, StackError
from stack.api.app import create_app
from stack.pipeline.questions import MAX_QUESTION_CHARS, InvalidQuestion, check_question
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis

BLANK = ["", " ", "\t\n", "\u3000", " \r\n \u00a0"]  # \u3000: the ideographic (Korean/CJK) space
TOO_LONG = ["x" * (MAX_QUESTION_CHARS + 1), "가" * 100_000]


def expected(text: str, what: str = "question") -> dict:
    with pytest.raises(InvalidQuestion) as caught:
        check_question(text, what=what)
    return caught.value.to_dict()


@pytest.fixture
def api(tmp_path, monkeypatch):
    from stack import coordination

    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    client = TestClient(create_app(load_settings(tmp_path / "project", {"api_key": "k3y"})))
    client.headers["Authorization"] = "Bearer k3y"
    return client


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("questions") / "p"
    result = CliRunner().invoke(cli, ["--project", str(root), "init", str(root), "--yes"])
    assert result.exit_code == 0, result.output
    return root


# -- the check itself --------------------------------------------------------------------------
@pytest.mark.parametrize("text", BLANK)
def test_blank_questions_are_empty(text):
    error = expected(text)
    assert error["code"] == "empty_question" and error["message"] == "question is empty" and error["hint"]


@pytest.mark.parametrize("text", TOO_LONG)
def test_over_long_questions_name_the_limit(text):
    error = expected(text)
    assert error["code"] == "question_too_long"
    assert f"{MAX_QUESTION_CHARS:,}" in error["message"] and f"{len(text):,}" in error["message"]


@pytest.mark.parametrize("text", ["?", "a", "가", "x" * MAX_QUESTION_CHARS, "  연차 휴가는 며칠인가요?  "])
def test_real_questions_pass_unchanged(text):
    assert check_question(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=MAX_QUESTION_CHARS + 50))
def test_generated_questions_are_refused_exactly_when_blank_or_too_long(text):
    if not text.strip() or len(text) > MAX_QUESTION_CHARS:
        with pytest.raises(InvalidQuestion) as caught:
            check_question(text)
        assert caught.value.exit_code == 2
        assert caught.value.code == ("empty_question" if not text.strip() else "question_too_long")
    else:
        assert check_question(text) == text


def test_the_pipeline_refuses_before_searching(tmp_path):
    """The embedded path that used to answer "ABC" to an empty question."""
    from stack.pipeline.service import Pipeline

    pipeline = Pipeline(load_settings(tmp_path / "p"))
    for call in (pipeline.ask, pipeline.search):
        for text in (*BLANK, *TOO_LONG):
            with pytest.raises(InvalidQuestion):
                call(text)


# -- the API: 422 in the envelope, the same message ---------------------------------------------
@pytest.mark.parametrize("text", [*BLANK, *TOO_LONG])
@pytest.mark.parametrize(("path", "field", "what"), [("/api/ask", "question", "question"),
                                                     ("/api/search", "query", "query")])
def test_api_refuses_in_the_envelope(api, text, path, field, what):
    response = api.post(path, json={field: text})
    assert response.status_code == 422
    assert response.json() == {"error": expected(text, what)}


def test_every_api_validation_error_is_the_envelope(api):
    bad = [
        api.post("/api/ask", json={"question": "hi", "top_k": 0}),
        api.post("/api/ask", json={"question": 5}),
        api.post("/api/ask", json={}),
        api.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"}),
        api.post("/api/search", json={"query": "hi", "mode": "psychic"}),
        api.post("/api/search", json={"query": "hi", "collection": "a/b"}),
        api.get("/api/documents", params={"status": "bogus"}),
        api.get("/no/such/route"),
        api.delete("/api/health"),
    ]
    for response in bad:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "hint"}, body
        assert body["error"]["message"] and "detail" not in response.text[:20]


def test_the_openapi_schema_still_documents_the_limits(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for name, field in (("AskRequest", "question"), ("SearchRequest", "query")):
        prop = schemas[name]["properties"][field]
        assert prop["minLength"] == 1 and prop["maxLength"] == MAX_QUESTION_CHARS


# -- the CLI, embedded and against a stack: exit 2, the same words ---------------------------------
def run_cli(project, *args, env=None):
    result = CliRunner().invoke(cli, ["--project", str(project), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_QUESTION_CHARS + 1)])
@pytest.mark.parametrize("command", ["ask", "search"])
def test_cli_exits_2_with_the_same_message_in_both_modes(project, command, text):
    what = "question" if command == "ask" else "query"
    message = expected(text, what)["message"]
    embedded = run_cli(project, command, text)
    # A stack that is not even there: the question is refused before any request is made.
    stack = run_cli(project, command, text, env={"RAGCTL_API_URL": "http://127.0.0.1:9"})
    for code, _, stderr in (embedded, stack):
        assert code == 2 and f"Error: {message}" in stderr and "Traceback" not in stderr
    assert embedded[2] == stack[2]
    for env in (None, {"RAGCTL_API_URL": "http://127.0.0.1:9"}):
        code, stdout, _ = run_cli(project, command, text, "--json", env=env)
        assert code == 2 and json.loads(stdout) == {"error": expected(text, what)}


def test_stack_client_refuses_like_the_pipeline_and_maps_the_servers_codes_to_exit_2(api):
    client = StackClient("http://testserver", "k3y")
    client.http = api
    for text in ("", "x" * (MAX_QUESTION_CHARS + 1)):
        for call, what in ((client.ask, "question"), (client.search, "query")):
            with pytest.raises(InvalidQuestion) as caught:
                call(text)
            assert caught.value.to_dict() == expected(text, what) and caught.value.exit_code == 2
    # The server's own refusal (a server whose limit differs from the client's) is a usage error too.
    with pytest.raises(StackError) as caught:
        client._question_call("/api/ask", {"question": " "})
    assert caught.value.exit_code == 2 and caught.value.to_dict() == expected(" ")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(" \t\n\r\u3000\u00a0\u2003"), max_size=20))
def test_generated_blank_questions_through_the_api(api, text):
    response = api.post("/api/ask", json={"question": text})
    assert response.status_code == 422 and response.json()["error"]["code"] == "empty_question"
