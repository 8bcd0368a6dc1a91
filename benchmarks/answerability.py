"""Fit and check the extractive answerer's answerability model (generate/extractive.py, ANSWERABILITY_WEIGHTS).

Every CMRC 2018 dev question is asked twice through the default pipeline's retrieval: as it is, and with its own
paragraph's hits taken out, so that the passages read are about the same subject (often the same article) but
may lack the answer: a question that sounds answerable and is not. Each is labelled by whether a gold answer is
in the passages the answerer reads. The model is fitted on the first half of the questions (balanced classes,
L2 1.0) and both halves are reported: answers kept on the questions as asked (containment with and without the
check) and the unanswerable ones refused, for the bar in the settings and a few others.
Prints one JSON object on its last line.

    python benchmarks/answerability.py --home /tmp/tecorag-cmrc-home    # the knowledge base of cmrc_predict.py

The home keeps the knowledge base and the embedding cache, so a second run embeds nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.progress import track

from tecorag.config import load_settings
from tecorag.errors import KnowledgeBaseNotFound
from tecorag.evaluate.cmrc import load_cmrc
from tecorag.evaluate.metrics import comparison_form, contains_answer
from tecorag.generate.extractive import ANSWERABILITY_BIAS, ANSWERABILITY_WEIGHTS, answerability
from tecorag.rag import RAG
from tecorag.types import NO_ANSWER

CMRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.json"
BARS = (0.05, 0.1, 0.15, 0.2, 0.3)


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method, classes weighted to count the same; returns weights then bias."""
    rows = np.hstack([features, np.ones((len(features), 1))])
    sample_weight = np.where(labels == 1, len(labels) / (2 * labels.sum()), len(labels) / (2 * (1 - labels).sum()))
    penalty = np.eye(rows.shape[1]) * l2
    penalty[-1, -1] = 0.0                       # the bias is not penalised
    weights = np.zeros(rows.shape[1])
    for _ in range(steps):
        probability = 1.0 / (1.0 + np.exp(-rows @ weights))
        gradient = rows.T @ (sample_weight * (probability - labels)) + penalty @ weights
        hessian = rows.T @ (rows * (sample_weight * probability * (1 - probability))[:, None]) + penalty
        weights -= np.linalg.solve(hessian, gradient)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmrc", type=Path, default=CMRC)
    parser.add_argument("--home", type=Path, default=Path("/tmp/tecorag-cmrc-home"))
    parser.add_argument("--kb", default="cmrc2018")
    parser.add_argument("--paragraphs", type=int, default=None, help="keep the first N paragraphs")
    args = parser.parse_args()

    documents, questions = load_cmrc(args.cmrc, args.paragraphs)
    settings = load_settings(home=args.home)
    records = []
    with RAG(settings) as rag:
        try:
            rag.get_kb(args.kb)
        except KnowledgeBaseNotFound:
            rag.create_kb(args.kb)
        rag.ingest(args.kb, documents)
        answerer = rag.extractive
        bar = answerer.min_answerability
        answerer.min_answerability = 0.0        # answers without the check; the check is applied below
        top_k = settings.retrieval.top_k
        for number, question in enumerate(track(questions, description="questions", transient=True)):
            hits = rag.retrieve(args.kb, question.question, top_k=top_k + 6)
            without_own = [hit for hit in hits if hit.chunk.file != question.document]
            for asked, read in (("as asked", hits[:top_k]), ("without its paragraph", without_own[:top_k])):
                answer = answerer.answer(question.question, read)
                passages = comparison_form(" ".join(hit.chunk.text for hit in read[:answerer.max_hits]))
                records.append({
                    "half": "first" if number < len(questions) // 2 else "second", "asked": asked,
                    "answerable": any(comparison_form(gold) in passages for gold in question.answers),
                    "contains": contains_answer(answer.text, question.answers) == 1.0,
                    "refused": answer.text == NO_ANSWER, "measures": answer.measures})

    names = list(ANSWERABILITY_WEIGHTS)
    scored = [record for record in records if not record["refused"]]
    first = [record for record in scored if record["half"] == "first"]
    fitted = fit_logistic(np.array([[record["measures"][name] for name in names] for record in first]),
                          np.array([float(record["answerable"]) for record in first]))

    def passes(record: dict, threshold: float) -> bool:
        """Answered by the code's model at this bar (refused before the check: never)."""
        return not record["refused"] and answerability(record["measures"]) >= threshold

    def figures(half: str, threshold: float) -> dict:
        asked = [r for r in records if r["half"] == half and r["asked"] == "as asked"]
        lacking = [r for r in records if r["half"] == half and r["asked"] == "without its paragraph"
                   and not r["answerable"]]
        kept = [r["contains"] and passes(r, threshold) for r in asked]
        refused = [not passes(r, threshold) for r in lacking]
        return {"containment": round(sum(kept) / len(asked), 4),
                "unanswerable_refused": round(sum(refused) / len(lacking), 4)}

    report = {
        "questions": len(questions), "unanswerable_without_own_paragraph": sum(
            1 for r in records if r["asked"] == "without its paragraph" and not r["answerable"]),
        "fitted_on_first_half": {"weights": dict(zip(names, np.round(fitted[:-1], 2).tolist())),
                                 "bias": round(float(fitted[-1]), 2)},
        "in_code": {"weights": ANSWERABILITY_WEIGHTS, "bias": ANSWERABILITY_BIAS, "bar": bar},
        "no_check": {half: figures(half, 0.0) for half in ("first", "second")},
        "in_code_by_bar": {str(threshold): {half: figures(half, threshold) for half in ("first", "second")}
                           for threshold in BARS},
    }
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
