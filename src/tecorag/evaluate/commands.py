"""The `predict` and `eval` commands, added to the application's typer app by `register`.

    tecorag predict QUESTIONS.json --kb NAME -o predict.json [--concurrency N] [--resume] [--with-contexts]
    tecorag eval PREDICT.json --gold GOLD.json [--report DIR]
    tecorag eval --compare A.json B.json --gold GOLD.json [--report DIR]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import InputError

if TYPE_CHECKING:   # numpy, matplotlib and the pipeline load when a command runs, not for `tecorag --help`
    from ..embed.base import Embedder
    from .metrics import EvalResult
    from .predict import Answerer


def format_summary(summary: dict) -> str:
    """The headline figures, one per line, for the terminal."""
    lines = [f"questions {summary['questions']} (answered {summary['answered']}, missing {summary['missing']}, "
             f"not in gold {summary['unmatched_predictions']})"]
    for key in ("contains", "f1", "em", "cmrc_average", "rouge_l", "semantic"):
        if summary.get(key) is not None:
            lines.append(f"{key:<14}{summary[key]:.4f}")
    lines.append(f"{'answer chars':<14}mean {summary['answer_chars_mean']:.1f}, "
                 f"median {summary['answer_chars_median']:.0f}")
    retrieval = summary.get("retrieval")
    if retrieval:
        hits = ", ".join(f"@{k} {value:.3f}" for k, value in retrieval["hit_at"].items() if k in ("1", "3", "5", "10"))
        lines.append(f"{'retrieval':<14}{retrieval['questions']} questions, MRR {retrieval['mrr']:.4f}, hit {hits}")
    return "\n".join(lines)


def add_evaluation_commands(app: typer.Typer, rag_factory: Callable[[typer.Context], Answerer],
             embedder_factory: Callable[[typer.Context], Embedder] | None = None) -> None:
    """Add `predict` and `eval` to `app` (whose group turns TecoragError and OSError into clean messages). `rag_factory(ctx)` builds the RAG facade (only when a command needs it);
    `embedder_factory(ctx)` builds the configured embedder for semantic similarity (skipped when None)."""

    @app.command("predict")
    def predict_command(
        ctx: typer.Context,
        questions: Path = typer.Argument(..., help="question file: a JSON list of {id, question}"),
        kb: str = typer.Option(..., "--kb", help="knowledge base to ask"),
        output: Path = typer.Option(Path("predict.json"), "-o", "--output", help="where predict.json goes"),
        concurrency: int = typer.Option(1, "--concurrency", min=1, help="questions in flight at once"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run; answered questions "
                                                              "are not asked again"),
        with_contexts: bool = typer.Option(False, "--with-contexts", help="write the retrieved passages too"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    ) -> None:
        """Answer a question file in batch into predict.json (same order and ids)."""
        from .predict import predict, read_questions

        parsed = read_questions(questions)
        records = predict(rag_factory(ctx), kb, parsed, output, concurrency=concurrency, resume=resume,
                          with_contexts=with_contexts, progress=progress)
        typer.echo(f"wrote {len(records)} answers to {output}")

    @app.command("eval")
    def eval_command(
        ctx: typer.Context,
        prediction: Optional[Path] = typer.Argument(None, help="predict.json to score"),
        gold: Path = typer.Option(..., "--gold", help="gold answers: [{id, answer|answers, sources?}] or a "
                                                       "SQuAD-style CMRC file"),
        report: Optional[Path] = typer.Option(None, "--report", help="write summary.json + report.html (and "
                                                                      "plots) into this directory"),
        compare_files: Optional[tuple[Path, Path]] = typer.Option(
            None, "--compare", help="two predict files to show side by side", metavar="A.json B.json"),
        semantic: bool = typer.Option(True, "--semantic/--no-semantic",
                                      help="semantic similarity with the configured embedder"),
    ) -> None:
        """Score predictions against gold answers (CMRC F1/EM, containment, ROUGE-L, semantic, hit@k/MRR)."""
        from .metrics import evaluate
        from .predict import read_gold, read_predictions
        from .report import compare, format_comparison, write_comparison, write_report

        if (prediction is None) == (compare_files is None):
            raise InputError("give either one PREDICT.json or --compare A.json B.json")
        gold_answers = read_gold(gold)
        embedder = embedder_factory(ctx) if semantic and embedder_factory is not None else None
        if compare_files is None:
            result = evaluate(read_predictions(prediction), gold_answers, embedder)
            typer.echo(format_summary(result.summary))
            if report is not None:
                files = write_report(result, report, sources={"predictions": str(prediction),
                                                              "gold": str(gold)})
                typer.echo(f"report: {files.html}")
            return
        results: list[EvalResult] = [evaluate(read_predictions(path), gold_answers, embedder)
                                     for path in compare_files]
        comparison = compare(results[0], results[1], names=(str(compare_files[0]), str(compare_files[1])))
        typer.echo(format_comparison(comparison))
        if report is not None:
            typer.echo(f"report: {write_comparison(comparison, report)}")
