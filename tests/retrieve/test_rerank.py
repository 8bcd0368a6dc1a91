"""The coverage reranker on hand-built hits: it needs no model, so these run in milliseconds."""

from __future__ import annotations

from tecorag.config import RerankerSettings
from tecorag.retrieve.rerank import CoverageReranker, build_reranker
from tecorag.types import Chunk, Hit


def hit(chunk_id: str, text: str, score: float, file: str = "teco-ops__README.md",
        heading: tuple[str, ...] = ()) -> Hit:
    return Hit(chunk=Chunk(id=chunk_id, file=file, text=text, index_text=text, position=0, heading_path=heading),
               score=score)


QUESTION = "在 Teco-Ops 项目根目录下，用什么命令构建 TECO 架构的算子库？"


def test_the_passage_holding_more_of_the_question_comes_first_and_scores_are_kept() -> None:
    license_note = hit("license", "请参考项目根目录的 LICENSE 文件。", 0.031)
    workflow = hit("workflow", "Plugin 算子的工作流程如下：在 `teco/plugin/` 目录下实现子类。", 0.030)
    build = hit("build", "在项目根目录下构建算子库（TECO 架构）：\n\n```bash\nbash build.sh --build teco\n```", 0.029)
    reranked = CoverageReranker().rerank(QUESTION, [license_note, workflow, build])
    assert [h.chunk.id for h in reranked][0] == "build"
    assert {h.chunk.id: h.score for h in reranked} == {"license": 0.031, "workflow": 0.030, "build": 0.029}


def test_the_file_name_and_heading_count_as_part_of_the_passage() -> None:
    # "操作系统" is in both; only the deployment guide of Teco-RAG says, by its name, which product it is about.
    example = hit("example", "支持的操作系统\nLinux", 0.033, file="teco-ops__SDAAC_examples_atomic_README.md")
    deployment = hit("deployment", "分类: 操作系统；说明: Linux/Windows/MacOS", 0.030,
                     file="teco-rag__docs_deployment.md", heading=("部署指南", "环境要求"))
    reranked = CoverageReranker().rerank("Teco-RAG 部署支持哪些操作系统？", [example, deployment])
    assert [h.chunk.id for h in reranked] == ["deployment", "example"]


def test_a_question_asking_for_a_port_gets_the_passages_holding_one_first() -> None:
    # The prose holds more of the question's words; only the parameter table holds a port.
    prose = hit("prose", "Teco-RAG 的后端 API 服务默认随 Web UI 一键式启动，也可以容器化启动。", 0.030,
                file="teco-rag__docs_deployment.md")
    table = hit("table", "| 参数名称 | 默认值 | 说明 |\n| --- | --- | --- |\n| api_server_port | 7861 | Api Server端口号 |",
                0.033, file="teco-rag__docs_configuration.md", heading=("参数说明", "server"))
    question = "Teco-RAG 后端 API 服务的默认端口是多少？"
    assert [h.chunk.id for h in CoverageReranker().rerank(question, [prose, table])] == ["table", "prose"]
    assert [h.chunk.id for h in CoverageReranker().rerank(question, [table, prose])] == ["table", "prose"]
    # A question asking for no such kind keeps the order of coverage.
    assert [h.chunk.id for h in CoverageReranker().rerank("如何启动 Teco-RAG 的后端 API 服务？", [prose, table])] \
        == ["prose", "table"]


def test_equal_coverage_keeps_the_retrieval_order_and_hits_past_top_n_stay_behind() -> None:
    same = [hit(f"same-{index}", "项目根目录下构建算子库的命令", 0.03 - index / 1000) for index in range(3)]
    late = hit("late", "在项目根目录下用 bash build.sh 命令构建 TECO 架构的算子库", 0.01)
    reranked = CoverageReranker(top_n=3).rerank(QUESTION, [*same, late])
    assert [h.chunk.id for h in reranked] == ["same-0", "same-1", "same-2", "late"]


def test_a_question_without_content_words_and_a_single_hit_are_left_as_they_are() -> None:
    hits = [hit("a", "甲", 0.2), hit("b", "项目根目录", 0.1)]
    assert CoverageReranker().rerank("是什么？", hits) == hits
    assert CoverageReranker().rerank(QUESTION, hits[:1]) == hits[:1]


def test_coverage_is_the_default_reranker_and_none_turns_it_off() -> None:
    assert isinstance(build_reranker(RerankerSettings()), CoverageReranker)
    assert build_reranker(RerankerSettings(type="coverage", top_n=7)).top_n == 7
    assert build_reranker(RerankerSettings(type="none")) is None
