"""Real BPE tokenizers trained in the test on a small Chinese/English corpus, written in the two on-disk
formats tecorag loads: `qwen.tiktoken` (byte-level BPE ranks, base64 + rank per line) and `tokenizer.json`
(a `tokenizers` byte-level BPE). Small vocabularies leave many Chinese characters split over several byte
tokens, which is exactly what incremental detokenization has to get right."""

from __future__ import annotations

import base64
import collections
import re
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = """\
太初元碁的加速卡环境安装包由基础软件、加速库及训推框架组成，包括 TecoDriver 和 TecoToolKit 两个安装包。
安装 TecoToolKit 之前，请检查环境是否满足需求（MLNX_OFED、MPI 等），然后获取软件安装包并配置环境变量。
TecoInferenceEngine 是大模型推理框架，通过 Triton Inference Server 部署 Qwen-7B-Chat 推理服务。
开启并发推理功能后，第一次调用需发送不少于 FT_CB_BATCH_SIZE 的并发请求进行预热。
The knowledge base answers questions about Teco products: install the driver, then the toolkit.
Milvus stores the vectors; BM25 and dense retrieval are fused before the answer is generated.
根据已知信息，简洁和专业地回答问题。如果无法从中得到答案，请说根据已知信息无法回答该问题。
"""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_byte_bpe_ranks(corpus: str, merges: int) -> dict[bytes, int]:
    """Classic byte-level BPE: start from the 256 bytes, repeatedly merge the most frequent adjacent pair."""
    ranks = {bytes([value]): value for value in range(256)}
    words = [[bytes([b]) for b in word.encode("utf-8")] for word in re.findall(r"\w+|\S", corpus)]
    for _ in range(merges):
        pairs: collections.Counter[tuple[bytes, bytes]] = collections.Counter()
        for word in words:
            pairs.update(zip(word, word[1:]))
        if not pairs:
            break
        (left, right), _count = pairs.most_common(1)[0]
        merged = left + right
        ranks.setdefault(merged, len(ranks))
        for index, word in enumerate(words):
            out: list[bytes] = []
            position = 0
            while position < len(word):
                if position + 1 < len(word) and word[position] == left and word[position + 1] == right:
                    out.append(merged)
                    position += 2
                else:
                    out.append(word[position])
                    position += 1
            words[index] = out
    return ranks


def write_qwen_tiktoken(directory: Path, merges: int = 120) -> Path:
    """A model directory holding `qwen.tiktoken` trained on CORPUS."""
    directory.mkdir(parents=True, exist_ok=True)
    ranks = train_byte_bpe_ranks(CORPUS, merges)
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])]
    (directory / "qwen.tiktoken").write_text("\n".join(lines) + "\n", encoding="ascii")
    return directory


def write_hf_tokenizer_json(directory: Path, vocab_size: int = 420) -> Path:
    """A model directory holding `tokenizer.json`: a byte-level BPE trained on CORPUS with ChatML specials."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory
