"""Batch answers and evaluation on CMRC 2018 with the default pipeline, the way a user runs them:
build the knowledge base, `predict` every question into predict.json (with contexts), `eval` it against the gold
answers, write the HTML report. Prints one JSON object (the evaluation summary) on the last line.

    python benchmarks/cmrc_predict.py --home /tmp/cmrc-home --out reports/cmrc [--paragraphs N]

The home keeps the knowledge base and the embedding cache, so a second run embeds nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tecorag.config import load_settings
from tecorag.errors import KnowledgeBaseNotFound
from tecorag.evaluate.cmrc import load_cmrc
from tecorag.evaluate.metrics import evaluate
from tecorag.evaluate.predict import cmrc_to_questions_and_gold, predict, read_predictions
from tecorag.evaluate.report import write_report
from tecorag.rag import RAG

CMRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmrc", type=Path, default=CMRC)
    parser.add_argument("--home", type=Path, default=Path("/tmp/tecorag-cmrc-home"))
    parser.add_argument("--out", type=Path, default=Path("reports/cmrc"))
    parser.add_argument("--paragraphs", type=int, default=None, help="keep the first N paragraphs")
    parser.add_argument("--semantic", action="store_true", help="also score semantic similarity (slow)")
    args = parser.parse_args()

    documents, _ = load_cmrc(args.cmrc, args.paragraphs)
    kept = {document.name for document in documents}
    questions, gold = cmrc_to_questions_and_gold(json.loads(args.cmrc.read_text(encoding="utf-8")))
    kept_ids = {g.id for g in gold if g.sources[0] in kept}
    questions = [q for q in questions if q.id in kept_ids]
    gold = [g for g in gold if g.id in kept_ids]

    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=args.home)
    with RAG(settings) as rag:
        try:
            rag.get_kb("cmrc2018")
        except KnowledgeBaseNotFound:
            rag.create_kb("cmrc2018")
        ingest = rag.ingest("cmrc2018", documents)
        started = time.perf_counter()
        predict(rag, "cmrc2018", questions, args.out / "predict.json", with_contexts=True)
        predict_seconds = time.perf_counter() - started
        embedder = rag.embedder if args.semantic else None
        result = evaluate(read_predictions(args.out / "predict.json"), gold, embedder=embedder)
    write_report(result, args.out, title="CMRC 2018 dev, open-domain, default pipeline",
                 sources={"predictions": str(args.out / "predict.json"), "gold": str(args.cmrc)})
    summary = {"questions": len(questions), "ingest_embedded": ingest.embedded,
               "predict_seconds": round(predict_seconds, 1), **result.summary}
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
