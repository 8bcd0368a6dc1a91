"""Engines `nvidia` / `openai`: the official `openai` client streaming from a protocol-level stand-in
(a real HTTP server emitting chat.completion.chunk SSE events), failure paths, concurrency, the extractive
fallback, the LLM query transforms (rewrite, multi-query, HyDE) and the warm-up."""

from __future__ import annotations

import time

import pytest

from conftest import make_settings
from standins import closed_port, stream_concurrently
from standins.generators import QuoteTopHit
from standins.openai_standin import OpenAIStandin
from tecorag.config import DEFAULT_RAG_TEMPLATE, load_settings
from tecorag.errors import ConfigError, LLMError
from tecorag.generate.factory import build_generator, build_llm_client
from tecorag.generate.llm import (FallbackGenerator, LLMGenerator, LLMRequestRejected, LLMStreamBroken, LLMTimeout,
                                  LLMUnavailable, SamplingParams)
from tecorag.generate.openai_compat import OPENAI_API_URL, OpenAICompatClient, base_url_for
from tecorag.generate.prompts import RagPrompt
from tecorag.generate.tokenizer import estimate_tokens
from tecorag.retrieve.transform import (QueryPlan, expand_query, hypothetical_answer, plan_queries,
                                        rewrite_followup)
from tecorag.types import Chunk, Hit, Message
from tecorag.warmup import format_warmup_report, warmup, warmup_succeeded

MODEL = "Qwen-7B-Chat"
QUESTION = "TecoToolKit 怎么安装？"
EXPECTED_ANSWER = "根据已知信息，安装 TecoDriver 后再安装 TecoToolKit。[1]"
HITS = [Hit(Chunk(id="a", file="安装指南.md", text="安装 TecoDriver 后再安装 TecoToolKit。两者版本需要匹配。",
                  index_text="", position=0, heading_path=("环境准备",)), score=1.0)]




def client_for(server: OpenAIStandin, engine: str = "nvidia", model_name: str = MODEL,
               **overrides) -> OpenAICompatClient:
    # OpenAI itself rejects vLLM's extra sampling fields (the `openai` engine's builder turns them off)
    options = dict(first_token_timeout_s=2.0, timeout_s=5.0, retries=0, server_sampling_fields=engine != "openai")
    options.update(overrides)
    return OpenAICompatClient(engine, server.base_url, model_name, **options)


def generator_for(client) -> LLMGenerator:
    prompt = RagPrompt(template=DEFAULT_RAG_TEMPLATE, system_prompt="You are a helpful assistant.",
                       context_token_budget=3000, count_tokens=estimate_tokens)
    return LLMGenerator(client, prompt)


# -- streaming ----------------------------------------------------------------------------------------------

def test_nvidia_engine_streams_sse_chunks_and_sends_vllm_sampling_fields():
    with OpenAIStandin() as server:
        stream = generator_for(client_for(server)).stream(QUESTION, HITS, [Message("user", "你好"),
                                                                            Message("assistant", "你好！")])
        pieces = list(stream)
        body = server.requests[0]
    assert "".join(pieces) == EXPECTED_ANSWER and len(pieces) > 5
    assert stream.engine == "nvidia" and stream.notice is None
    assert body["model"] == MODEL and body["stream"] is True and body["max_tokens"] == 1024
    assert body["stop"] == ["<|im_end|>"]
    assert body["top_k"] == 1 and body["repetition_penalty"] == 1.0 and body["temperature"] == 1.0
    assert "top_p" not in body                                  # top_p 0 means "off" on Triton: not sent
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert "[1] 安装指南.md > 环境准备\n安装 TecoDriver" in body["messages"][-1]["content"]


def test_openai_engine_asks_for_greedy_decoding_without_vllm_only_fields():
    with OpenAIStandin(api_key="sk-test") as server:
        client = client_for(server, engine="openai", api_key="sk-test",
                            sampling=SamplingParams(top_k=1, top_p=0.8, temperature=0.9))
        assert client.complete([Message("user", "[1] a\n安装 TecoDriver 后再安装 TecoToolKit。")]) == EXPECTED_ANSWER
        body = server.requests[0]
    assert body["temperature"] == 0.0 and body["top_p"] == 0.8
    assert "top_k" not in body and "repetition_penalty" not in body


def test_a_wrong_api_key_is_a_rejection_not_an_outage():
    with OpenAIStandin(api_key="sk-right") as server:
        with pytest.raises(LLMRequestRejected, match="401"):
            client_for(server, engine="openai", api_key="sk-wrong").complete([Message("user", "q")])


def test_a_stop_word_leaking_from_the_server_is_never_shown():
    with OpenAIStandin(reply=lambda prompt: "答案。<|im_end|>多余", honour_stop=False) as server:
        pieces = list(client_for(server).stream_chat([Message("user", "q")]))
    assert "".join(pieces) == "答案。"
    assert not any("<" in piece or "|" in piece for piece in pieces)


def test_max_new_tokens_is_passed_to_the_server():
    with OpenAIStandin() as server:
        text = client_for(server).complete([Message("user", "[1] a\n安装 TecoDriver 后再安装。")], max_new_tokens=3)
        assert server.requests[0]["max_tokens"] == 3
    assert text == "根据已知信息"                                  # three 2-character pieces


def test_check_lists_models_and_rejects_a_model_that_is_not_served():
    with OpenAIStandin() as server:
        client_for(server).check()
        with pytest.raises(LLMRequestRejected, match=r"'Qwen-72B' is not served.*Qwen-7B-Chat"):
            client_for(server, model_name="Qwen-72B").check()
        with pytest.raises(LLMRequestRejected, match="404"):
            client_for(server, model_name="Qwen-72B").complete([Message("user", "q")])


# -- configuration ------------------------------------------------------------------------------------------

def test_base_url_comes_from_url_or_ip_and_port():
    assert base_url_for("nvidia", "http://vllm:8000/v1/", "1.2.3.4", 9) == "http://vllm:8000/v1"
    assert base_url_for("nvidia", None, "10.0.0.5", 8000) == "http://10.0.0.5:8000/v1"
    assert base_url_for("openai", None, "127.0.0.1", None, default_url=OPENAI_API_URL) == OPENAI_API_URL
    with pytest.raises(ConfigError, match="APP_LLM_PORT"):
        base_url_for("nvidia", None, "127.0.0.1", None)


def test_openai_itself_needs_an_api_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="APP_LLM_API_KEY"):
        OpenAICompatClient("openai", OPENAI_API_URL, "gpt-4o-mini")


def test_app_env_names_select_the_engine_and_address(tmp_path):
    with OpenAIStandin() as server:
        settings = load_settings(path=None, home=tmp_path, environ={
            "APP_LLM_MODEL_ENGINE": "nvidia", "APP_LLM_IP": "127.0.0.1", "APP_LLM_PORT": str(server.port),
            "APP_LLM_MODEL_NAME": MODEL, "APP_LLM_API_KEY": "token-abc", "APP_LLM_MAX_NEW_TOKENS": "64",
        })
        client = build_llm_client(settings)
        assert client.complete([Message("user", "q")]) == "根据已知信息无法回答该问题"
        assert server.requests[0]["max_tokens"] == 64
    assert client.engine == "nvidia" and client.address == f"http://127.0.0.1:{server.port}/v1"


# -- faults -------------------------------------------------------------------------------------------------

def test_refused_connection_is_unavailable_naming_engine_and_address():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = OpenAICompatClient("nvidia", url, MODEL, first_token_timeout_s=2, timeout_s=5, retries=1)
    with pytest.raises(LLMUnavailable, match=rf"'nvidia' at {url}: unreachable"):
        client.complete([Message("user", "q")])


def test_a_stall_times_out_waiting_for_the_first_token():
    with OpenAIStandin(stall_s=5) as server:
        started = time.monotonic()
        with pytest.raises(LLMTimeout, match="no first token within 0.4s"):
            client_for(server, first_token_timeout_s=0.4).complete([Message("user", "q")])
        assert time.monotonic() - started < 2


def test_a_stall_before_the_first_token_is_retried():
    with OpenAIStandin(stall_s=5, stall_requests=1) as server:
        answer = "".join(generator_for(client_for(server, first_token_timeout_s=0.4, retries=1)).stream(QUESTION, HITS))
        assert answer == EXPECTED_ANSWER and len(server.requests) == 2


def test_a_dropped_connection_mid_answer_raises_after_the_partial_text_and_is_not_retried():
    with OpenAIStandin(break_after=4) as server:
        pieces: list[str] = []
        with pytest.raises(LLMStreamBroken, match="mid-answer"):
            for piece in generator_for(client_for(server, retries=2)).stream(QUESTION, HITS):
                pieces.append(piece)
        assert "".join(pieces) == EXPECTED_ANSWER[:8] and len(server.requests) == 1


def test_slow_tokens_do_not_serialize_users():
    users = 8
    with OpenAIStandin(token_delay_s=0.03) as server:
        client = client_for(server)
        answers = stream_concurrently(lambda: generator_for(client).stream(QUESTION, HITS), users)
    assert answers == [EXPECTED_ANSWER] * users
    assert server.max_active_streams == users


# -- fallback -----------------------------------------------------------------------------------------------

def nvidia_settings(tmp_path, port: int, **llm):
    options = dict(model_engine="nvidia", ip="127.0.0.1", port=port, first_token_timeout_s=0.5, timeout_s=5.0,
                   retries=0)
    options.update(llm)
    return make_settings(tmp_path, llm=options)


def test_a_stalled_llm_falls_back_to_the_extractive_answer_with_a_timeout_notice(tmp_path):
    with OpenAIStandin(stall_s=5) as server:
        generator = build_generator(nvidia_settings(tmp_path, server.port), QuoteTopHit())
        assert isinstance(generator, FallbackGenerator)
        stream = generator.stream(QUESTION, HITS)
        assert "".join(stream) == HITS[0].chunk.text
    assert stream.notice.reason == "timeout" and stream.engine == "extractive"
    assert f"nvidia at http://127.0.0.1:{server.port}/v1" in stream.notice.message


def test_a_dropped_connection_appends_the_extractive_answer(tmp_path):
    with OpenAIStandin(break_after=4) as server:
        stream = build_generator(nvidia_settings(tmp_path, server.port), QuoteTopHit()).stream(QUESTION, HITS)
        text = "".join(stream)
    assert text == EXPECTED_ANSWER[:8] + "\n\n" + HITS[0].chunk.text
    assert stream.notice.reason == "broken" and stream.notice.partial_chars == 8
    assert "failed mid-answer" in stream.notice.message


def test_without_fallback_a_refused_connection_raises(tmp_path):
    generator = build_generator(nvidia_settings(tmp_path, closed_port(), fallback_to_extractive=False), QuoteTopHit())
    with pytest.raises(LLMUnavailable, match="'nvidia' at http://127.0.0.1"):
        list(generator.stream(QUESTION, HITS))


# -- query transforms ---------------------------------------------------------------------------------------

def test_a_followup_is_rewritten_into_a_standalone_question_using_the_history():
    history = [Message("user", "TecoDriver 是什么？"), Message("assistant", "是太初加速卡的驱动。")]
    with OpenAIStandin(reply=lambda prompt: "改写后的问题：“TecoDriver 如何安装？”\n") as server:
        standalone = rewrite_followup(client_for(server), "它怎么装？", history)
        prompt = server.requests[0]["messages"][-1]["content"]
        assert server.requests[0]["max_tokens"] <= 128
    assert standalone == "TecoDriver 如何安装？"
    assert "用户：TecoDriver 是什么？\n助手：是太初加速卡的驱动。" in prompt and "最新问题：它怎么装？" in prompt


def test_without_history_the_question_is_kept_and_no_request_is_made():
    with OpenAIStandin() as server:
        assert rewrite_followup(client_for(server), "TecoDriver 怎么装？", []) == "TecoDriver 怎么装？"
        assert server.requests == []


def test_multi_query_parses_numbered_lines_drops_duplicates_and_the_original():
    reply = "1. TecoToolKit 的安装步骤是什么？\n2、如何安装TecoToolKit\n- TecoToolKit 怎么安装？\n\n3. 如何安装TecoToolKit\n4) 安装 TecoToolKit 需要哪些前提？"
    with OpenAIStandin(reply=lambda prompt: reply) as server:
        rephrasings = expand_query(client_for(server), QUESTION, 3)
        assert "写出3个" in server.requests[0]["messages"][-1]["content"]
    assert rephrasings == ["TecoToolKit 的安装步骤是什么？", "如何安装TecoToolKit", "安装 TecoToolKit 需要哪些前提？"]


def test_hyde_returns_the_hypothetical_passage():
    passage = "TecoToolKit 的安装分为四步：检查环境、获取安装包、安装、配置环境变量。"
    with OpenAIStandin(reply=lambda prompt: f"\n{passage}\n") as server:
        assert hypothetical_answer(client_for(server), QUESTION) == passage
        assert QUESTION in server.requests[0]["messages"][-1]["content"]


def test_plan_runs_only_the_enabled_transforms(tmp_path):
    def reply(prompt: str) -> str:
        if "最新问题" in prompt:
            return "TecoDriver 如何安装？"
        if "意思相同" in prompt:
            return "TecoDriver 安装步骤\nTecoDriver 安装方法"
        return "先下载 TecoDriver 安装包，再执行安装脚本。"

    history = [Message("user", "TecoDriver 是什么？"), Message("assistant", "驱动。")]
    with OpenAIStandin(reply=reply) as server:
        client = client_for(server)
        off = plan_queries(client, make_settings(tmp_path).llm, "它怎么装？")
        assert server.requests == [] and off.queries == ["它怎么装？"] and off.hyde_passage is None
        llm = make_settings(tmp_path, llm={"multi_query": 2, "hyde": True}).llm
        plan = plan_queries(client, llm, "它怎么装？", history)
    assert plan.standalone == "TecoDriver 如何安装？"
    assert plan.queries == ["TecoDriver 如何安装？", "TecoDriver 安装步骤", "TecoDriver 安装方法"]
    assert plan.hyde_passage == "先下载 TecoDriver 安装包，再执行安装脚本。" and plan.errors == []


def test_a_failing_llm_never_fails_the_plan(tmp_path):
    client = OpenAICompatClient("nvidia", f"http://127.0.0.1:{closed_port()}/v1", MODEL, retries=0)
    llm = make_settings(tmp_path, llm={"multi_query": 2, "hyde": True}).llm
    plan = plan_queries(client, llm, "它怎么装？", [Message("user", "TecoDriver?"), Message("assistant", "驱动")])
    assert plan.queries == ["它怎么装？"] and plan.hyde_passage is None
    assert [error.split(":")[0] for error in plan.errors] == ["rewrite", "multi-query", "hyde"]
    assert plan_queries(None, llm, "q") == QueryPlan(question="q", standalone="q")


# -- warm-up ------------------------------------------------------------------------------------------------

def test_warmup_against_an_openai_compatible_server():
    with OpenAIStandin(token_delay_s=0.02) as server:
        client = client_for(server)
        results = warmup(client, concurrency=5, question="你好")
        assert server.max_active_streams == 5
        assert all(body["messages"][-1]["content"] == "你好" for body in server.requests)
    assert warmup_succeeded(results) and len(results) == 5
    assert "5/5 ok" in format_warmup_report(results)


def test_warmup_reports_partial_failures_without_raising():
    with OpenAIStandin(stall_s=5, stall_requests=1) as server:
        results = warmup(client_for(server, first_token_timeout_s=0.5), concurrency=3)
    assert sorted(r.ok for r in results) == [False, True, True] and not warmup_succeeded(results)
    report = format_warmup_report(results)
    assert "FAIL" in report and "no first token" in report
    assert report.splitlines()[-1].startswith("2/3 ok")


def test_warmup_of_an_unreachable_server_fails_clearly():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(LLMError, match=rf"'nvidia' at {url}: unreachable"):
        warmup(OpenAICompatClient("nvidia", url, MODEL, retries=0), concurrency=2)


# -- the structure reaches the LLM -----------------------------------------------------------------------------

def test_numbered_passages_keep_the_heading_path_table_header_and_code_fences():
    from tecorag.config import TextSplitterSettings
    from tecorag.ingest.loaders.text import load_markdown
    from tecorag.ingest.splitter import ChineseTextSplitter

    manual = ("# 参数说明\n\n## 8 server\n\n启动服务的相关参数如下：\n\n"
              "| 参数名称 | 类型 | 默认值 |\n| :--- | :--- | :--- |\n"
              "| api_server_port | str | 7861 |\n| web_server_port | str | 9003 |\n\n"
              "## 9 启动\n\n执行以下命令：\n\n```bash\npython start.py\n```\n")
    for smaller_chunk_size in (0, 40):   # small-to-big reads the parent: the table's header comes with it
        chunks = ChineseTextSplitter(TextSplitterSettings(smaller_chunk_size=smaller_chunk_size)).split(
            load_markdown("configuration.md", manual.encode()))
        table = next(chunk for chunk in chunks if "9003" in chunk.text)
        code = next(chunk for chunk in chunks if "start.py" in chunk.text)
        with OpenAIStandin() as server:
            list(generator_for(client_for(server)).stream("WebUI 的端口是多少？", [Hit(table, 1.0), Hit(code, 0.5)]))
            prompt = server.requests[0]["messages"][-1]["content"]
        assert ("[1] configuration.md > 参数说明 > 8 server\n参数名称 | 类型 | 默认值\n"
                "参数名称: api_server_port；类型: str；默认值: 7861\n"
                "参数名称: web_server_port；类型: str；默认值: 9003") in prompt
        assert "[2] configuration.md > 参数说明 > 9 启动\n执行以下命令：\n\n```bash\npython start.py\n```" in prompt
