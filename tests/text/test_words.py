"""text/words.py gives Python jieba's words and IDF without loading Python jieba's tables; these tests load
them (slowly, once) to check that the fast path agrees."""

import json
import random
from pathlib import Path

import jieba
import jieba.analyse
import pytest

from tecorag.text import words

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tfidf():
    jieba.setLogLevel(60)
    return jieba.analyse.default_tfidf


def test_the_copied_defaults_are_jiebas(tfidf):
    assert words.MEDIAN_IDF == tfidf.idf_loader.median_idf
    assert words.STOP_WORDS == frozenset(tfidf.stop_words)


def test_idf_is_jiebas_table(tfidf):
    table = tfidf.idf_loader.idf_freq
    ordered = sorted(table, key=lambda word: word.encode("utf-8"))
    sample = [*ordered[:3], *ordered[-3:], *random.Random(0).sample(ordered, 2000), "部署", "端口", "劳动防护"]
    assert [words.idf(word) for word in sample] == [table[word] for word in sample]
    for unknown in ("Milvus", "不存在的词汇甲乙", "", "a b"):
        assert unknown not in table
        assert words.idf(unknown) == words.MEDIAN_IDF


def test_cut_gives_python_jiebas_words_on_the_benchmark_questions():
    questions = [item["question"] for item in json.loads((ROOT / "benchmarks" / "teco_qa.json").read_text("utf-8"))]
    questions += ["伊维卡·奥利奇为什么会提前结束2010-2011秋季？", "俄罗斯AK-130多用途双管舰砲在海上试了几年？",
                  "rt_spm_malloc 的作用是什么？", "增长了10%还是1.4倍？"]
    for question in questions:
        assert words.cut(question) == jieba.lcut(question), question
