"""Engine `teco`: the Triton gRPC streaming client against a protocol-level Triton stand-in (a real gRPC
server from tritonclient's own protos), in non-ensemble (token ids) and ensemble (text) mode, with the
failure paths (refuse, stall, break mid-stream), the extractive fallback and the warm-up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import make_settings
from standins import closed_port, stream_concurrently
from standins.generators import QuoteTopHit
from standins.small_tokenizers import write_hf_tokenizer_json, write_qwen_tiktoken
from standins.triton_standin import TritonStandin
from tecorag.config import DEFAULT_RAG_TEMPLATE, load_settings
from tecorag.errors import LLMError
from tecorag.generate.factory import build_generator, build_llm_client
from tecorag.generate.llm import (FallbackGenerator, LLMGenerator, LLMRequestRejected, LLMStreamBroken, LLMTimeout,
                                  LLMUnavailable, SamplingParams)
from tecorag.generate.prompts import RagPrompt
from tecorag.generate.tokenizer import estimate_tokens, load_tokenizer
from tecorag.generate.triton import TritonClient, stop_words_tensor
from tecorag.types import Chunk, Hit, Message
from tecorag.warmup import format_warmup_report, warmup, warmup_succeeded

MODEL = "Qwen-7B-Chat"
QUESTION = "TecoToolKit 怎么安装？"
EXPECTED_ANSWER = "根据已知信息，安装 TecoDriver 后再安装 TecoToolKit。[1]"


def make_hit(file: str, text: str, heading: tuple[str, ...] = ()) -> Hit:
    return Hit(Chunk(id=file, file=file, text=text, index_text=text, position=0, heading_path=heading), score=1.0)


HITS = [
    make_hit("安装指南.md", "安装 TecoDriver 后再安装 TecoToolKit。两者版本需要匹配。", ("环境准备",)),
    make_hit("FAQ.md", "缺少 libGL.so.1 时改装 opencv-python-headless。"),
]




@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return write_qwen_tiktoken(tmp_path_factory.mktemp("qwen-model"))


@pytest.fixture(scope="module")
def qwen(qwen_dir):
    return load_tokenizer(qwen_dir)


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    return load_tokenizer(write_hf_tokenizer_json(tmp_path_factory.mktemp("hf-model")))


def client_for(server: TritonStandin, tokenizer=None, model_name: str = MODEL, **overrides) -> TritonClient:
    options = dict(mode=server.mode, tokenizer=tokenizer, first_token_timeout_s=2.0, timeout_s=5.0, retries=0)
    options.update(overrides)
    return TritonClient("127.0.0.1", server.port, model_name, **options)


def generator_for(client: TritonClient) -> LLMGenerator:
    prompt = RagPrompt(template=DEFAULT_RAG_TEMPLATE, system_prompt="You are a helpful assistant.",
                       context_token_budget=3000, count_tokens=estimate_tokens)
    return LLMGenerator(client, prompt)


def scalar(tensors: dict[str, np.ndarray], name: str) -> float:
    return tensors[name].reshape(-1)[0].item()


# -- non-ensemble: token ids in and out -------------------------------------------------------------------

def test_non_ensemble_streams_the_answer_in_pieces_without_stop_words_or_broken_chars(qwen):
    with TritonStandin(tokenizer=qwen) as server:
        stream = generator_for(client_for(server, qwen)).stream(QUESTION, HITS)
        pieces = list(stream)
    assert "".join(pieces) == EXPECTED_ANSWER
    assert len(pieces) > 5                                         # streamed, not one blob
    assert not any("\ufffd" in p or "<|" in p for p in pieces)
    assert stream.engine == "teco" and stream.notice is None and stream.context_hits == HITS


def test_non_ensemble_request_follows_the_fastertransformer_layout(qwen):
    with TritonStandin(tokenizer=qwen) as server:
        generator_for(client_for(server, qwen)).stream(QUESTION, HITS, [Message("user", "你好"),
                                                                        Message("assistant", "你好！")]).__next__()
        time.sleep(0.1)
        request = server.requests[0]
    tensors = request.tensors
    ids = tensors["input_ids"]
    assert ids.dtype == np.uint32 and ids.shape[0] == 1                     # cast to the declared UINT32
    assert request.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                     "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！<|im_end|>\n")
    assert request.prompt.endswith(f"问题：{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    assert "[1] 安装指南.md > 环境准备\n安装 TecoDriver" in request.prompt
    assert scalar(tensors, "input_lengths") == ids.shape[1]
    assert scalar(tensors, "request_output_len") == 1024
    assert scalar(tensors, "runtime_top_k") == 1 and scalar(tensors, "runtime_top_p") == 0.0
    assert scalar(tensors, "temperature") == 1.0 and scalar(tensors, "repetition_penalty") == 1.0
    assert scalar(tensors, "len_penalty") == 1.0
    assert scalar(tensors, "start_id") == 1 and scalar(tensors, "end_id") == 151643
    assert tensors["stop_words_list"].tolist() == [[[151645], [1]]]       # <|im_end|>, ends at offset 1
    assert tensors["stop_words_list"].dtype == np.int32
    assert "streaming" not in tensors                                       # the model does not declare it
    assert request.model_name == MODEL


def test_stop_words_list_uses_fastertransformer_ids_and_offsets_rows():
    assert stop_words_tensor([[5], [7, 8]]).tolist() == [[[5, 7, 8], [1, 3, -1]]]
    assert stop_words_tensor([]).tolist() == [[[0], [-1]]]


def test_settings_and_app_env_names_drive_the_request(qwen_dir, tmp_path):
    with TritonStandin(tokenizer=load_tokenizer(qwen_dir)) as server:
        settings = load_settings(path=None, home=tmp_path, environ={
            "APP_LLM_MODEL_ENGINE": "teco", "APP_LLM_IP": "127.0.0.1", "APP_LLM_GRPC_PORT": str(server.port),
            "APP_LLM_MODEL_NAME": MODEL, "APP_LLM_MODEL_VERSION": "1", "APP_LLM_TOKENIZER_PATH": str(qwen_dir),
            "APP_LLM_MAX_NEW_TOKENS": "8", "APP_LLM_TOP_K": "4", "APP_LLM_TEMPERATURE": "0.7",
        })
        client = build_llm_client(settings)
        answer = client.complete([Message("user", "[1] a\n安装 TecoDriver 后再安装 TecoToolKit。")])
        request = server.requests[0]
    assert client.engine == "teco" and client.address == f"127.0.0.1:{server.port}"
    assert request.model_version == "1"
    assert scalar(request.tensors, "request_output_len") == 8
    assert scalar(request.tensors, "runtime_top_k") == 4
    assert scalar(request.tensors, "temperature") == pytest.approx(0.7)
    assert 0 < len(answer) < len(EXPECTED_ANSWER)                           # cut at 8 new tokens
    assert EXPECTED_ANSWER.startswith(answer)


def test_delta_output_from_an_old_server_without_final_flag_ends_at_the_end_id(qwen):
    with TritonStandin(tokenizer=qwen, cumulative=False, final_flag=False) as server:
        started = time.monotonic()
        answer = "".join(generator_for(client_for(server, qwen, cumulative_output=False)).stream(QUESTION, HITS))
        elapsed = time.monotonic() - started
    assert answer == EXPECTED_ANSWER
    assert elapsed < 1.5                               # ended by the end id, not by waiting for a timeout


def test_cumulative_output_without_the_prompt_echo(qwen):
    with TritonStandin(tokenizer=qwen, cumulative=True, echo_prompt=False) as server:
        answer = "".join(generator_for(client_for(server, qwen)).stream(QUESTION, HITS))
    assert answer == EXPECTED_ANSWER


def test_a_tokenizer_json_model_with_its_own_special_ids(hf):
    end_id = hf.encode("<|endoftext|>")[0]
    im_end = hf.encode("<|im_end|>")[0]
    with TritonStandin(tokenizer=hf, end_id=end_id) as server:
        client = client_for(server, hf, sampling=SamplingParams(end_id=end_id))
        pieces = list(generator_for(client).stream(QUESTION, HITS))
        tensors = server.requests[0].tensors
    assert "".join(pieces) == EXPECTED_ANSWER
    assert not any("\ufffd" in piece for piece in pieces)
    assert tensors["stop_words_list"].tolist() == [[[im_end], [1]]]
    assert scalar(tensors, "end_id") == end_id


def test_max_new_tokens_cutting_a_character_never_shows_a_replacement_char(qwen):
    reply = "驱动安装完成😀"
    with TritonStandin(tokenizer=qwen, reply=lambda prompt: reply) as server:
        client = client_for(server, qwen)
        outputs = [client.complete([Message("user", "q")], max_new_tokens=n) for n in range(1, 12)]
    assert all("\ufffd" not in text and reply.startswith(text) for text in outputs)
    assert len(set(outputs)) > 3                       # the cuts fall at different places


# -- ensemble: text in and out -----------------------------------------------------------------------------

@pytest.mark.parametrize("cumulative", [True, False], ids=["cumulative-text", "byte-deltas"])
def test_ensemble_text_in_text_out_with_characters_cut_between_responses(cumulative):
    with TritonStandin(mode="ensemble", cumulative=cumulative, ensemble_piece_bytes=2) as server:
        pieces = list(generator_for(client_for(server, cumulative_output=cumulative)).stream(QUESTION, HITS))
        request = server.requests[0]
    assert "".join(pieces) == EXPECTED_ANSWER
    assert not any("\ufffd" in piece or "<|" in piece for piece in pieces)
    assert request.prompt.startswith("<|im_start|>system\n") and request.prompt.endswith("<|im_start|>assistant\n")
    assert request.tensors["text_input"].dtype == object
    assert request.tensors["stop_words"].reshape(-1).tolist() == [b"<|im_end|>"]
    assert "input_ids" not in request.tensors


# -- model checks and rejected requests --------------------------------------------------------------------

def test_check_passes_and_mode_mismatch_names_the_missing_input(qwen):
    with TritonStandin(tokenizer=qwen) as server:
        client_for(server, qwen).check()
        wrong_mode = client_for(server, mode="ensemble")
        with pytest.raises(LLMRequestRejected, match=r"no input 'text_input'.*input_ids"):
            wrong_mode.check()
        with pytest.raises(LLMRequestRejected, match="text_input"):
            wrong_mode.complete([Message("user", "q")])


def test_unknown_model_is_rejected_with_engine_address_and_model(qwen):
    with TritonStandin(tokenizer=qwen) as server:
        client = client_for(server, qwen, model_name="Qwen-72B")
        with pytest.raises(LLMRequestRejected) as caught:
            client.complete([Message("user", "q")])
    message = str(caught.value)
    assert "'teco'" in message and f"127.0.0.1:{server.port}" in message and "Qwen-72B" in message


def test_standin_model_config_declares_a_decoupled_model(qwen):
    with TritonStandin(tokenizer=qwen) as server:
        with grpcclient.InferenceServerClient(server.address) as raw:
            config = raw.get_model_config(MODEL).config
    assert config.model_transaction_policy.decoupled
    assert {tensor.name for tensor in config.input} >= {"input_ids", "input_lengths", "request_output_len"}


# -- faults -------------------------------------------------------------------------------------------------

def test_refused_connection_is_unavailable_naming_engine_and_address(qwen):
    port = closed_port()
    client = TritonClient("127.0.0.1", port, MODEL, tokenizer=qwen, first_token_timeout_s=2, timeout_s=5, retries=1)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as caught:
        client.complete([Message("user", "q")])
    assert time.monotonic() - started < 4
    assert "'teco'" in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


def test_a_stall_times_out_waiting_for_the_first_token(qwen):
    with TritonStandin(tokenizer=qwen, stall_s=10) as server:
        client = client_for(server, qwen, first_token_timeout_s=0.4, retries=0)
        started = time.monotonic()
        with pytest.raises(LLMTimeout, match="first token within 0.4s"):
            client.complete([Message("user", "q")])
        assert time.monotonic() - started < 2


def test_a_stall_before_the_first_token_is_retried(qwen):
    with TritonStandin(tokenizer=qwen, stall_s=10, stall_requests=1) as server:
        client = client_for(server, qwen, first_token_timeout_s=0.4, retries=1)
        answer = "".join(generator_for(client).stream(QUESTION, HITS))
        assert answer == EXPECTED_ANSWER
        assert len(server.requests) == 2


@pytest.mark.parametrize("break_mode", ["error", "abort"])
def test_a_break_mid_stream_raises_after_the_partial_text_and_is_not_retried(qwen, break_mode):
    with TritonStandin(tokenizer=qwen, break_after=6, break_mode=break_mode) as server:
        client = client_for(server, qwen, retries=2)
        pieces: list[str] = []
        with pytest.raises(LLMStreamBroken, match="mid-answer"):
            for piece in generator_for(client).stream(QUESTION, HITS):
                pieces.append(piece)
        assert pieces and EXPECTED_ANSWER.startswith("".join(pieces))
        assert len(server.requests) == 1                 # text was shown: a retry would repeat it


def test_an_error_before_any_token_is_a_rejection(qwen):
    with TritonStandin(tokenizer=qwen, break_after=0) as server:
        with pytest.raises(LLMRequestRejected, match="generation failed"):
            client_for(server, qwen, retries=2).complete([Message("user", "q")])
        assert len(server.requests) == 1


# -- concurrency and resources -------------------------------------------------------------------------------

def test_concurrent_users_are_streamed_in_parallel(qwen):
    users = 6
    with TritonStandin(tokenizer=qwen, token_delay_s=0.03) as server:
        client = client_for(server, qwen)
        answers = stream_concurrently(lambda: generator_for(client).stream(QUESTION, HITS), users)
    assert answers == [EXPECTED_ANSWER] * users
    assert server.max_active_streams >= users          # all open at once (a finished one may linger)


def test_finished_and_abandoned_streams_leave_no_threads_behind(qwen):
    baseline = threading.active_count()
    with TritonStandin(tokenizer=qwen, token_delay_s=0.01) as server:
        client = client_for(server, qwen)
        for _ in range(3):
            assert "".join(client.stream_chat([Message("user", "[1] a\n安装完成。")]))
        for _ in range(3):                                # the user goes away after the first piece
            stream = client.stream_chat([Message("user", "[1] a\n安装完成。")])
            next(stream)
            stream.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline


# -- fallback and warm-up -------------------------------------------------------------------------------------

def teco_settings(tmp_path: Path, port: int, qwen_dir: Path, **llm):
    options = dict(model_engine="teco", ip="127.0.0.1", grpc_port=port, tokenizer_path=str(qwen_dir),
                   first_token_timeout_s=1.0, timeout_s=5.0, retries=0)
    options.update(llm)
    return make_settings(tmp_path, llm=options)


def test_unreachable_llm_falls_back_to_the_extractive_answer_with_a_notice(tmp_path, qwen_dir):
    port = closed_port()
    generator = build_generator(teco_settings(tmp_path, port, qwen_dir), QuoteTopHit())
    assert isinstance(generator, FallbackGenerator) and generator.engine == "teco"
    stream = generator.stream(QUESTION, HITS)
    assert "".join(stream) == HITS[0].chunk.text
    assert stream.engine == "extractive"
    assert stream.notice is not None and stream.notice.reason == "unavailable" and stream.notice.partial_chars == 0
    assert f"teco at 127.0.0.1:{port}" in stream.notice.message and "extractive answer shown" in stream.notice.message


def test_a_break_mid_answer_appends_the_extractive_answer_after_the_partial_text(tmp_path, qwen_dir, qwen):
    with TritonStandin(tokenizer=qwen, break_after=6) as server:
        stream = build_generator(teco_settings(tmp_path, server.port, qwen_dir), QuoteTopHit()).stream(QUESTION, HITS)
        text = "".join(stream)
    partial, extractive = text.split("\n\n")
    assert partial and EXPECTED_ANSWER.startswith(partial)
    assert extractive == HITS[0].chunk.text
    assert stream.notice.reason == "broken" and stream.notice.partial_chars == len(partial)


def test_without_fallback_the_error_names_engine_and_address(tmp_path, qwen_dir):
    port = closed_port()
    generator = build_generator(teco_settings(tmp_path, port, qwen_dir, fallback_to_extractive=False), QuoteTopHit())
    assert isinstance(generator, LLMGenerator)
    with pytest.raises(LLMError, match=rf"'teco' at 127\.0\.0\.1:{port}"):
        "".join(generator.stream(QUESTION, HITS))


def test_engine_none_uses_the_extractive_generator_itself(tmp_path):
    extractive = QuoteTopHit()
    assert build_generator(make_settings(tmp_path), extractive) is extractive
    assert build_llm_client(make_settings(tmp_path)) is None


def test_warmup_sends_concurrent_requests_and_reports_latency(qwen):
    with TritonStandin(tokenizer=qwen, token_delay_s=0.02) as server:
        client = client_for(server, qwen)
        results = warmup(client, concurrency=4, max_new_tokens=16)
        assert server.max_active_streams >= 4
    assert [r.index for r in results] == [1, 2, 3, 4] and warmup_succeeded(results)
    assert all(r.ok and r.first_token_s is not None and 0 < r.first_token_s <= r.latency_s for r in results)
    assert all(r.text == "根据已知信息无法回答该问题" for r in results)       # no sources in a warm-up prompt
    report = format_warmup_report(results, client.engine, client.address)
    assert report.splitlines()[0] == f"warm-up of teco at {client.address}: 4 concurrent requests"
    assert report.count(" ok ") == 4 and report.splitlines()[-1].startswith("4/4 ok; latency min")


def test_warmup_of_an_unreachable_llm_fails_clearly(qwen):
    port = closed_port()
    client = TritonClient("127.0.0.1", port, MODEL, tokenizer=qwen, retries=0, first_token_timeout_s=2)
    with pytest.raises(LLMError, match=rf"'teco' at 127\.0\.0\.1:{port}: unreachable"):
        warmup(client, concurrency=3)
