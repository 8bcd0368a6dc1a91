"""Evaluation reports: DIR/summary.json and DIR/report.html with PNG plots; side-by-side comparison of two runs.

Plots are drawn on `matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global backend switch).
Chinese text needs a CJK font: the first installed one of `CJK_FONTS` is used (Debian: fonts-noto-cjk or
fonts-wqy-microhei); without one, plot labels fall back to ASCII and the HTML still shows the text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .metrics import EvalResult, QuestionScores

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "Droid Sans Fallback", "AR PL UMing CN", "AR PL UKai CN")
ANSWER_METRICS = ("contains", "em", "f1", "rouge_l", "semantic")
METRIC_LABELS = {"contains": "contains gold", "em": "exact match", "f1": "F1 (CMRC)", "rouge_l": "ROUGE-L",
                 "semantic": "semantic similarity"}
WORST_CASES = 20
CONTEXT_PREVIEW_CHARS = 240
CONTEXTS_SHOWN = 3                  # per worst case; the rest are folded


def find_cjk_font() -> str | None:
    """The family name of an installed font that covers Chinese, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _metrics_present(rows: Sequence[QuestionScores]) -> list[str]:
    return [metric for metric in ANSWER_METRICS
            if metric != "semantic" or any(row.semantic is not None for row in rows)]


def _score(row: QuestionScores, metric: str) -> float:
    value = getattr(row, metric)
    return 0.0 if value is None else float(value)


def worst_rows(rows: Sequence[QuestionScores], count: int = WORST_CASES) -> list[QuestionScores]:
    """Lowest F1 first; ties broken by ROUGE-L, containment and semantic similarity."""
    return sorted(rows, key=lambda row: (row.f1, row.rouge_l, row.contains, row.semantic or 0.0))[:count]


# ---------------------------------------------------------------- plots


class _Plotter:
    """Draws and saves figures with one font setup; `label` makes text safe for that font."""

    def __init__(self, directory: Path, cjk_font: str | None):
        self.directory = directory
        self.cjk_font = cjk_font

    def label(self, text: str) -> str:
        if self.cjk_font or text.isascii():
            return text
        return text.encode("ascii", "replace").decode("ascii")

    def _rc(self) -> dict:
        families = [self.cjk_font, "DejaVu Sans"] if self.cjk_font else ["DejaVu Sans"]
        return {"font.family": "sans-serif", "font.sans-serif": families, "axes.unicode_minus": False}

    def draw(self, name: str, draw_figure, size: tuple[float, float]) -> str:
        """Call `draw_figure(figure)` and save it as NAME.png in the report directory; returns the file name."""
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        with matplotlib.rc_context(self._rc()):
            figure = Figure(figsize=size, dpi=100)
            FigureCanvasAgg(figure)
            draw_figure(figure)
            figure.tight_layout()
            figure.savefig(self.directory / f"{name}.png", format="png")
        return f"{name}.png"


def _plot_per_question(plotter: _Plotter, rows: Sequence[QuestionScores], metrics: Sequence[str]) -> str:
    def draw(figure) -> None:
        axes = figure.add_subplot()
        positions = list(range(len(rows)))
        if len(rows) <= 60:
            width = 0.8 / len(metrics)
            for offset, metric in enumerate(metrics):
                axes.bar([x + offset * width for x in positions], [_score(row, metric) for row in rows],
                         width=width, label=METRIC_LABELS[metric])
            axes.set_xticks([x + 0.4 - width / 2 for x in positions])
            axes.set_xticklabels([plotter.label(str(row.id)) for row in rows], rotation=90, fontsize=7)
        else:
            # Thousands of points per metric overlap into noise; each metric's scores sorted best first
            # show the same per-question values as readable curves.
            for metric in metrics:
                axes.plot(positions, sorted((_score(row, metric) for row in rows), reverse=True),
                          label=METRIC_LABELS[metric])
            axes.set_xlabel("questions, each metric sorted from best to worst")
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("score")
        axes.set_title("Per-question scores")
        axes.legend(loc="upper right", fontsize=8)

    return plotter.draw("per_question", draw, (max(8.0, min(20.0, len(rows) * 0.25)), 4.5))


def _plot_distributions(plotter: _Plotter, rows: Sequence[QuestionScores], metrics: Sequence[str]) -> str:
    def draw(figure) -> None:
        for index, metric in enumerate(metrics, start=1):
            axes = figure.add_subplot(1, len(metrics), index)
            values = [_score(row, metric) for row in rows]
            low = min(0.0, min(values, default=0.0))
            axes.hist(values, bins=20, range=(low, 1.0), color=f"C{index - 1}")
            axes.set_title(METRIC_LABELS[metric], fontsize=9)
            axes.set_xlabel("score")
            if index == 1:
                axes.set_ylabel("questions")

    return plotter.draw("distributions", draw, (3.2 * len(metrics), 3.4))


def _plot_lengths(plotter: _Plotter, rows: Sequence[QuestionScores]) -> str:
    def draw(figure) -> None:
        axes = figure.add_subplot()
        gold = [min((len(answer) for answer in row.gold_answers), default=0) for row in rows]
        answer = [len(row.answer) for row in rows]
        colours = [row.f1 for row in rows]
        points = axes.scatter(gold, answer, c=colours, cmap="viridis", vmin=0, vmax=1, s=12, alpha=0.7)
        figure.colorbar(points, ax=axes, label="F1")
        top = max(gold + answer + [1])
        axes.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--", label="same length")
        ticks = [tick for tick in (0, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if tick <= top * 1.5]
        axes.set_xscale("symlog", linthresh=10)
        axes.set_yscale("symlog", linthresh=10)
        axes.set_xticks(ticks, [str(tick) for tick in ticks])
        axes.set_yticks(ticks, [str(tick) for tick in ticks])
        axes.set_xlabel("gold answer length (characters, shortest gold)")
        axes.set_ylabel("answer length (characters)")
        axes.set_title("Answer length vs gold length")
        axes.legend(loc="upper left", fontsize=8)

    return plotter.draw("lengths", draw, (6.5, 5.0))


def _plot_hit_at_k(plotter: _Plotter, retrieval: dict) -> str:
    def draw(figure) -> None:
        axes = figure.add_subplot()
        ks = [int(k) for k in retrieval["hit_at"]]
        axes.plot(ks, [retrieval["hit_at"][str(k)] for k in ks], marker="o")
        axes.set_ylim(0, 1.05)
        axes.set_xticks(ks)
        axes.set_xlabel("k (contexts)")
        axes.set_ylabel("hit@k")
        axes.set_title(f"Retrieval: hit@k over {retrieval['questions']} questions, MRR {retrieval['mrr']:.3f}")
        axes.grid(True, alpha=0.3)

    return plotter.draw("hit_at_k", draw, (6.5, 4.0))


# ---------------------------------------------------------------- HTML


_STYLE = """
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { min-width: 10em; }
img { max-width: 100%; display: block; margin: 1em 0; }
.context { font-size: 90%; margin: 0.3em 0; }
.relevant { background: #e8f5e9; }
.better { color: #1b5e20; } .worse { color: #b71c1c; }
"""


def _escape(text: object) -> str:
    return html.escape(str(text))


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else str(value)


def _summary_rows(summary: dict) -> list[tuple[str, object]]:
    rows = [(key, value) for key, value in summary.items() if key != "retrieval"]
    retrieval = summary.get("retrieval")
    if retrieval:
        rows.append(("retrieval questions", retrieval["questions"]))
        rows.append(("MRR", retrieval["mrr"]))
        rows.extend((f"hit@{k}", value) for k, value in retrieval["hit_at"].items())
    return rows


def _contexts_html(row: QuestionScores) -> str:
    if not row.contexts:
        return "<em>no contexts written</em>"
    parts = []
    for rank, context in enumerate(row.contexts, start=1):
        where = context.file + (f" p.{context.page}" if context.page is not None else "")
        text = context.text if len(context.text) <= CONTEXT_PREVIEW_CHARS else \
            context.text[:CONTEXT_PREVIEW_CHARS] + "…"
        relevant = " relevant" if row.retrieval_rank == rank else ""
        parts.append(f'<div class="context{relevant}">[{rank}] <b>{_escape(where)}</b> '
                     f'({context.score:.4f}): {_escape(text)}</div>')
    note = {None: "", 0: "<div>no relevant context retrieved</div>"}.get(
        row.retrieval_rank, f"<div>first relevant context: [{row.retrieval_rank}]</div>")
    shown, folded = parts[:CONTEXTS_SHOWN], parts[CONTEXTS_SHOWN:]
    more = f"<details><summary>{len(folded)} more</summary>{''.join(folded)}</details>" if folded else ""
    return note + "".join(shown) + more


def _worst_cases_html(rows: Sequence[QuestionScores], metrics: Sequence[str]) -> str:
    header = "".join(f"<th>{_escape(METRIC_LABELS[m])}</th>" for m in metrics)
    body = []
    for row in worst_rows(rows):
        scores = "".join(f'<td class="num">{_format_value(getattr(row, m))}</td>' for m in metrics)
        answer = _escape(row.answer) if row.answered else "<em>missing from the prediction file</em>"
        body.append(f'<tr><td>{_escape(row.id)}</td><td class="text">{_escape(row.question)}</td>'
                    f"<td>{'<br>'.join(_escape(gold) for gold in row.gold_answers)}</td>"
                    f'<td class="text">{answer}</td>{scores}<td>{_contexts_html(row)}</td></tr>')
    return (f'<table id="worst-cases"><tr><th>id</th><th>question</th><th>gold</th><th>answer</th>{header}'
            f"<th>retrieved contexts</th></tr>{''.join(body)}</table>")


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    html: Path
    plots: tuple[Path, ...]
    cjk_font: str | None


def _row_json(row: QuestionScores) -> dict:
    return {"id": row.id, "answered": row.answered, "contains": row.contains, "em": row.em, "f1": row.f1,
            "rouge_l": row.rouge_l, "semantic": row.semantic, "retrieval_rank": row.retrieval_rank,
            "answer_chars": len(row.answer)}


def write_report(result: EvalResult, directory: str | Path, title: str = "tecorag evaluation",
                 sources: dict[str, str] | None = None, use_cjk_font: bool = True) -> ReportFiles:
    """Write summary.json, report.html and its PNG plots into `directory` (created if needed).
    `sources` names the files evaluated (e.g. {"predictions": ..., "gold": ...}) for the page header;
    `use_cjk_font=False` draws ASCII-only labels, as happens anyway when no CJK font is installed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = result.rows
    metrics = _metrics_present(rows)
    summary_path = directory / "summary.json"
    summary_path.write_text(json.dumps({"summary": result.summary, "sources": sources or {},
                                        "per_question": [_row_json(row) for row in rows]},
                                       ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plotter = _Plotter(directory, find_cjk_font() if use_cjk_font else None)
    plots = [_plot_per_question(plotter, rows, metrics), _plot_distributions(plotter, rows, metrics),
             _plot_lengths(plotter, rows)]
    if result.summary.get("retrieval"):
        plots.append(_plot_hit_at_k(plotter, result.summary["retrieval"]))

    sources_html = "".join(f"<li>{_escape(name)}: <code>{_escape(path)}</code></li>"
                           for name, path in (sources or {}).items())
    summary_html = "".join(f'<tr><th>{_escape(key)}</th><td class="num">{_format_value(value)}</td></tr>'
                           for key, value in _summary_rows(result.summary))
    images = "".join(f'<img src="{_escape(name)}" alt="{_escape(name)}">' for name in plots)
    font_note = "" if plotter.cjk_font else \
        "<p><em>No CJK font installed: plot labels use ASCII (install fonts-noto-cjk).</em></p>"
    body = (f"<h1>{_escape(title)}</h1><ul>{sources_html}</ul><h2>Summary</h2><table>{summary_html}</table>"
            f"<h2>Plots</h2>{font_note}{images}"
            f"<h2>Worst cases</h2><p>The {min(WORST_CASES, len(rows))} lowest-F1 questions.</p>"
            f"{_worst_cases_html(rows, metrics)}")
    html_path = directory / "report.html"
    html_path.write_text(_page(title, body), encoding="utf-8")
    return ReportFiles(summary=summary_path, html=html_path, plots=tuple(directory / name for name in plots),
                       cjk_font=plotter.cjk_font)


# ---------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Two runs scored against the same gold. Deltas are B minus A; `outcomes[metric]` counts the
    questions where A scored higher ("a"), B scored higher ("b") or both the same ("tie")."""

    names: tuple[str, str]
    a: EvalResult
    b: EvalResult
    deltas: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)

    def pairs(self) -> list[tuple[QuestionScores, QuestionScores]]:
        return list(zip(self.a.rows, self.b.rows))


def _numeric_summary(summary: dict) -> dict[str, float]:
    flat = {key: float(value) for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
    retrieval = summary.get("retrieval")
    if retrieval:
        flat["mrr"] = retrieval["mrr"]
        flat.update({f"hit@{k}": value for k, value in retrieval["hit_at"].items()})
    return flat


def compare(a: EvalResult, b: EvalResult, names: tuple[str, str] = ("A", "B")) -> Comparison:
    """Side-by-side of two evaluations of the same gold file."""
    if [str(row.id) for row in a.rows] != [str(row.id) for row in b.rows]:
        raise InputError("the two evaluations were not scored against the same gold questions")
    flat_a, flat_b = _numeric_summary(a.summary), _numeric_summary(b.summary)
    deltas = {key: flat_b[key] - flat_a[key] for key in flat_a if key in flat_b}
    outcomes = {}
    for metric in _metrics_present(a.rows + b.rows):
        counts = {"a": 0, "b": 0, "tie": 0}
        for row_a, row_b in zip(a.rows, b.rows):
            difference = _score(row_b, metric) - _score(row_a, metric)
            counts["b" if difference > 1e-9 else "a" if difference < -1e-9 else "tie"] += 1
        outcomes[metric] = counts
    return Comparison(names=names, a=a, b=b, deltas=deltas, outcomes=outcomes)


def _largest_changes(comparison: Comparison, count: int) -> list[tuple[QuestionScores, QuestionScores]]:
    changed = [pair for pair in comparison.pairs() if abs(pair[1].f1 - pair[0].f1) > 1e-9]
    return sorted(changed, key=lambda pair: -abs(pair[1].f1 - pair[0].f1))[:count]


def format_comparison(comparison: Comparison, changes: int = 10) -> str:
    """A plain-text side-by-side for the terminal."""
    name_a, name_b = comparison.names
    flat_a, flat_b = _numeric_summary(comparison.a.summary), _numeric_summary(comparison.b.summary)
    lines = [f"A = {name_a}", f"B = {name_b}", "", f"{'metric':<24}{'A':>10}{'B':>10}{'B - A':>10}"]
    for key, delta in comparison.deltas.items():
        lines.append(f"{key:<24}{flat_a[key]:>10.4f}{flat_b[key]:>10.4f}{delta:>+10.4f}")
    lines += ["", f"{'per question':<24}{'A wins':>10}{'B wins':>10}{'ties':>10}"]
    for metric, counts in comparison.outcomes.items():
        lines.append(f"{METRIC_LABELS[metric]:<24}{counts['a']:>10}{counts['b']:>10}{counts['tie']:>10}")
    largest = _largest_changes(comparison, changes)
    if largest:
        lines += ["", "largest F1 changes (B - A):"]
        for row_a, row_b in largest:
            lines.append(f"  {row_b.f1 - row_a.f1:+.3f}  {row_a.id}  {row_a.question[:40]}")
            lines.append(f"      A: {row_a.answer[:80]}")
            lines.append(f"      B: {row_b.answer[:80]}")
    return "\n".join(lines)


def write_comparison(comparison: Comparison, directory: str | Path, changes: int = 50) -> Path:
    """DIR/compare.html (and compare.json with the deltas and outcomes); returns the HTML path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name_a, name_b = comparison.names
    (directory / "compare.json").write_text(json.dumps(
        {"a": name_a, "b": name_b, "summary_a": comparison.a.summary, "summary_b": comparison.b.summary,
         "deltas": comparison.deltas, "outcomes": comparison.outcomes}, ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8")
    flat_a, flat_b = _numeric_summary(comparison.a.summary), _numeric_summary(comparison.b.summary)
    summary_html = "".join(
        f'<tr><th>{_escape(key)}</th><td class="num">{flat_a[key]:.4f}</td><td class="num">{flat_b[key]:.4f}</td>'
        f'<td class="num {"better" if delta > 0 else "worse" if delta < 0 else ""}">{delta:+.4f}</td></tr>'
        for key, delta in comparison.deltas.items())
    outcomes_html = "".join(
        f"<tr><th>{_escape(METRIC_LABELS[metric])}</th><td class='num'>{counts['a']}</td>"
        f"<td class='num'>{counts['b']}</td><td class='num'>{counts['tie']}</td></tr>"
        for metric, counts in comparison.outcomes.items())
    changes_html = "".join(
        f"<tr><td>{_escape(row_a.id)}</td><td>{_escape(row_a.question)}</td>"
        f"<td>{'<br>'.join(_escape(gold) for gold in row_a.gold_answers)}</td>"
        f"<td>{_escape(row_a.answer)}</td><td>{_escape(row_b.answer)}</td>"
        f"<td class='num'>{row_b.f1 - row_a.f1:+.3f}</td></tr>"
        for row_a, row_b in _largest_changes(comparison, changes))
    body = (f"<h1>Comparison</h1><ul><li>A: <code>{_escape(name_a)}</code></li>"
            f"<li>B: <code>{_escape(name_b)}</code></li></ul>"
            f"<h2>Summary</h2><table><tr><th>metric</th><th>A</th><th>B</th><th>B − A</th></tr>{summary_html}</table>"
            f"<h2>Per question</h2><table><tr><th>metric</th><th>A wins</th><th>B wins</th><th>ties</th></tr>"
            f"{outcomes_html}</table><h2>Largest F1 changes</h2><table id='changes'><tr><th>id</th>"
            f"<th>question</th><th>gold</th><th>A</th><th>B</th><th>F1 B − A</th></tr>{changes_html}</table>")
    html_path = directory / "compare.html"
    html_path.write_text(_page("tecorag comparison", body), encoding="utf-8")
    return html_path
