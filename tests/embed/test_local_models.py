"""Models loaded from local paths: a sentence-transformers embedder and a cross-encoder reranker.

No weights can be downloaded here, so the test builds a tiny BERT with random weights and a character vocabulary,
saves it like any local model directory, and loads it through the real sentence-transformers code paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs the optional extra: pip install -e '.[rerank]'")

from tecorag.config import EmbeddingsSettings, RerankerSettings  # noqa: E402
from tecorag.embed import build_embedder  # noqa: E402
from tecorag.retrieve.rerank import build_reranker  # noqa: E402
from tecorag.types import Chunk, Hit  # noqa: E402

CORPUS = "调用创建销毁内存分配释放员工出差住宿标准每晚不超过五百元设备上的流如何stream sdaa"


def save_tiny_bert(directory: Path, num_labels: int | None = None) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(CORPUS) - {" "})]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    if num_labels:
        config.num_labels = num_labels
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_sentence_transformers_embedder_from_a_local_directory(tmp_path: Path):
    path = save_tiny_bert(tmp_path / "tiny-embedder")
    embedder = build_embedder(EmbeddingsSettings(model_engine="sentence-transformers",
                                                 model_name_or_path=str(path), query_prefix="问："))
    assert embedder.dimension == 32
    vectors = embedder.embed_documents(["员工出差住宿标准", "如何创建stream", "员工出差住宿标准"])
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-6)
    query = embedder.embed_query("员工出差住宿标准")
    assert not np.allclose(query, vectors[0], atol=1e-4)        # the query prefix changes the input


def test_cross_encoder_reranker_orders_by_its_own_scores(tmp_path: Path):
    path = save_tiny_bert(tmp_path / "tiny-reranker", num_labels=1)
    reranker = build_reranker(RerankerSettings(type="cross-encoder", model_name_or_path=str(path), top_n=3))
    texts = ["调用创建销毁", "内存分配释放", "员工出差住宿标准", "每晚不超过五百元"]
    hits = [Hit(Chunk(id=str(i), file=f"{i}.md", text=text, index_text=text, position=0), score=1.0 / (i + 1))
            for i, text in enumerate(texts)]
    reranked = reranker.rerank("如何创建stream", hits)
    assert [hit.chunk.id for hit in reranked][3] == "3"             # beyond top_n the order is kept
    head = reranked[:3]
    assert [hit.score for hit in head] == sorted((hit.score for hit in head), reverse=True)
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(str(path)).predict([("如何创建stream", text) for text in texts[:3]])
    assert sorted(float(s) for s in expected) == pytest.approx(sorted(hit.score for hit in head), rel=1e-4)
    assert build_reranker(RerankerSettings(type="none")) is None
