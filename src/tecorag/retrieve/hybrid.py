"""Retrieval: dense + BM25 in Milvus, fused by RRF (or weighted), small-to-big pieces folded into their parents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..config import RetrievalSettings
from ..embed.base import Embedder
from ..normalize import normalize_text
from ..store.milvus import MilvusStore, StoreQuery
from ..text.passage import introduces_next
from ..types import Hit
from .rerank import Reranker


class HybridRetriever:
    def __init__(self, store: MilvusStore, embedder: Embedder, settings: RetrievalSettings,
                 reranker: Reranker | None = None):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker

    def retrieve(self, collection: str, question: str, top_k: int | None = None, mode: str | None = None,
                 score_threshold: float | None = None, rephrasings: Sequence[str] = (),
                 hyde_passage: str | None = None) -> list[Hit]:
        """Best hits first, one per parent chunk. Rephrasings (multi-query) and a HyDE passage, when given, are
        searched too and fused with the question's own results by reciprocal rank."""
        s = self.settings
        mode = mode or s.mode
        top_k = top_k or s.top_k
        threshold = s.score_threshold if score_threshold is None else score_threshold
        # Matched against index texts normalised the same way at ingestion (Kangxi radicals, full-width forms).
        question = normalize_text(question)
        rephrasings = [normalize_text(rephrasing) for rephrasing in rephrasings]
        hyde_passage = normalize_text(hyde_passage) if hyde_passage else hyde_passage
        query_vector = self.embedder.embed_query(question)
        ranked = [self.search(collection, question, query_vector, mode)]
        for rephrasing in rephrasings:
            ranked.append(self.search(collection, rephrasing, self.embedder.embed_query(rephrasing), mode))
        if hyde_passage:
            # A hypothetical answer looks like a passage, so it is embedded as one.
            passage_vector = self.embedder.embed_documents([hyde_passage])[0]
            ranked.append(self.search(collection, hyde_passage, passage_vector, mode))
        hits = ranked[0] if len(ranked) == 1 else reciprocal_rank_fusion(ranked, s.rrf_k)
        if self.reranker is not None:
            hits = self.reranker.rerank(question, hits)
        hits = [hit for hit in hits if hit.score >= threshold]
        return self.continue_introductions(collection, hits[:top_k])

    def continue_introductions(self, collection: str, hits: Sequence[Hit]) -> list[Hit]:
        """A passage that ends by introducing something ("支持以下场景：", "执行以下命令：") gets what it
        introduces: the next chunk of its file under the same heading. The splitter keeps a table, and often a
        list or code block, out of the chunk of the sentence before it; without this the answer (and the LLM's
        context) is the introduction alone. 64 of the 633 chunks of the teco-docs end so."""
        places = [(hit.chunk.file, hit.chunk.position + 1) for hit in hits if introduces_next(hit.chunk.text)]
        if not places:
            return list(hits)
        following = self.store.chunks_at(collection, places)
        continued = []
        for hit in hits:
            # Only introducing hits asked for the place after them: a hit found here is one of them.
            after = following.get((hit.chunk.file, hit.chunk.position + 1))
            if after is not None and after.heading_path[:len(hit.chunk.heading_path)] == hit.chunk.heading_path:
                hit = Hit(chunk=replace(hit.chunk, text=f"{hit.chunk.text}\n\n{after.text}"), score=hit.score)
            continued.append(hit)
        return continued

    def search(self, collection: str, question: str, vector: np.ndarray, mode: str) -> list[Hit]:
        """One route (hybrid, dense or bm25) with a precomputed query vector, folded into parents, unfiltered."""
        s = self.settings
        request = StoreQuery(question=normalize_text(question), vector=vector, mode=mode, fusion=s.fusion,
                             rrf_k=s.rrf_k, dense_weight=s.dense_weight, limit=s.candidates)
        return fold_into_parents(self.store.search(collection, request))


def fold_into_parents(hits: Sequence[Hit]) -> list[Hit]:
    """Keep the best-scoring piece of each parent chunk (hits arrive best first)."""
    seen: set[str] = set()
    folded: list[Hit] = []
    for hit in hits:
        parent = hit.chunk.parent_id or hit.chunk.id
        if parent not in seen:
            seen.add(parent)
            folded.append(hit)
    return folded


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = 60) -> list[Hit]:
    scores: dict[str, float] = {}
    best: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking):
            parent = hit.chunk.parent_id or hit.chunk.id
            scores[parent] = scores.get(parent, 0.0) + 1.0 / (k + rank + 1)
            best.setdefault(parent, hit)
    order = sorted(scores, key=scores.__getitem__, reverse=True)
    return [Hit(chunk=best[parent].chunk, score=scores[parent]) for parent in order]
