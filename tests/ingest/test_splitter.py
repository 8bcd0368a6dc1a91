"""ChineseTextSplitter and split_sentences: property tests on random text plus examples on real documents."""

from __future__ import annotations

import hashlib
import re
from itertools import groupby
from pathlib import Path

import pytest
from conftest import make_settings
from hypothesis import given, settings as hyp_settings, strategies as st

from tecorag.config import TextSplitterSettings
from tecorag.errors import ConfigError
from tecorag.ingest.splitter import ChineseTextSplitter, split_sentences
from tecorag.types import Chunk, Section

DOCS = Path("/work/shared/data/teco-docs")
PROPERTY = hyp_settings(max_examples=100, deadline=None)

HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年同工也能下过子说产种面而方后多定行学法所民得经"
WORD_CHARS = HANZI + "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-/"
PUNCTUATION = ["。", "！", "？", "；", "…", "……", "，", "、", ",", ".", "!", "?", ";", "：", "“", "”", "（", "）",
               "《", "》", "\"", "'", " ", ". ", "! ", "? ", "。”", "！）", "\t"]
SOURCES = ["手册.md", "战国无双3.txt"]
PAGES = [None, 1, 2]
HEADINGS = [(), ("第一章",), ("第一章", "1.1 概述")]

words = st.text(alphabet=WORD_CHARS, min_size=1, max_size=40)
tokens = st.one_of(words, words, words, st.sampled_from(PUNCTUATION), st.sampled_from(["\n", "\n\n", "\n\n\n", "  \n"]),
                   st.builds(lambda title: f"## {title}\n", words))
random_text = st.lists(tokens, max_size=120).map("".join)
text_sections = st.lists(
    st.builds(Section, text=random_text, source=st.sampled_from(SOURCES), page=st.sampled_from(PAGES),
              heading_path=st.sampled_from(HEADINGS)),
    min_size=1, max_size=5)


@st.composite
def sizes(draw: st.DrawFn) -> tuple[int, int]:
    chunk_size = draw(st.integers(min_value=10, max_value=300))
    return chunk_size, draw(st.integers(min_value=0, max_value=chunk_size - 1))


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


FENCE_LINE = re.compile(r"^\s*(?:```|~~~)")


def without_fences(text: str) -> str:
    """The text without code-fence lines: the splitter closes and reopens a code block it cuts."""
    return "\n".join(line for line in text.split("\n") if not FENCE_LINE.match(line))


def repaired_fence_chars(text: str) -> int:
    """Characters a chunk may hold beyond the chunk size: a fence line reopening or closing a cut code block."""
    lines = text.split("\n")
    return sum(len(line) + 1 for line in {0: lines[0], -1: lines[-1]}.values() if FENCE_LINE.match(line))


def key(item: Section | Chunk) -> tuple:
    return (item.source if isinstance(item, Section) else item.file), item.page, item.heading_path


def splitter(chunk_size: int = 400, chunk_overlap: int = 50, **more) -> ChineseTextSplitter:
    # model_construct skips the settings' ranges (chunk_size >= 50 for users): the property tests drive the
    # splitter itself with tiny sizes, where its edge cases are.
    return ChineseTextSplitter(TextSplitterSettings.model_construct(chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                                                    **more))


def title_of(chunk: Chunk) -> str:
    return " > ".join((Path(chunk.file).stem.replace("_", " ").strip(), *chunk.heading_path))


def assert_chunks_cover(text: str, chunks: list[Chunk]) -> None:
    """Every chunk is a piece of `text`, they come in order, and together they leave no gap (whitespace aside)."""
    whole = no_space(without_fences(text))
    start, reach = 0, 0
    for chunk in chunks:
        piece = no_space(without_fences(chunk.text))
        assert piece, "empty chunk"
        # The latest occurrence that starts no later than what is covered so far: repeated substrings in
        # random text cannot make a correct split fail this check.
        found = whole.rfind(piece, start, reach + len(piece))
        assert found >= 0, f"chunk {chunk.position} is not a contiguous, in-order piece of the text: {chunk.text!r}"
        start, reach = found, max(reach, found + len(piece))
    assert reach == len(whole), f"text after {whole[reach:reach + 30]!r} is missing from the chunks"


# ---------------------------------------------------------------- split_sentences

@PROPERTY
@given(st.one_of(random_text, st.text()))
def test_split_sentences_concatenates_back_to_the_input(text: str) -> None:
    sentences = split_sentences(text)
    assert "".join(sentences) == text
    assert all(sentence for sentence in sentences)
    assert sum(1 for sentence in sentences if not sentence.strip()) <= (1 if not text.strip() else 0)


@pytest.mark.parametrize("text, expected", [
    ("你好。世界！", ["你好。", "世界！"]),
    ("他说：“走吧。”然后呢？！好", ["他说：“走吧。”", "然后呢？！", "好"]),
    ("等一等……再走；行", ["等一等……", "再走；", "行"]),
    ("Hello world. Next one! Done", ["Hello world. ", "Next one! ", "Done"]),
    ("pi is 3.14 and see example.com now", ["pi is 3.14 and see example.com now"]),
    ('He said "stop." Then left', ['He said "stop." ', "Then left"]),
    ("第一行\n第二行。\n\n第三段", ["第一行\n", "第二行。\n\n", "第三段"]),
    ("  \n开头有空白", ["  \n开头有空白"]),
    ("", []),
])
def test_split_sentences_examples(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


# ---------------------------------------------------------------- text chunks

@PROPERTY
@given(text_sections, sizes())
def test_no_text_is_lost_and_chunks_keep_their_section(sections: list[Section], size: tuple[int, int]) -> None:
    chunks = splitter(*size).split(sections)
    non_empty = [section for section in sections if section.text.strip()]
    section_runs = [(k, "\n".join(s.text for s in run)) for k, run in groupby(non_empty, key=key)]
    chunk_runs = [(k, list(run)) for k, run in groupby(chunks, key=key)]
    # Page and heading path are preserved: chunks come in the sections' order, each run under its own key.
    assert [k for k, _ in chunk_runs] == [k for k, _ in section_runs]
    for (_, text), (_, run) in zip(section_runs, chunk_runs):
        assert_chunks_cover(text, run)


@PROPERTY
@given(text_sections, sizes())
def test_chunks_fit_the_size_and_index_text_carries_the_title(sections: list[Section],
                                                              size: tuple[int, int]) -> None:
    chunk_size, _ = size
    for chunk in splitter(*size).split(sections):
        assert len(chunk.text) <= chunk_size
        assert chunk.text == chunk.text.strip() and chunk.piece == chunk.text
        assert chunk.index_text == f"{title_of(chunk)}\n{chunk.text}"
        assert chunk.parent_id == ""


@st.composite
def labelled_document(draw: st.DrawFn) -> tuple[str, list[str], int, int]:
    """Sentences `第<i>句...` each shorter than the chunk, separated by nothing, spaces or paragraph breaks."""
    chunk_size = draw(st.integers(min_value=20, max_value=200))
    overlap = draw(st.integers(min_value=0, max_value=chunk_size - 1))
    count = draw(st.integers(min_value=1, max_value=40))
    sentences = []
    for index in range(count):
        label = f"第{index}句"
        ending = draw(st.sampled_from(["。", "！", "？”", "；", "……", ". ", "! ", "\n"]))  # ASCII ends need a space
        room = chunk_size - len(label) - len(ending)
        filler = draw(st.text(alphabet=HANZI + "abc，、 ", max_size=max(0, min(room, 60))))
        sentences.append(label + filler + ending)
    separators = draw(st.lists(st.sampled_from(["", " ", "\n", "\n\n"]), min_size=count, max_size=count))
    text = "".join(sentence + separator for sentence, separator in zip(sentences, separators))
    return text, sentences, chunk_size, overlap


@PROPERTY
@given(labelled_document())
def test_every_sentence_appears_in_order_and_overlap_is_whole_trailing_sentences(
        document: tuple[str, list[str], int, int]) -> None:
    text, sentences, chunk_size, overlap = document
    chunks = splitter(chunk_size, overlap).split([Section(text=text, source="doc.txt")])
    labels = [[int(n) for n in re.findall(r"第(\d+)句", chunk.text)] for chunk in chunks]
    for chunk, chunk_labels in zip(chunks, labels):
        assert chunk_labels == list(range(chunk_labels[0], chunk_labels[-1] + 1))
        for label in chunk_labels:                    # sentences are short enough never to be cut
            assert sentences[label].strip() in chunk.text
    assert labels[0][0] == 0 and labels[-1][-1] == len(sentences) - 1
    for previous, following in zip(labels, labels[1:]):
        assert previous[0] < following[0] <= previous[-1] + 1          # progress, no gap
        shared = range(following[0], previous[-1] + 1)
        shared_text = "".join(sentences[label] for label in shared).strip()
        assert len(shared_text) <= overlap


@PROPERTY
@given(text_sections, sizes())
def test_ids_are_unique_stable_and_positions_count_within_each_file(sections: list[Section],
                                                                     size: tuple[int, int]) -> None:
    first = splitter(*size).split(sections)
    second = splitter(*size).split(list(sections))
    assert [chunk.id for chunk in first] == [chunk.id for chunk in second]
    assert len({chunk.id for chunk in first}) == len(first)
    for file, run in groupby(sorted(first, key=lambda c: c.file), key=lambda c: c.file):
        assert [chunk.position for chunk in run] == list(range(sum(1 for c in first if c.file == file)))
    for chunk in first:
        expected = hashlib.sha1(f"{chunk.file}\x1f{chunk.position}\x1f{chunk.index_text}".encode()).hexdigest()
        assert chunk.id == expected[:32]


# ---------------------------------------------------------------- tables

@st.composite
def table(draw: st.DrawFn) -> tuple[Section, list[str], list[str], int]:
    header = ["| 参数名称 | 类型 | 说明 |"]
    if draw(st.booleans()):
        header.append("| :--- | --- | ---: |")
    rows = [f"| r{index}x | {draw(words)} | {draw(st.text(alphabet=HANZI + ' ，。', max_size=80))} |"
            for index in range(draw(st.integers(min_value=0, max_value=30)))]
    chunk_size = draw(st.integers(min_value=10, max_value=400))
    section = Section(text="\n".join(header + rows) + "\n", source="表格.xlsx", page=draw(st.sampled_from(PAGES)),
                      heading_path=("Sheet1",), kind="table")
    return section, header, rows, chunk_size


@PROPERTY
@given(table())
def test_table_chunks_repeat_the_header_and_keep_rows_whole(case: tuple[Section, list[str], list[str], int]) -> None:
    section, header, rows, chunk_size = case
    chunks = splitter(chunk_size, chunk_size // 3).split([section])
    assert chunks, "a table with a header yields at least one chunk"
    seen_rows: list[str] = []
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[:len(header)] == header
        body = lines[len(header):]
        assert all(line in rows for line in body)                 # every line is a whole row
        assert len(chunk.text) <= chunk_size or len(body) <= 1    # the one allowed oversize case
        assert (chunk.page, chunk.heading_path) == (section.page, section.heading_path)
        seen_rows += body
    assert seen_rows == [row.rstrip() for row in rows]           # all rows, in order, none twice


def test_table_is_never_merged_with_neighbouring_text() -> None:
    sections = [Section("前言。", "a.md", heading_path=("表",)),
                Section("名称,值\nx,1\ny,2", "a.md", heading_path=("表",), kind="table"),
                Section("后记。", "a.md", heading_path=("表",))]
    assert [chunk.text for chunk in splitter().split(sections)] == ["前言。", "名称,值\nx,1\ny,2", "后记。"]


# ---------------------------------------------------------------- small-to-big

@PROPERTY
@given(st.one_of(text_sections, table().map(lambda case: [case[0]])), sizes(), st.integers(min_value=5, max_value=120))
def test_small_to_big_children_cover_their_parent(sections: list[Section], size: tuple[int, int],
                                                  smaller: int) -> None:
    parents = splitter(*size).split(sections)
    children = splitter(*size, smaller_chunk_size=smaller).split(sections)
    groups = [list(run) for _, run in groupby(children, key=lambda chunk: chunk.parent_id)]
    assert len({group[0].parent_id for group in groups}) == len(groups)       # a parent's children are adjacent
    assert [group[0].text for group in groups] == [parent.text for parent in parents]
    assert len({chunk.id for chunk in children}) == len(children)
    for group, parent in zip(groups, parents):
        assert all(child.text == parent.text and key(child) == key(parent) for child in group)
        assert all(child.index_text == f"{title_of(child)}\n{child.piece}" for child in group)
        if sections[0].kind == "table":
            header = parent.text.split("\n")[0]
            assert all(child.piece.startswith(header) for child in group)
            body = [line for child in group for line in child.piece.split("\n")[1:]]
            assert set(body) == set(parent.text.split("\n")[1:]) or len(parent.text.split("\n")) == 1
        else:
            assert "".join(no_space(child.piece) for child in group) == no_space(parent.text)
            assert all(len(child.piece) <= smaller for child in group)


# ---------------------------------------------------------------- examples

def test_small_sections_with_the_same_place_share_a_chunk_and_others_do_not() -> None:
    sections = [Section("第一段。", "a.md", page=1, heading_path=("H",)),
                Section("第二段。", "a.md", page=1, heading_path=("H",)),
                Section("第三段。", "a.md", page=2, heading_path=("H",)),
                Section("第四段。", "a.md", page=2, heading_path=("I",)),
                Section("第五段。", "b.md", page=2, heading_path=("I",))]
    chunks = splitter().split(sections)
    assert [(c.text, c.file, c.page, c.heading_path, c.position) for c in chunks] == [
        ("第一段。\n\n第二段。", "a.md", 1, ("H",), 0),
        ("第三段。", "a.md", 2, ("H",), 1),
        ("第四段。", "a.md", 2, ("I",), 2),
        ("第五段。", "b.md", 2, ("I",), 0),
    ]


def test_a_sentence_longer_than_the_chunk_is_cut_at_commas_then_hard() -> None:
    clauses = [f"第{i}个分句包含一些说明文字" for i in range(10)]
    sentence = "，".join(clauses) + "。"
    chunks = splitter(40, 10).split([Section(sentence, "a.txt")])
    assert all(len(chunk.text) <= 40 for chunk in chunks)
    assert all(chunk.text.endswith("，") for chunk in chunks[:-1])           # cut after commas only
    assert "".join(chunk.text for chunk in chunks) == sentence               # clauses are not overlapped

    no_commas = "天" * 95
    assert [len(c.text) for c in splitter(40, 10).split([Section(no_commas, "a.txt")])] == [40, 40, 15]

    english = " ".join(["tokenizer"] * 12)
    pieces = [chunk.text for chunk in splitter(40, 10).split([Section(english, "a.txt")])]
    assert all(len(piece) <= 40 for piece in pieces)
    assert all(set(piece.split()) == {"tokenizer"} for piece in pieces)      # words are not cut in half


def test_paragraph_that_fits_a_chunk_is_not_split_across_chunks() -> None:
    first = "甲" * 30 + "。"
    second = "乙乙乙。" * 5                                                   # 20 characters, 5 sentences
    chunks = splitter(40, 0).split([Section(f"{first}\n\n{second}", "a.txt")])
    assert [chunk.text for chunk in chunks] == [first, second]


def test_overlap_repeats_trailing_sentences_but_not_a_longer_one() -> None:
    text = "短句一。短句二。" + "长" * 30 + "。尾句。"
    chunks = splitter(20, 10).split([Section(text, "a.txt")])
    assert [chunk.text for chunk in chunks] == ["短句一。短句二。", "长" * 20, "长" * 10 + "。尾句。"]
    text = "第一句话。第二句话。第三句话。第四句话。"
    assert [c.text for c in splitter(12, 6).split([Section(text, "a.txt")])] == [
        "第一句话。第二句话。", "第二句话。第三句话。", "第三句话。第四句话。"]


def test_title_is_the_file_name_then_the_heading_path() -> None:
    sections = [Section("吕布是最强的武将。", "战国无双3.txt"),
                Section("安装步骤如下。", "guide.md", heading_path=("部署", "安装"))]
    on = splitter().split(sections)
    assert [chunk.index_text for chunk in on] == ["战国无双3\n吕布是最强的武将。", "guide > 部署 > 安装\n安装步骤如下。"]
    off = splitter(zh_title_enhance=False).split(sections)
    assert [chunk.index_text for chunk in off] == ["吕布是最强的武将。", "安装步骤如下。"]
    assert on[0].id != off[0].id


def test_a_code_block_cut_between_chunks_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})  # 第{i}行" for i in range(12))
    text = f"说明如下：\n\n```python\n{code}\n```\n\n结束了。\n\n```bash\nls\n```"
    chunks = [chunk.text for chunk in splitter(100, 0).split([Section(text, "a.md")])]
    assert len(chunks) == 3
    assert chunks[0].startswith("说明如下：\n\n```python\nprint(0)") and chunks[0].endswith("\n```")
    assert chunks[1].startswith("```python\nprint(5)") and chunks[1].endswith("\n```")
    assert chunks[2] == "```python\nprint(11)  # 第11行\n```\n\n结束了。\n\n```bash\nls\n```"
    # The block's closing fence does not fit the first chunk (62 > 60 characters): the first chunk closes the block
    # itself, and the next, which would start with that closing fence, neither reopens the block nor keeps the fence.
    code = "```sh\n" + "a" * 52 + "\n```\n"
    closing = [chunk.text for chunk in splitter(60, 0).split([Section(code + "说明。" * 12, "b.md")])]
    assert closing == ["```sh\n" + "a" * 52 + "\n```", "说明。" * 12]


def test_whitespace_only_sections_give_no_chunks() -> None:
    assert splitter().split([Section("  \n\n\t", "a.txt"), Section("", "b.txt", kind="table")]) == []


@pytest.mark.parametrize("bad", [dict(chunk_size=0), dict(chunk_overlap=400), dict(chunk_overlap=-1),
                                 dict(smaller_chunk_size=-5)])
def test_invalid_settings_are_a_config_error(bad: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="text_splitter"):          # when the settings load
        make_settings(tmp_path, text_splitter={"chunk_size": 400, "chunk_overlap": 50, **bad})
    with pytest.raises(ConfigError, match="text_splitter"):          # and by the splitter, for settings built in code
        ChineseTextSplitter(TextSplitterSettings.model_construct(**{"chunk_size": 400, "chunk_overlap": 50, **bad}))


def markdown_sections(path: Path) -> list[Section]:
    """A minimal markdown reader written for this test: headings give the path, `|` line blocks are tables."""
    sections: list[Section] = []
    heading: list[tuple[int, str]] = []
    block: list[str] = []
    block_is_table = in_code = False

    def flush(is_table: bool) -> None:
        if "".join(block).strip():
            sections.append(Section("\n".join(block), path.name, heading_path=tuple(t for _, t in heading),
                                    kind="table" if is_table else "text"))
        block.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        in_code ^= line.startswith("```")
        heading_line = None if in_code else re.match(r"(#+)\s+(.*)", line)
        if heading_line:
            flush(block_is_table)
            level = len(heading_line.group(1))
            heading = [(lv, t) for lv, t in heading if lv < level] + [(level, heading_line.group(2).strip())]
            continue
        is_row = line.startswith("|") and not in_code
        if is_row != block_is_table:
            flush(block_is_table)
            block_is_table = is_row
        block.append(line)
    flush(block_is_table)
    return sections


def test_real_markdown_document_with_tables() -> None:
    sections = markdown_sections(DOCS / "teco-rag__docs_configuration.md")
    assert sum(section.kind == "table" for section in sections) >= 8 and len(sections) > 20
    chunks = splitter(400, 50).split(sections)

    # The splitter's units: runs of text sections with one file/page/heading path, and each table alone.
    units = [list(run) for _, run in groupby(sections, key=lambda s: (key(s), s.kind, id(s) if s.kind == "table" else 0))]
    per_unit = [splitter(400, 50).split(unit) for unit in units]
    assert [c.text for c in chunks] == [c.text for unit_chunks in per_unit for c in unit_chunks]
    for unit, unit_chunks in zip(units, per_unit):
        assert all(key(chunk) == key(unit[0]) for chunk in unit_chunks)
        if unit[0].kind == "table":
            lines = unit[0].text.split("\n")
            assert all(chunk.text.split("\n")[:2] == lines[:2] for chunk in unit_chunks)
            assert [row for c in unit_chunks for row in c.text.split("\n")[2:]] == [r.rstrip() for r in lines[2:]]
        else:
            assert all(len(chunk.text) <= 400 + repaired_fence_chars(chunk.text) for chunk in unit_chunks)
            assert_chunks_cover("\n".join(section.text for section in unit), unit_chunks)

    host = [chunk for chunk in chunks if "APP_VECTOR_STORE_HOST" in chunk.text]
    assert len(host) == 1 and host[0].heading_path == ("参数说明", "1 vector_store")
    assert host[0].index_text.startswith("teco-rag docs configuration > 参数说明 > 1 vector_store\n| 参数名称 |")
    small_to_big = [chunk for chunk in chunks if chunk.heading_path[-1:] == ("small-to-big",)]
    title = "teco-rag docs configuration > 参数说明 > 3 text_splitter > MultiVector优化 > small-to-big\n"
    assert small_to_big and all(c.index_text.startswith(title) for c in small_to_big)


def test_real_document_small_to_big() -> None:
    text = (DOCS / "teco-ops__doc_QA.md").read_text(encoding="utf-8")
    section = Section(text, "teco-ops__doc_QA.md")
    parents = splitter(400, 50).split([section])
    children = splitter(400, 50, smaller_chunk_size=100).split([section])
    assert_chunks_cover(text, parents)
    assert len(children) > len(parents) > 5
    assert all(len(child.piece) <= 100 + repaired_fence_chars(child.piece) for child in children)
    assert all(child.index_text.startswith("teco-ops doc QA\n") for child in children)
    question = next(c for c in children if "prototxt 最主要的两个部分" in c.piece)
    assert "prototxt 最主要的两个部分" in question.text and len(question.text) > len(question.piece)
