"""A QA file asked against a knowledge base: answer containment, honest refusals, sources, speed.

The file is a JSON list of questions written over the documents of the knowledge base:

    [{"id": "fact-01", "question": "...", "answers": ["gold span", ...], "kind": "fact",
      "file": "the document holding the answer", "split": "tune" | "report"}, ...]

A question with no answers is unanswerable from the documents: the right reply is NO_ANSWER. `kind` and
`split` are optional; figures are given for all questions and per kind. Keep the "report" half out of any
tuning: it is what the figures are quoted from (`--split report`).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InputError
from ..types import NO_ANSWER, Answer
from .metrics import contains_answer

HIT_AT = (1, 3, 5)


@dataclass(frozen=True)
class QaQuestion:
    id: str
    question: str
    answers: tuple[str, ...]           # empty: not answerable from the documents
    kind: str = ""
    file: str = ""                     # the document the answer comes from
    split: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


class Asker(Protocol):
    def ask(self, kb: str, question: str) -> Answer: ...


def read_qa_file(path: Path, split: str | None = None) -> list[QaQuestion]:
    """The questions of a QA file, only those of `split` when given. Errors name the file and the entry."""
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"{path}: cannot read the QA file: {error.strerror}") from None
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(records, list):
        raise InputError(f"{path}: a QA file is a JSON list of {{id, question, answers}} objects")
    questions = []
    for position, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("question"), str) \
                or not record["question"].strip():
            raise InputError(f"{path}: entry {position} has no question text")
        answers = record.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(answer, str) for answer in answers):
            raise InputError(f"{path}: entry {position} ({record.get('id', position)}): "
                             f"'answers' must be a list of strings")
        questions.append(QaQuestion(id=str(record.get("id", position)), question=record["question"],
                                    answers=tuple(answers), kind=str(record.get("kind", "")),
                                    file=str(record.get("file", "")), split=str(record.get("split", ""))))
    if split is not None:
        questions = [question for question in questions if question.split == split]
        if not questions:
            raise InputError(f"{path}: no question has split {split!r}")
    return questions


def is_refusal(text: str) -> bool:
    return NO_ANSWER in text


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


@dataclass(frozen=True)
class QaResult:
    question: QaQuestion
    answer: str
    cited_files: tuple[str, ...]
    ms: float

    @property
    def refused(self) -> bool:
        return is_refusal(self.answer)

    @property
    def contains(self) -> bool:
        return self.question.answerable and contains_answer(self.answer, self.question.answers) == 1.0

    def source_rank(self) -> int | None:
        """1-based rank of the first citation from the question's file; None when not cited."""
        for rank, file in enumerate(self.cited_files, start=1):
            if file == self.question.file:
                return rank
        return None


def summarise(results: Sequence[QaResult]) -> dict:
    """containment and false refusals over answerable questions, refusal rate over unanswerable ones,
    source hit@k over answerable questions that name their file, answer length and latency over all."""
    answerable = [result for result in results if result.question.answerable]
    unanswerable = [result for result in results if not result.question.answerable]
    with_file = [result for result in answerable if result.question.file]
    answered_lengths = [len(result.answer) for result in answerable if not result.refused]

    def share(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "containment": share(sum(result.contains for result in answerable), len(answerable)),
        "false_refusal_rate": share(sum(result.refused for result in answerable), len(answerable)),
        "refusal_rate": share(sum(result.refused for result in unanswerable), len(unanswerable)),
        "source_hit_at": {str(k): share(sum(1 for result in with_file
                                            if (rank := result.source_rank()) is not None and rank <= k),
                                        len(with_file)) for k in HIT_AT},
        "median_answer_chars": statistics.median(answered_lengths) if answered_lengths else 0,
        "ms": {"p50": round(_percentile([r.ms for r in results], 0.50), 2),
               "p95": round(_percentile([r.ms for r in results], 0.95), 2)},
    }


def run_qa_benchmark(rag: Asker, kb: str, questions: Sequence[QaQuestion], with_answers: bool = False) -> dict:
    """Ask every question once through `rag.ask`; figures overall and per kind (JSON-ready). The first question
    is asked once more beforehand, untimed: one-time loads (jieba's dictionary, models) are not latency."""
    if questions:
        rag.ask(kb, questions[0].question)
    results = []
    for question in questions:
        started = time.perf_counter()
        answer = rag.ask(kb, question.question)
        elapsed = (time.perf_counter() - started) * 1000
        results.append(QaResult(question, answer.text, tuple(c.file for c in answer.citations), elapsed))
    kinds = sorted({result.question.kind for result in results if result.question.kind})
    report = {"kb": kb, **summarise(results),
              "by_kind": {kind: summarise([r for r in results if r.question.kind == kind]) for kind in kinds}}
    if with_answers:
        report["answers"] = [{"id": r.question.id, "kind": r.question.kind, "question": r.question.question,
                              "answer": r.answer, "contains": r.contains, "refused": r.refused,
                              "source_rank": r.source_rank()} for r in results]
    return report
