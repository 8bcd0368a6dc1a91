"""Rerankers: reorder the fused hits before the answer is made from the first few.

`coverage` (the default) needs no model: it prefers the passages that hold more of the question's words.
`cross-encoder` scores each (question, passage) pair with a local sentence-transformers `CrossEncoder`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from ..normalize import normalize_text
from ..registry import Registry
# The answerer reads a question and a passage the same way: what is asked, and how much of it a passage holds.
from ..text.question import MASKED_TYPES, coverage, passage_context, question_profile, text_holds_type
from ..types import Hit

if TYPE_CHECKING:
    from ..config import RerankerSettings


class Reranker(Protocol):
    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        ...


class CrossEncoderReranker:
    """Rescores the first `top_n` hits with a cross-encoder; the rest keep their order after them."""

    def __init__(self, model_path: str, top_n: int = 20):
        if not Path(model_path).is_dir():
            raise ConfigError(f"reranker model directory not found: {model_path} (models are local paths)")
        from sentence_transformers import CrossEncoder  # heavy (torch): only when this reranker is built

        self._model = CrossEncoder(model_path, local_files_only=True)
        self.top_n = top_n

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        head, tail = list(hits[:self.top_n]), list(hits[self.top_n:])
        if not head:
            return []
        scores = self._model.predict([(question, hit.chunk.text) for hit in head])
        rescored = sorted((Hit(chunk=hit.chunk, score=float(score)) for hit, score in zip(head, scores)),
                          key=lambda hit: hit.score, reverse=True)
        return rescored + tail


class CoverageReranker:
    """Reorders the first `top_n` hits by how much of the question each one holds: the IDF-weighted share of the
    question's words (jieba, question and stop words left out) found in the passage's file name, heading path
    and text, or the share of its character bigrams and Latin names when that is higher (jieba sometimes cuts a
    question wrongly), less `rank_weight` * log(1 + retrieval rank). The rest keep their order after them; scores are
    kept (the reranker only reorders).

    Why: reciprocal-rank fusion gives the first passages of technical documents nearly equal scores (0.033,
    0.032, 0.031...) and ranks a two-line passage sharing two common words with the question ("请参考项目根目录
    的 LICENSE 文件") beside the one that states the answer ("在项目根目录下构建算子库（TECO 架构）"), and the answer
    is read from the first few. The rank term keeps retrieval's order between passages that hold the same words.
    `rank_weight` was chosen on the tune half of benchmarks/teco_qa.json (see benchmarks/README.md).

    A question asking for a kind of thing with a reliable cue (a port, version, path, web address or command)
    gets the passages holding one first: "后端 API 服务的默认端口是多少" is answered by the parameter table's row
    "api_server_port | 7861", which holds fewer of the question's words than the prose about starting the
    service, and the answerer reads the first three."""

    def __init__(self, top_n: int = 20, rank_weight: float = 0.05):
        self.top_n = top_n
        self.rank_weight = rank_weight

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        profile = question_profile(question)
        head, tail = list(hits[:self.top_n]), list(hits[self.top_n:])
        if not (profile.words or profile.pieces) or len(head) < 2:
            return head + tail

        def score(rank: int, hit: Hit) -> float:
            covered = coverage(profile.words, profile.pieces, passage_context(hit))
            return covered - self.rank_weight * math.log(1 + rank)

        typed = profile.asked_type if profile.asked_type in MASKED_TYPES else None
        lacking = [typed is not None and not text_holds_type(typed, normalize_text(hit.chunk.text)) for hit in head]
        order = sorted(range(len(head)), key=lambda rank: (lacking[rank], -score(rank, head[rank]), rank))
        return [head[rank] for rank in order] + tail


def coverage_from_settings(settings: RerankerSettings) -> CoverageReranker:
    return CoverageReranker(top_n=settings.top_n)


def cross_encoder_from_settings(settings: RerankerSettings) -> CrossEncoderReranker:
    if not settings.model_name_or_path:
        raise ConfigError("reranker.model_name_or_path (APP_RERANKER_MODEL_NAME_OR_PATH) is required for the "
                          "cross-encoder reranker: a local model directory")
    return CrossEncoderReranker(settings.model_name_or_path, top_n=settings.top_n)


NO_RERANKER = "none"
RERANKERS = Registry("reranker", entry_point_group="tecorag.rerankers")
RERANKERS.register(NO_RERANKER, lambda settings: None)
RERANKERS.register("coverage", f"{__name__}:coverage_from_settings")
RERANKERS.register("cross-encoder", f"{__name__}:cross_encoder_from_settings", extra="rerank")


def build_reranker(settings: RerankerSettings) -> Reranker | None:
    """The configured reranker, or None for `none`."""
    return RERANKERS.build(settings.type, settings)
