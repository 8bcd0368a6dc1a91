"""Batch answers: a question file becomes predict.json; the gold and prediction file formats.

Question file: `[{"id": 1, "question": "..."}]`. predict.json: `[{"id", "question", "answer"}]` in the
same order with the same ids (UTF-8, ensure_ascii=False), plus `"contexts": [{"file", "page", "text",
"score"}]` with --with-contexts. Gold file: `[{"id", "question"?, "answer" | "answers": [...],
"sources"?: [file names], "passages"?: [texts]}]`, or a SQuAD-style CMRC file (converted).

Resume: every answer is appended to `<out>.partial` (JSON lines, flushed and fsynced one by one) as it
arrives; a resumed run reads that journal and asks only the questions it lacks. The final file is
written to a temporary file and moved into place, then the journal is removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError
from ..types import Answer
from .metrics import Context, GoldAnswer, Prediction

JOURNAL_FORMAT = "tecorag-predict-journal/1"


@dataclass(frozen=True)
class Question:
    id: int | str
    question: str


class Answerer(Protocol):
    """What predict needs from the RAG facade."""

    def ask(self, kb: str, question: str) -> Answer: ...


# ---------------------------------------------------------------- reading files


def _load_json(path: Path, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: {what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None


def _item_label(index: int, item: Any) -> str:
    if isinstance(item, dict) and "id" in item:
        return f"item {index} (id {item['id']!r})"
    return f"item {index}"


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) and value.strip() != "") or (isinstance(value, int) and not isinstance(value, bool))


def _check_items(data: Any, source: str, what: str) -> list[dict]:
    """The file must be a JSON list of objects, each with a usable, unique `id`."""
    if not isinstance(data, list):
        raise InputError(f"{source}: {what} must be a JSON list of objects, got {type(data).__name__}")
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        label = _item_label(index, item)
        if not isinstance(item, dict):
            raise InputError(f"{source}: {label} must be an object, got {type(item).__name__}")
        if "id" not in item:
            raise InputError(f"{source}: {label} has no 'id'")
        if not _valid_id(item["id"]):
            raise InputError(f"{source}: {label}: 'id' must be an integer or a non-empty string")
        key = str(item["id"])
        if key in seen:
            raise InputError(f"{source}: {label}: id repeats item {seen[key]}")
        seen[key] = index
    return data


def _text_field(item: dict, name: str, source: str, label: str, required: bool = True) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(f"{source}: {label}: '{name}' must be a non-empty string")
    return value


def parse_questions(data: Any, source: str = "questions") -> list[Question]:
    items = _check_items(data, source, "the question file")
    return [Question(id=item["id"], question=_text_field(item, "question", source, _item_label(index, item)))
            for index, item in enumerate(items)]


def read_questions(path: str | Path) -> list[Question]:
    """A question file `[{"id": ..., "question": "..."}]`; InputError names the first offending item."""
    return parse_questions(_load_json(Path(path), "question file"), str(path))


def _string_list(item: dict, name: str, source: str, label: str) -> tuple[str, ...]:
    value = item.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise InputError(f"{source}: {label}: '{name}' must be a string or a list of strings")
    return tuple(value)


def parse_gold(data: Any, source: str = "gold") -> list[GoldAnswer]:
    if isinstance(data, dict) and "data" in data:
        return cmrc_to_questions_and_gold(data)[1]
    items = _check_items(data, source, "the gold file")
    if not items:
        raise InputError(f"{source}: the gold file has no questions")
    gold = []
    for index, item in enumerate(items):
        label = _item_label(index, item)
        answers = _string_list(item, "answers", source, label) + _string_list(item, "answer", source, label)
        if not any(answer.strip() for answer in answers):
            raise InputError(f"{source}: {label}: needs 'answer' or 'answers' with at least one non-empty string")
        gold.append(GoldAnswer(
            id=item["id"],
            question=_text_field(item, "question", source, label, required=False),
            answers=answers,
            sources=_string_list(item, "sources", source, label),
            passages=_string_list(item, "passages", source, label),
        ))
    return gold


def read_gold(path: str | Path) -> list[GoldAnswer]:
    """A gold file (see the module docstring) or a SQuAD-style CMRC 2018 file."""
    return parse_gold(_load_json(Path(path), "gold file"), str(path))


def _parse_contexts(value: Any, source: str, label: str) -> tuple[Context, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(f"{source}: {label}: 'contexts' must be a list")
    contexts = []
    for position, context in enumerate(value):
        if not isinstance(context, dict) or not isinstance(context.get("text", ""), str):
            raise InputError(f"{source}: {label}: context {position} must be an object with a 'text' string")
        page = context.get("page")
        score = context.get("score")
        contexts.append(Context(
            file=str(context.get("file", "")),
            page=page if isinstance(page, int) and not isinstance(page, bool) else None,
            text=context.get("text", ""),
            score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else 0.0,
        ))
    return tuple(contexts)


def parse_predictions(data: Any, source: str = "predictions") -> list[Prediction]:
    items = _check_items(data, source, "the prediction file")
    predictions = []
    for index, item in enumerate(items):
        label = _item_label(index, item)
        answer = item.get("answer")
        if not isinstance(answer, str):
            raise InputError(f"{source}: {label}: 'answer' must be a string")
        predictions.append(Prediction(
            id=item["id"],
            question=_text_field(item, "question", source, label, required=False),
            answer=answer,
            contexts=_parse_contexts(item.get("contexts"), source, label),
        ))
    return predictions


def read_predictions(path: str | Path) -> list[Prediction]:
    """A predict.json file as written by `predict`."""
    return parse_predictions(_load_json(Path(path), "prediction file"), str(path))


# ---------------------------------------------------------------- CMRC 2018


def cmrc_document_name(article: dict, index: int) -> str:
    """The document name of paragraph `index` of a SQuAD-style article: `{paragraph id}.md`, where the id is
    the paragraph's own `id` when it has one, else `{article id}-{index}`. The CMRC benchmark names the
    documents it ingests with this function, so gold sources and ingested files agree."""
    paragraph = article["paragraphs"][index]
    paragraph_id = paragraph.get("id") or f"{article.get('id', 'article')}-{index}"
    return f"{paragraph_id}.md"


def cmrc_to_questions_and_gold(cmrc_json: dict) -> tuple[list[Question], list[GoldAnswer]]:
    """Questions and gold answers of a SQuAD-style CMRC file; each gold source is its paragraph's document."""
    if not isinstance(cmrc_json, dict) or not isinstance(cmrc_json.get("data"), list):
        raise InputError("a CMRC file is a JSON object with a 'data' list of articles")
    questions: list[Question] = []
    gold: list[GoldAnswer] = []
    for article in cmrc_json["data"]:
        for index, paragraph in enumerate(article.get("paragraphs", [])):
            document = cmrc_document_name(article, index)
            for qa in paragraph.get("qas", []):
                questions.append(Question(id=qa["id"], question=qa["question"]))
                gold.append(GoldAnswer(
                    id=qa["id"],
                    question=qa["question"],
                    answers=tuple(dict.fromkeys(answer["text"] for answer in qa.get("answers", []))),
                    sources=(document,),
                ))
    return questions, gold


# ---------------------------------------------------------------- predict


def answer_record(question: Question, answer: Answer, with_contexts: bool) -> dict:
    """One predict.json entry. Contexts are the retrieved hits in rank order (what retrieval metrics rank),
    or the citations when the answer carries no hits."""
    record: dict[str, Any] = {"id": question.id, "question": question.question, "answer": answer.text}
    if with_contexts:
        if answer.hits:
            record["contexts"] = [{"file": hit.chunk.file, "page": hit.chunk.page, "text": hit.chunk.text,
                                   "score": float(hit.score)} for hit in answer.hits]
        else:
            record["contexts"] = [{"file": citation.file, "page": citation.page, "text": citation.text,
                                   "score": float(citation.score)} for citation in answer.citations]
    return record


def journal_path(out_path: str | Path) -> Path:
    return Path(f"{out_path}.partial")


class _Journal:
    """Append-only JSON lines: a header naming the run, then one answer record per line."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self._file = None

    def read(self, questions: Sequence[Question]) -> dict[str, dict]:
        """Answers already journaled, by id. A torn last line (the process died mid-write) is cut off."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        complete = raw[:raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        lines = [line for line in complete.decode("utf-8").split("\n") if line]
        if not lines:
            return {}
        try:
            header, *records = [json.loads(line) for line in lines]
        except json.JSONDecodeError as exc:
            raise InputError(f"{self.path}: journal is corrupt ({exc.msg}); delete it or run without --resume") \
                from None
        if header != self.header:
            raise InputError(f"{self.path}: journal was written by a different run ({header}, now {self.header}); "
                             "delete it or run without --resume")
        asked = {str(question.id): question.question for question in questions}
        done: dict[str, dict] = {}
        for record in records:
            key = str(record.get("id"))
            if asked.get(key) != record.get("question"):
                raise InputError(f"{self.path}: journaled question {record.get('id')!r} is not in the question "
                                 "file as written; delete the journal or run without --resume")
            done[key] = record
        return done

    def open(self, fresh: bool) -> None:
        self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")
        if fresh or self._file.tell() == 0:
            self.append(self.header)

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            json.dump(data, handle, ensure_ascii=False, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _progress_bar(enabled: bool, total: int, done: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    progress = Progress(TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)
    task = progress.add_task("answering", total=total, completed=done)
    return progress, task


def predict(rag: Answerer, kb: str, questions: Sequence[Question], out_path: str | Path,
            concurrency: int = 1, resume: bool = False, with_contexts: bool = False,
            progress: bool = True) -> list[dict]:
    """Answer every question with `rag.ask(kb, question)` and write predict.json; returns its entries.

    With `resume`, questions already in the journal of an interrupted run are not asked again; without
    it any old journal is discarded. Up to `concurrency` questions are in flight at once (threads: the
    time goes to the LLM engine). A failing question stops the run; the journal keeps what was answered.
    """
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    out_path = Path(out_path)
    if len({str(question.id) for question in questions}) != len(questions):
        raise InputError("question ids must be unique")
    journal = _Journal(journal_path(out_path), {"format": JOURNAL_FORMAT, "kb": kb, "with_contexts": with_contexts})
    done = journal.read(questions) if resume else {}
    pending = [question for question in questions if str(question.id) not in done]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    journal.open(fresh=not resume)
    bar, task = _progress_bar(progress, len(questions), len(done))
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict")
    in_flight: dict[Future, Question] = {}
    queue = iter(pending)
    try:
        with bar:
            # Keep at most `concurrency` questions submitted, so an interrupted run has asked little ahead.
            while True:
                while len(in_flight) < concurrency and (question := next(queue, None)) is not None:
                    in_flight[executor.submit(rag.ask, kb, question.question)] = question
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    question = in_flight.pop(future)
                    record = answer_record(question, future.result(), with_contexts)
                    journal.append(record)
                    done[str(question.id)] = record
                    bar.advance(task)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        journal.close()

    records = [{**done[str(question.id)], "id": question.id} for question in questions]
    write_json_atomically(out_path, records)
    journal.path.unlink(missing_ok=True)
    return records
