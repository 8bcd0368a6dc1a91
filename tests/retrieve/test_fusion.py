"""Fusion, small-to-big folding and retrieval modes on hand-built hits (milliseconds), plus weighted fusion inside
the real Milvus Lite, where it runs, on hand-built vectors from the deterministic test embedder."""

from __future__ import annotations

import numpy as np
import pytest

from standins.hash_embedder import HashEmbedder
from tecorag.config import RetrievalSettings
from tecorag.retrieve.hybrid import HybridRetriever, fold_into_parents, reciprocal_rank_fusion
from tecorag.store.milvus import MilvusStore, StoreQuery
from tecorag.types import Chunk, Hit


def chunk(chunk_id: str, parent: str = "", text: str = "") -> Chunk:
    return Chunk(id=chunk_id, file=f"{parent or chunk_id}.md", text=text or chunk_id, index_text=text or chunk_id,
                 position=0, parent_id=parent)


def hits(*ids_and_scores: tuple[str, float], parents: dict[str, str] | None = None) -> list[Hit]:
    parents = parents or {}
    return [Hit(chunk=chunk(chunk_id, parents.get(chunk_id, "")), score=score) for chunk_id, score in ids_and_scores]


def ids(result: list[Hit]) -> list[str]:
    return [hit.chunk.id for hit in result]


def test_rrf_rewards_agreement_between_rankings():
    first = hits(("a", 9), ("b", 8), ("c", 7))
    second = hits(("c", 5), ("b", 4), ("d", 3))
    fused = reciprocal_rank_fusion([first, second], k=60)
    # c: 1/63 + 1/61 = 0.032267 edges out b: 1/62 + 1/62 = 0.032258; each beats a one-list hit
    assert ids(fused) == ["c", "b", "a", "d"]
    assert [hit.score for hit in fused] == pytest.approx([1 / 63 + 1 / 61, 2 / 62, 1 / 61, 1 / 63])


def test_rrf_k_sets_how_much_the_top_rank_counts():
    first = hits(("a", 1), ("b", 1), ("c", 1))
    second = hits(("c", 1), ("d", 1), ("e", 1))
    fused = reciprocal_rank_fusion([first, second], k=0)
    assert ids(fused)[:2] == ["c", "a"]
    assert [hit.score for hit in fused[:2]] == pytest.approx([1 / 3 + 1 / 1, 1 / 1])


def test_rrf_counts_each_parent_once_per_ranking_position():
    pieces = hits(("p1-a", 3), ("p2-a", 2), ("p1-b", 1), parents={"p1-a": "p1", "p1-b": "p1", "p2-a": "p2"})
    fused = reciprocal_rank_fusion([pieces], k=60)
    assert [hit.chunk.parent_id for hit in fused] == ["p1", "p2"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)


def test_folding_keeps_the_best_piece_of_each_parent_in_order():
    pieces = hits(("p1-b", 0.9), ("p2-a", 0.8), ("p1-a", 0.7), ("solo", 0.6), ("p2-b", 0.5),
                  parents={"p1-a": "p1", "p1-b": "p1", "p2-a": "p2", "p2-b": "p2"})
    assert ids(fold_into_parents(pieces)) == ["p1-b", "p2-a", "solo"]


class HandBuiltStore:
    """A store stand-in that answers each route with a fixed ranking and records what it was asked."""

    def __init__(self, rankings: dict[str, list[Hit]]):
        self.rankings = rankings
        self.queries: list[StoreQuery] = []

    def search(self, collection: str, query: StoreQuery) -> list[Hit]:
        self.queries.append(query)
        return self.rankings[query.mode]


def retriever_over(rankings: dict[str, list[Hit]], **settings) -> tuple[HybridRetriever, HandBuiltStore]:
    store = HandBuiltStore(rankings)
    return HybridRetriever(store, HashEmbedder(), RetrievalSettings(**settings)), store


def test_dense_only_mode_asks_the_dense_route_alone_and_folds_its_hits():
    dense = hits(("p1-a", 0.9), ("p1-b", 0.8), ("p2-a", 0.7), parents={"p1-a": "p1", "p1-b": "p1", "p2-a": "p2"})
    retriever, store = retriever_over({"dense": dense, "hybrid": hits(("wrong", 1.0))}, mode="dense")
    result = retriever.retrieve("collection", "问题")
    assert ids(result) == ["p1-a", "p2-a"]
    assert [query.mode for query in store.queries] == ["dense"]
    assert store.queries[0].vector.shape == (64,) and np.isclose(np.linalg.norm(store.queries[0].vector), 1.0)


def test_threshold_and_top_k_apply_after_fusion():
    ranking = hits(("a", 0.9), ("b", 0.5), ("c", 0.4), ("d", 0.1))
    retriever, _store = retriever_over({"hybrid": ranking}, top_k=2, score_threshold=0.45)
    assert ids(retriever.retrieve("collection", "问题")) == ["a", "b"]
    assert ids(retriever.retrieve("collection", "问题", score_threshold=0.0, top_k=3)) == ["a", "b", "c"]


def test_rephrasings_are_searched_and_fused_by_rank():
    retriever, store = retriever_over({"hybrid": hits(("a", 0.9), ("b", 0.8))})
    store.rankings = {"hybrid": hits(("a", 0.9), ("b", 0.8))}
    answers = iter([hits(("a", 0.9), ("b", 0.8)), hits(("b", 0.9), ("c", 0.8)), hits(("b", 0.9), ("a", 0.8))])
    store.search = lambda collection, query: (store.queries.append(query), next(answers))[1]
    result = retriever.retrieve("collection", "原问题", rephrasings=["改写一", "改写二"])
    assert [query.question for query in store.queries] == ["原问题", "改写一", "改写二"]
    assert ids(result) == ["b", "a", "c"]


# -- weighted fusion, inside Milvus Lite (the real engine fuses; the vectors are hand-built) -----------------------

@pytest.fixture(scope="module")
def milvus(tmp_path_factory) -> MilvusStore:
    store = MilvusStore(str(tmp_path_factory.mktemp("milvus") / "fusion.db"), dimension=64)
    yield store
    store.close()


def test_weighted_fusion_follows_the_dense_weight(milvus: MilvusStore):
    embedder = HashEmbedder()
    question = "昇腾 编译器 版本"
    lexical = chunk("lexical", text="昇腾 编译器 版本 说明 昇腾 编译器 版本")   # every question word, twice
    semantic = chunk("semantic", text="完全不同的文字内容")
    # The dense side is rigged: `semantic` gets the question's own vector, `lexical` its opposite.
    vectors = np.stack([-embedder.embed_query(question), embedder.embed_query(question)])
    milvus.ensure_collection("fusion")
    milvus.replace_file("fusion", "file", [lexical, semantic], vectors)

    def first(dense_weight: float) -> str:
        query = StoreQuery(question=question, vector=embedder.embed_query(question), mode="hybrid",
                           fusion="weighted", dense_weight=dense_weight, limit=5)
        return milvus.search("fusion", query)[0].chunk.id

    assert first(dense_weight=1.0) == "semantic"
    assert first(dense_weight=0.0) == "lexical"
    dense_only = milvus.search("fusion", StoreQuery(question=question, vector=embedder.embed_query(question),
                                                    mode="dense", limit=5))
    assert ids(dense_only) == ["semantic", "lexical"]


# -- what an introducing passage introduces, from the real Milvus Lite ---------------------------------------------

def test_a_passage_ending_in_an_introduction_is_continued_by_the_next_chunk_under_its_heading(milvus: MilvusStore):
    """The splitter keeps a table out of the chunk of the sentence introducing it; retrieval joins them again."""
    heading = ("算子设计", "计算分支")
    file = 'op "flash".md'                                  # a quote in the name: the filter must escape it
    chunks = [
        Chunk(id="intro", file=file, text="支持以下场景：", index_text="支持以下场景：", position=0,
              heading_path=heading),
        Chunk(id="table", file=file, text="场景 | 说明\n场景: prefill；说明: 首轮全量计算\n场景: decode；说明: 逐 token 推理",
              index_text="场景 prefill decode", position=1, heading_path=heading),
        Chunk(id="closing", file=file, text="性能数据如下：", index_text="性能数据如下：", position=2,
              heading_path=heading),
        Chunk(id="elsewhere", file=file, text="另一节的内容。", index_text="另一节的内容。", position=3,
              heading_path=("算子设计", "优化设计")),
        Chunk(id="plain", file="other.md", text="一段完整的话。", index_text="一段完整的话。", position=0),
    ]
    milvus.ensure_collection("continuation")
    milvus.replace_file("continuation", "op", chunks[:4], HashEmbedder().embed_documents([c.text for c in chunks[:4]]))
    milvus.replace_file("continuation", "other", chunks[4:], HashEmbedder().embed_documents([chunks[4].text]))
    retriever = HybridRetriever(milvus, HashEmbedder(), RetrievalSettings())

    continued = retriever.continue_introductions("continuation", [Hit(chunk, 1.0) for chunk in chunks])
    texts = {hit.chunk.id: hit.chunk.text for hit in continued}
    assert texts["intro"] == f"支持以下场景：\n\n{chunks[1].text}"
    assert texts["closing"] == "性能数据如下："            # the next chunk is under another heading: not its list
    assert texts["table"] == chunks[1].text and texts["plain"] == "一段完整的话。"
    assert [hit.chunk.id for hit in continued] == [chunk.id for chunk in chunks]
    assert continued[0].chunk.index_text == "支持以下场景：" and continued[0].score == 1.0
