"""The `tecorag` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from . import quiet
from .errors import TecoragError

if TYPE_CHECKING:            # the settings (pydantic: 0.2 s of imports) load when a command needs them, not for --help
    from .config import Settings

console = Console(stderr=True)


class CleanErrors(TyperGroup):
    """The one place where domain errors become a clean message and exit code 1, for every command (serve and
    bench included): a TecoragError already says what failed and what to do; an OSError names its file."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TecoragError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            console.print(f"[red]error:[/red] {where}{error.strerror or error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


app = typer.Typer(cls=CleanErrors, add_completion=False, no_args_is_help=True,
                  help="Knowledge-base question answering (RAG).")
kb_app = typer.Typer(no_args_is_help=True, help="Create, list and delete knowledge bases.")
app.add_typer(kb_app, name="kb")
keys_app = typer.Typer(no_args_is_help=True, help="API keys limited to knowledge bases (stored hashed in the catalog).")
app.add_typer(keys_app, name="keys")


def settings_from_context(ctx: typer.Context) -> Settings:
    from .config import load_settings

    return load_settings(ctx.find_root().params.get("config"))


def open_rag(ctx: typer.Context, *, store_first: bool = False):
    """The RAG for a command. store_first: a command that will search starts opening the vector store at once, in
    a thread, so that Milvus's start-up overlaps the imports and the model load (a cold `ask`: ~0.5 s less)."""
    settings = settings_from_context(ctx)
    embedder = store = None
    if store_first:
        from .embed import build_embedder
        from .store.milvus import MilvusStore

        embedder = build_embedder(settings.embeddings)
        store = MilvusStore.from_settings(settings, embedder.dimension, background=True)
    from .rag import RAG

    return RAG(settings, embedder=embedder, store=store)


@app.callback()
def global_options(
        config: Optional[Path] = typer.Option(None, "--config", "-c",
                                              help="YAML settings file (default ./tecorag.yaml if present)"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party warnings and log lines")):
    """Settings come from the YAML file, then APP_* environment variables; data lives under TECORAG_HOME."""
    quiet.configure(verbose)


@kb_app.command("create")
def kb_create(ctx: typer.Context, name: str, description: str = typer.Option("", help="Free text")):
    with open_rag(ctx) as rag:
        rag.create_kb(name, description)
    console.print(f"created knowledge base [bold]{name}[/bold]")


@kb_app.command("list")
def kb_list(ctx: typer.Context):
    with open_rag(ctx) as rag:
        kbs = rag.list_kbs()
    table = Table("name", "files", "chunks", "created")
    for kb in kbs:
        table.add_row(kb.name, str(kb.file_count), str(kb.chunk_count), kb.created_at.strftime("%Y-%m-%d %H:%M"))
    Console().print(table)


@kb_app.command("delete")
def kb_delete(ctx: typer.Context, name: str):
    with open_rag(ctx) as rag:
        rag.delete_kb(name)
    console.print(f"deleted knowledge base [bold]{name}[/bold]")


@app.command()
def ingest(ctx: typer.Context, paths: list[Path] = typer.Argument(..., exists=True, help="Files or folders"),
           kb: str = typer.Option(..., "--kb", help="Knowledge base (created if missing)"),
           sync: bool = typer.Option(False, "--sync", help="Also remove files of the KB that are not in PATHS"),
           force: bool = typer.Option(False, "--force", help="Re-index files even if unchanged")):
    """Index documents; unchanged files are skipped, changed ones replaced, bad ones reported by name."""
    from .errors import KnowledgeBaseNotFound
    from .ingest.pipeline import documents_from_paths

    with open_rag(ctx) as rag:
        try:
            rag.get_kb(kb)
        except KnowledgeBaseNotFound:
            rag.create_kb(kb)
            console.print(f"created knowledge base [bold]{kb}[/bold]")
        documents = documents_from_paths(paths)
        with _progress() as progress:
            task = progress.add_task("ingest", total=len(documents) + (1 if sync else 0))
            report = rag.ingest(kb, documents, sync=sync, force=force,
                                progress=lambda event: progress.update(
                                    task, completed=event.files_done, description=event.file[-40:]))
    console.print(f"indexed {len(report.indexed)}, unchanged {len(report.skipped)}, failed {len(report.failed)}, "
                  f"removed {len(report.removed)}; {report.chunks} chunks, {report.embedded} embedded, "
                  f"{report.seconds:.1f}s")
    for name, error in report.failed.items():
        console.print(f"[red]failed[/red] {error}")
    if report.failed and not report.indexed and not report.skipped:
        raise typer.Exit(code=1)


@app.command()
def files(ctx: typer.Context, kb: str = typer.Option(..., "--kb")):
    """Status of every file in a knowledge base, errors included."""
    with open_rag(ctx) as rag:
        records = rag.list_files(kb)
    table = Table("file", "status", "chunks", "size", "updated", "error")
    for record in records:
        table.add_row(record.name, record.status, str(record.chunk_count), str(record.size),
                      record.updated_at.strftime("%Y-%m-%d %H:%M"), record.error or "")
    Console().print(table)


@app.command()
def ask(ctx: typer.Context, question: str, kb: str = typer.Option(..., "--kb"),
        top_k: Optional[int] = typer.Option(None, "--top-k", help="Passages to retrieve"),
        as_json: bool = typer.Option(False, "--json", help="Print answer, citations and timings as JSON")):
    """Answer a question from a knowledge base, with its sources."""
    with open_rag(ctx, store_first=True) as rag:
        rag.warm(kb)
        if as_json:
            answer = rag.ask(kb, question, top_k=top_k)
            print(json.dumps(answer_to_json(answer), ensure_ascii=False, indent=2))
            return
        out = Console()
        answer = None
        for event in rag.stream(kb, question, top_k=top_k):
            if event.kind == "delta":
                out.print(event.text, end="", soft_wrap=True, highlight=False)
            elif event.kind == "done":
                answer = event.answer
        out.print()
    if answer.notice:
        console.print(f"[yellow]{answer.notice}[/yellow]")
    for number, citation in enumerate(answer.citations, start=1):
        where = f" p.{citation.page}" if citation.page else ""
        heading = f" > {citation.heading}" if citation.heading else ""
        console.print(f"[dim][{number}] {citation.file}{where}{heading} ({citation.score:.3f})[/dim]")


def answer_to_json(answer) -> dict:
    return {
        "question": answer.question,
        "answer": answer.text,
        "engine": answer.engine,
        "notice": answer.notice,
        "citations": [{"file": c.file, "page": c.page, "heading": c.heading, "score": round(c.score, 4),
                       "text": c.text} for c in answer.citations],
        "timings_ms": {name: round(value, 2) for name, value in answer.timings_ms.items()},
    }


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on public data sets (print JSON).")
app.add_typer(bench_app, name="bench")


@bench_app.command("cmrc")
def bench_cmrc(ctx: typer.Context, path: Path = typer.Argument(..., exists=True, help="cmrc2018_dev.json"),
               paragraphs: Optional[int] = typer.Option(None, "--paragraphs", help="Keep the first N paragraphs"),
               as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout")):
    """Open-domain CMRC 2018: every paragraph one document, every question asked against the whole KB."""
    from .evaluate.cmrc import run_cmrc_benchmark

    result = run_cmrc_benchmark(settings_from_context(ctx), path, paragraphs=paragraphs, show_progress=True)
    if not as_json:
        console.print_json(json.dumps(result, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False))


@bench_app.command("qa")
def bench_qa(ctx: typer.Context, path: Path = typer.Argument(..., help="QA file: [{id, question, answers, kind?, "
                                                                     "file?, split?}]"),
             kb: str = typer.Option(..., "--kb", help="Knowledge base holding the documents"),
             split: Optional[str] = typer.Option(None, "--split", help="Only the questions of this split "
                                                                      "(e.g. report)"),
             with_answers: bool = typer.Option(False, "--answers", help="Include every answer in the JSON"),
             as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout")):
    """A QA file against a knowledge base: containment, refusals, false refusals, source hit@k, length, p95 ms."""
    from .evaluate.qa_bench import read_qa_file, run_qa_benchmark

    questions = read_qa_file(path, split)
    with open_rag(ctx) as rag:
        rag.get_kb(kb)  # a missing knowledge base is an error before any question is asked
        result = run_qa_benchmark(rag, kb, questions, with_answers=with_answers)
    if not as_json:
        console.print_json(json.dumps(result, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False))


@app.command("warmup")
def warmup_command(ctx: typer.Context, concurrency: int = typer.Option(1, "--concurrency", "-n", min=1,
                                                               help="Concurrent requests (>= FT_CB_BATCH_SIZE)"),
           question: str = typer.Option("介绍一下太初元碁这家公司", "--question"),
           max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens")):
    """Send N concurrent requests to the configured LLM (TecoInferenceEngine continuous batching needs them)."""
    from .generate.factory import build_llm_client
    from .warmup import format_warmup_report, warmup as run_warmup, warmup_succeeded

    client = build_llm_client(settings_from_context(ctx))
    if client is None:
        raise TecoragError("no LLM configured (llm.model_engine is 'none'): nothing to warm up")
    results = run_warmup(client, concurrency, question, max_new_tokens)
    Console().print(format_warmup_report(results, client.engine, client.address))
    if not warmup_succeeded(results):
        raise typer.Exit(code=1)


@keys_app.command("create")
def keys_create(ctx: typer.Context,
                kbs: list[str] = typer.Option(..., "--kb", help="A knowledge base the key may use (repeatable)"),
                read_only: bool = typer.Option(False, "--read-only", help="Ask and search only; no uploads or "
                                                                          "deletions"),
                label: str = typer.Option("", "--label", help="Who or what the key is for")):
    """Create a key and print it once (only its hash is kept): send it as 'Authorization: Bearer <key>'."""
    from .errors import InputError
    from .rag import normalize_kb_name, validate_name

    names = [validate_name(normalize_kb_name(name)) for name in kbs]
    if not names:
        raise InputError("name at least one knowledge base with --kb")
    with open_rag(ctx) as rag:
        key, plain = rag.catalog.create_api_key(names, can_write=not read_only, label=label)
    access = "read-only" if read_only else "read-write"
    console.print(f"key {key.id} ({access}) for {', '.join(names)}; it is shown only now:")
    typer.echo(plain)


@keys_app.command("list")
def keys_list(ctx: typer.Context):
    """Every scoped key: id, knowledge bases, access, and whether it is revoked (never the key itself)."""
    with open_rag(ctx) as rag:
        keys = rag.catalog.list_api_keys()
    table = Table("id", "label", "knowledge bases", "access", "created", "revoked")
    for key in keys:
        table.add_row(key.id, key.label, ", ".join(key.knowledge_bases), "read-write" if key.can_write else "read-only",
                      key.created_at.strftime("%Y-%m-%d %H:%M"),
                      key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str = typer.Argument(..., help="The id shown by 'keys list'")):
    """Revoke a key: it stops working at once, on every server using this catalog."""
    from .errors import InputError

    with open_rag(ctx) as rag:
        if not rag.catalog.revoke_api_key(key_id):
            raise InputError(f"no active key with id {key_id} (see 'tecorag keys list')")
    console.print(f"revoked key {key_id}")


def _embedder_for(ctx: typer.Context):
    from .embed import build_embedder

    return build_embedder(settings_from_context(ctx).embeddings)


def _register_subcommands() -> None:
    from .evaluate.commands import add_evaluation_commands
    from .server.commands import add_serve_command

    add_evaluation_commands(app, open_rag, _embedder_for)
    add_serve_command(app)


_register_subcommands()

def main() -> None:
    """The `tecorag` program: run the command, then leave without Python's interpreter teardown, which takes
    0.3–0.45 s once pymilvus, pandas and SQLAlchemy are loaded (a third of a cold `ask`'s budget). Every command
    closes what it opened before it returns; only the output streams are left to flush."""
    try:
        app()
        code = 0
    except SystemExit as exit_:
        if isinstance(exit_.code, int) or exit_.code is None:
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
