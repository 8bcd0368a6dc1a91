"""The model's own tokenizer (qwen.tiktoken / tokenizer.json) and incremental detokenization: streaming ids
one at a time over mixed Chinese/ASCII never emits a broken character."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from standins.small_tokenizers import write_hf_tokenizer_json, write_qwen_tiktoken
from tecorag.errors import ConfigError
from tecorag.generate.tokenizer import (QWEN_SPECIAL_START_ID, HFTokenizer, TiktokenTokenizer, estimate_tokens,
                                        load_tokenizer)

MIXED = "太初 TecoToolKit 安装流程：1. 检测环境（MLNX_OFED、MPI）。2. 配置 PATH=$MPI_HOME/bin 😀 完成！"


@pytest.fixture(scope="module")
def qwen_tokenizer(tmp_path_factory) -> TiktokenTokenizer:
    tokenizer = load_tokenizer(write_qwen_tiktoken(tmp_path_factory.mktemp("qwen")))
    assert isinstance(tokenizer, TiktokenTokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory) -> HFTokenizer:
    tokenizer = load_tokenizer(write_hf_tokenizer_json(tmp_path_factory.mktemp("hf")))
    assert isinstance(tokenizer, HFTokenizer)
    return tokenizer


def stream_one_id_at_a_time(tokenizer, ids: list[int]) -> list[str]:
    detokenizer = tokenizer.detokenizer()
    pieces = [detokenizer.push([token_id]) for token_id in ids]
    pieces.append(detokenizer.finish())
    return pieces


def test_qwen_tiktoken_has_qwen_special_tokens_at_their_fixed_ids(qwen_tokenizer):
    ids = qwen_tokenizer.encode("<|im_start|>user\n你好<|im_end|>\n<|endoftext|>")
    assert ids[0] == QWEN_SPECIAL_START_ID + 1                      # <|im_start|> = 151644
    assert QWEN_SPECIAL_START_ID + 2 in ids                          # <|im_end|> = 151645
    assert ids[-1] == QWEN_SPECIAL_START_ID == 151643                # <|endoftext|>, Qwen's end id
    assert qwen_tokenizer.decode(ids) == "<|im_start|>user\n你好<|im_end|>\n<|endoftext|>"


def test_counting_treats_special_token_strings_as_ordinary_text(qwen_tokenizer):
    assert len(qwen_tokenizer.encode("<|im_end|>")) == 1
    assert qwen_tokenizer.count("<|im_end|>") > 1
    assert qwen_tokenizer.count(MIXED) == len(qwen_tokenizer.encode(MIXED))


@pytest.mark.parametrize("which", ["qwen_tokenizer", "hf_tokenizer"])
def test_streaming_mixed_text_never_emits_a_broken_character(which, request):
    tokenizer = request.getfixturevalue(which)
    ids = tokenizer.encode(MIXED)
    pieces = stream_one_id_at_a_time(tokenizer, ids)
    assert "".join(pieces) == MIXED
    assert all("\ufffd" not in piece for piece in pieces)
    # The small vocabulary splits characters over several tokens: some pushes must have held text back,
    # otherwise this test would not exercise the boundary case at all.
    assert len(ids) > len([p for p in pieces if p])
    assert any(len(tokenizer.decode([token_id])) and "\ufffd" in tokenizer.decode([token_id]) for token_id in ids)


@pytest.mark.parametrize("which", ["qwen_tokenizer", "hf_tokenizer"])
def test_a_stream_cut_inside_a_character_drops_the_incomplete_character(which, request):
    tokenizer = request.getfixturevalue(which)
    text = "安装完成"
    ids = tokenizer.encode(text)
    # Find the longest prefix of ids that ends inside a character.
    cut = next(n for n in range(len(ids) - 1, 0, -1) if tokenizer.decode(ids[:n]).endswith("\ufffd"))
    text_out = "".join(stream_one_id_at_a_time(tokenizer, ids[:cut]))
    assert "\ufffd" not in text_out
    assert text.startswith(text_out) and len(text_out) < len(text)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("安装环境加速卡推理服务并发预热abcXYZ019 _-.,，。！😀\n")), max_size=40),
       chunk=st.integers(min_value=1, max_value=4))
def test_any_mixed_text_in_any_chunking_round_trips_without_replacement_chars(qwen_tokenizer, hf_tokenizer, text, chunk):
    for tokenizer in (qwen_tokenizer, hf_tokenizer):
        ids = tokenizer.encode(text)
        detokenizer = tokenizer.detokenizer()
        pieces = [detokenizer.push(ids[i:i + chunk]) for i in range(0, len(ids), chunk)] + [detokenizer.finish()]
        assert "".join(pieces) == text
        assert not any("\ufffd" in piece for piece in pieces)


def test_load_tokenizer_accepts_the_file_itself(tmp_path):
    directory = write_qwen_tiktoken(tmp_path / "model")
    tokenizer = load_tokenizer(directory / "qwen.tiktoken")
    assert tokenizer.decode(tokenizer.encode("加速卡")) == "加速卡"


def test_load_tokenizer_prefers_qwen_tiktoken_when_both_exist(tmp_path):
    directory = write_qwen_tiktoken(tmp_path / "model")
    write_hf_tokenizer_json(directory)
    assert isinstance(load_tokenizer(directory), TiktokenTokenizer)


def test_missing_tokenizer_is_a_config_error_that_says_what_was_looked_for(tmp_path):
    with pytest.raises(ConfigError, match=r"qwen\.tiktoken.*tokenizer\.json"):
        load_tokenizer(tmp_path)


def test_corrupt_tiktoken_file_is_a_config_error(tmp_path):
    (tmp_path / "qwen.tiktoken").write_text("not-base64-and-no-rank\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_tokenizer(tmp_path)


def test_estimate_counts_cjk_characters_one_each_and_ascii_by_four():
    assert estimate_tokens("加速卡") == 3
    assert estimate_tokens("abcdefgh") == 2
    assert estimate_tokens("加速 abcd") == 3
    assert estimate_tokens("") == 0
