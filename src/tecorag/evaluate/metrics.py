"""Answer and retrieval metrics against gold answers. Pure functions: parsed records in, scores out.

CMRC 2018 F1 and EM follow the official evaluation script (squad-style-data/cmrc2018_evaluate.py, v5):
- `cmrc_mixed_segmentation`: lower-case and strip, drop the script's own punctuation list, then every CJK
  ideograph (U+4E00..U+9FA5) and every listed punctuation mark is one token, and each run of anything
  else is tokenised with NLTK's word tokenizer (English words, numbers).
- F1 uses the longest common *substring* of the two token lists (the script's `find_lcs`), max over golds.
- EM compares the strings after `cmrc_remove_punctuation` (lower, strip, drop the list), any gold.
Only one deviation: the script calls `nltk.word_tokenize` with sentence splitting, which needs the
separately downloaded Punkt model; here runs are tokenised as one line (`preserve_line=True`), which
differs only when a non-Chinese run holds several sentences (a period inside stays on its word).

The other answer metrics work on `comparison_form` (NFKC, case-folded, without any punctuation or
whitespace, Chinese or ASCII): containment of any gold string, and ROUGE-L F1 on characters.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embed.base import Embedder

# Exactly the official script's list. '……' is one two-character entry, so a single '…' is never
# matched by the per-character test: kept as is, to score like the script.
CMRC_PUNCTUATION = ('-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
                    '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
                    '「', '」', '（', '）', '－', '～', '『', '』')
_CMRC_CJK = re.compile(r"[\u4e00-\u9fa5]")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


# ---------------------------------------------------------------- records evaluated


@dataclass(frozen=True)
class Context:
    """A retrieved passage written beside an answer (predict --with-contexts), best first."""

    file: str
    page: int | None
    text: str
    score: float


@dataclass(frozen=True)
class Prediction:
    id: int | str
    question: str
    answer: str
    contexts: tuple[Context, ...] | None = None    # None: the run did not write contexts


@dataclass(frozen=True)
class GoldAnswer:
    id: int | str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...] = ()                  # file names the answer comes from
    passages: tuple[str, ...] = ()                 # passage texts the answer comes from


@dataclass
class QuestionScores:
    """One question's scores. `semantic` is None without an embedder; `retrieval_rank` is the 1-based
    rank of the first relevant context, 0 when none is relevant, None when retrieval was not measurable."""

    id: int | str
    question: str
    answer: str
    gold_answers: tuple[str, ...]
    contexts: tuple[Context, ...]
    answered: bool                                 # False: the prediction file had no entry for this id
    contains: float
    f1: float
    em: float
    rouge_l: float
    semantic: float | None = None
    retrieval_rank: int | None = None


@dataclass
class EvalResult:
    rows: list[QuestionScores]
    summary: dict = field(default_factory=dict)


# ---------------------------------------------------------------- CMRC 2018 official F1 / EM


def cmrc_mixed_segmentation(text: str, remove_punctuation: bool = False) -> list[str]:
    """The official `mixed_segmentation`: CJK characters one by one, other runs through NLTK."""
    from nltk.tokenize import word_tokenize

    text = text.lower().strip()
    tokens: list[str] = []
    pending = ""
    for char in text:
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if _CMRC_CJK.match(char) or char in CMRC_PUNCTUATION:
            if pending:
                tokens.extend(word_tokenize(pending, preserve_line=True))
                pending = ""
            tokens.append(char)
        else:
            pending += char
    if pending:
        tokens.extend(word_tokenize(pending, preserve_line=True))
    return tokens


def cmrc_remove_punctuation(text: str) -> str:
    """The official `remove_punctuation`: lower-case, strip, drop the listed marks (inner spaces stay)."""
    return "".join(char for char in text.lower().strip() if char not in CMRC_PUNCTUATION)


def longest_common_substring_length(first: Sequence, second: Sequence) -> int:
    """Length of the longest contiguous run shared by both sequences (the script's `find_lcs`)."""
    best = 0
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0] * (len(second) + 1)
        for j, other in enumerate(second):
            if item == other:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(prediction: str, answers: Sequence[str]) -> float:
    """Official CMRC F1 in [0, 1] (the script reports it x100), max over the gold answers."""
    prediction_tokens = cmrc_mixed_segmentation(prediction, remove_punctuation=True)
    scores = [0.0]
    for answer in answers:
        answer_tokens = cmrc_mixed_segmentation(answer, remove_punctuation=True)
        common = longest_common_substring_length(answer_tokens, prediction_tokens)
        if common == 0:
            continue
        precision = common / len(prediction_tokens)
        recall = common / len(answer_tokens)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """Official CMRC EM: 1.0 when the prediction equals any gold answer after `cmrc_remove_punctuation`."""
    normalised = cmrc_remove_punctuation(prediction)
    return 1.0 if any(cmrc_remove_punctuation(answer) == normalised for answer in answers) else 0.0


# ---------------------------------------------------------------- containment, ROUGE-L


def comparison_form(text: str) -> str:
    """NFKC, case-folded, with all whitespace and punctuation (Unicode P*, ASCII punctuation) removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(char for char in text
                   if not (char.isspace() or char in _ASCII_PUNCTUATION
                           or unicodedata.category(char).startswith("P")))


def contains_answer(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction contains any non-empty normalised gold answer."""
    normalised = comparison_form(prediction)
    golds = [comparison_form(answer) for answer in answers]
    return 1.0 if any(gold and gold in normalised for gold in golds) else 0.0


def longest_common_subsequence_length(first: Sequence, second: Sequence) -> int:
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0] * (len(second) + 1)
        for j, other in enumerate(second):
            current[j + 1] = previous[j] + 1 if item == other else max(previous[j + 1], current[j])
        previous = current
    return previous[-1]


def rouge_l(prediction: str, answers: Sequence[str]) -> float:
    """ROUGE-L F-measure (beta = 1) on the characters of the normalised texts, max over the gold answers."""
    predicted = comparison_form(prediction)
    best = 0.0
    for answer in answers:
        gold = comparison_form(answer)
        common = longest_common_subsequence_length(predicted, gold)
        if common == 0:
            continue
        precision = common / len(predicted)
        recall = common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ---------------------------------------------------------------- semantic similarity


def semantic_similarities(embedder: Embedder, predictions: Sequence[str],
                          answers: Sequence[Sequence[str]]) -> list[float]:
    """Per question: the highest cosine between the prediction's vector and any gold answer's vector.

    Every distinct text is embedded once, in one batch. An empty prediction scores 0.0 rather than the
    similarity of an empty string's vector, which is not meaningful.
    """
    texts = sorted({text for text in predictions if text.strip()}
                   | {text for golds in answers for text in golds if text.strip()})
    if not texts:
        return [0.0] * len(predictions)
    vectors = embedder.embed_documents(texts)
    row_of = {text: row for row, text in enumerate(texts)}
    scores = []
    for prediction, golds in zip(predictions, answers):
        gold_rows = [row_of[gold] for gold in golds if gold.strip()]
        if not prediction.strip() or not gold_rows:
            scores.append(0.0)
            continue
        cosines = vectors[gold_rows] @ vectors[row_of[prediction]]
        scores.append(float(np.clip(cosines.max(), -1.0, 1.0)))
    return scores


# ---------------------------------------------------------------- retrieval


def first_relevant_rank(contexts: Sequence[Context], sources: Sequence[str], passages: Sequence[str]) -> int:
    """1-based rank of the first context from a gold source file or overlapping a gold passage; 0 if none.

    A context matches a gold passage when either contains the other after `comparison_form`, so a chunk
    cut from the gold paragraph and a context holding the whole paragraph both count.
    """
    source_names = set(sources)
    gold_passages = [comparison_form(passage) for passage in passages]
    for rank, context in enumerate(contexts, start=1):
        if context.file in source_names:
            return rank
        text = comparison_form(context.text)
        if text and any(gold and (gold in text or text in gold) for gold in gold_passages):
            return rank
    return 0


def hit_at_k(ranks: Sequence[int], k: int) -> float:
    """Fraction of questions whose first relevant context is within the top k (rank 0 = never)."""
    return sum(1 for rank in ranks if 0 < rank <= k) / len(ranks) if ranks else 0.0


def mean_reciprocal_rank(ranks: Sequence[int]) -> float:
    return sum(1.0 / rank for rank in ranks if rank > 0) / len(ranks) if ranks else 0.0


# ---------------------------------------------------------------- evaluate


def _key(identifier: int | str) -> str:
    # Question files written by hand mix 1 and "1"; they name the same question.
    return str(identifier)


def _unique(texts: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(texts))


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def evaluate(predictions: Sequence[Prediction], gold: Sequence[GoldAnswer],
             embedder: Embedder | None = None) -> EvalResult:
    """Score every gold question (in gold order). A gold id with no prediction scores 0 on every answer
    metric, as in the official CMRC script; predictions whose id is not in the gold are counted, not scored.
    Retrieval metrics cover the questions whose gold names sources or passages and whose prediction has
    contexts; the summary holds them only when there is at least one such question.
    """
    by_id = {_key(prediction.id): prediction for prediction in predictions}
    rows: list[QuestionScores] = []
    for item in gold:
        golds = _unique(item.answers)
        prediction = by_id.get(_key(item.id))
        answer = prediction.answer if prediction else ""
        contexts = prediction.contexts if prediction and prediction.contexts is not None else None
        measurable = contexts is not None and bool(item.sources or item.passages)
        rows.append(QuestionScores(
            id=item.id,
            question=item.question or (prediction.question if prediction else ""),
            answer=answer,
            gold_answers=golds,
            contexts=contexts or (),
            answered=prediction is not None,
            contains=contains_answer(answer, golds),
            f1=cmrc_f1(answer, golds),
            em=cmrc_exact_match(answer, golds),
            rouge_l=rouge_l(answer, golds),
            retrieval_rank=first_relevant_rank(contexts, item.sources, item.passages) if measurable else None,
        ))
    if embedder is not None:
        for row, score in zip(rows, semantic_similarities(
                embedder, [row.answer for row in rows], [row.gold_answers for row in rows])):
            row.semantic = score
    gold_ids = {_key(item.id) for item in gold}
    return EvalResult(rows=rows, summary=summarise(rows, unmatched=sum(
        1 for prediction in predictions if _key(prediction.id) not in gold_ids)))


def summarise(rows: Sequence[QuestionScores], unmatched: int = 0) -> dict:
    """Means over the rows; hit@k for every k up to the longest context list (at most 20)."""
    summary: dict = {
        "questions": len(rows),
        "answered": sum(1 for row in rows if row.answered),
        "missing": sum(1 for row in rows if not row.answered),
        "unmatched_predictions": unmatched,
        "contains": _mean([row.contains for row in rows]),
        "f1": _mean([row.f1 for row in rows]),
        "em": _mean([row.em for row in rows]),
        "cmrc_average": _mean([(row.f1 + row.em) / 2 for row in rows]),
        "rouge_l": _mean([row.rouge_l for row in rows]),
        "semantic": None,
        "answer_chars_mean": _mean([len(row.answer) for row in rows]),
        "answer_chars_median": float(np.median([len(row.answer) for row in rows])) if rows else 0.0,
        "retrieval": None,
    }
    semantic = [row.semantic for row in rows if row.semantic is not None]
    if semantic:
        summary["semantic"] = _mean(semantic)
    measured = [row for row in rows if row.retrieval_rank is not None]
    if measured:
        ranks = [row.retrieval_rank or 0 for row in measured]
        deepest = max(1, min(20, max(len(row.contexts) for row in measured)))
        summary["retrieval"] = {
            "questions": len(measured),
            "mrr": mean_reciprocal_rank(ranks),
            "hit_at": {str(k): hit_at_k(ranks, k) for k in range(1, deepest + 1)},
        }
    return summary
