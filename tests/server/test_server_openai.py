"""The OpenAI-compatible routes, driven by the official `openai` client against a real server."""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import make_settings
from server_fixtures import running_server
from tecorag.server.app import create_app

API_KEY = "sk-tecorag-test"
TRAVEL = ("# 差旅管理办法\n\n## 住宿标准\n\n员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。\n\n"
          "## 报销时限\n\n出差返回后十个工作日内提交报销单，逾期不予报销。\n")
LEAVE = "年假规定：员工工作满一年后每年享有五天带薪年假，工作满十年后每年享有十天带薪年假。"
KB = "员工手册"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("openai") / "home", server={"api_keys": [API_KEY]})
    with running_server(create_app(settings)) as url:
        headers = {"X-API-Key": API_KEY}
        assert httpx.post(f"{url}/knowledge_base/create_knowledge_base", headers=headers,
                          json={"knowledge_base_name": KB}).status_code == 200
        uploaded = httpx.post(f"{url}/knowledge_base/upload_docs", headers=headers, timeout=120,
                              data={"knowledge_base_name": KB},
                              files=[("files", ("travel.md", TRAVEL.encode(), "text/markdown")),
                                     ("files", ("leave.txt", LEAVE.encode(), "text/plain"))])
        assert uploaded.json()["data"]["indexed_files"] == ["travel.md", "leave.txt"]
        yield f"{url}/v1"


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=60)


def test_models_are_the_knowledge_bases(client):
    models = client.models.list()
    assert [model.id for model in models.data] == [KB]
    assert models.data[0].owned_by == "tecorag"


def test_completion_answers_with_sources(client):
    completion = client.chat.completions.create(
        model=KB, messages=[{"role": "system", "content": "请简洁回答"},
                            {"role": "user", "content": "员工出差住宿标准是多少？"}])
    content = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop" and completion.model == KB
    answer, sources_text = content.split("参考来源：")
    assert "五百元" in answer and "[1] travel.md" in sources_text
    sources = completion.model_extra["sources"]
    assert sources[0]["file"] == "travel.md" and "五百元" in sources[0]["text"] and sources[0]["index"] == 1


def test_streaming_completion(client):
    stream = client.chat.completions.create(model=KB, stream=True,
                                            messages=[{"role": "user", "content": "年假有几天？"}])
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "五天" in text.split("参考来源：")[0] and "leave.txt" in text.split("参考来源：")[1]
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["sources"][0]["file"] == "leave.txt"
    assert len({chunk.id for chunk in chunks}) == 1


def test_follow_up_turns_carry_history(client):
    first = client.chat.completions.create(model=KB, messages=[{"role": "user", "content": "出差住宿标准是多少？"}])
    follow_up = client.chat.completions.create(model=KB, messages=[
        {"role": "user", "content": "出差住宿标准是多少？"},
        {"role": "assistant", "content": first.choices[0].message.content},   # sources block included
        {"role": "user", "content": [{"type": "text", "text": "报销单要在几天内提交？"}]},
    ])
    assert "十个工作日" in follow_up.choices[0].message.content.split("参考来源：")[0]


def test_errors_come_back_as_openai_errors(base_url, client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-kb", messages=[{"role": "user", "content": "你好"}])
    assert "no-such-kb" in str(missing.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=KB, messages=[{"role": "assistant", "content": "你好"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0).models.list()
