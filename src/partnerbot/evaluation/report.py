"""Render reports: evaluation reports and the unanswered-questions report, as a terminal table (rich) and an HTML page."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from partnerbot.answering.unanswered import Group

RATE_METRICS = ("pass_rate", "hit@1", "hit@3", "hit@5", "mrr", "citation_hit", "fact_recall",
                "refusal_accuracy", "false_refusal_rate", "citation_validity")


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a1a1a; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border: 1px solid #ccc; padding: .3rem .5rem; vertical-align: top; text-align: left; }}
"""  # the start of every HTML report; a `str.format` template (its braces doubled)


def print_report(report: dict[str, Any], console: Console, comparison: dict[str, Any] | None = None) -> None:
    """Failures first, then the metrics (and the comparison, if any)."""
    cases = report["cases"]
    failed = [c for c in cases if not c["passed"]]
    table = Table(title=f"{len(failed)} of {len(cases)} cases failed", show_lines=False)
    table.add_column("case")
    table.add_column("result")
    table.add_column("reasons")
    for c in failed + [c for c in cases if c["passed"]]:
        table.add_row(c["id"], "[red]FAIL[/red]" if not c["passed"] else "[green]pass[/green]", "; ".join(c["reasons"]))
    console.print(table)
    tried = [c for c in cases if c.get("extractive")]
    if tried:
        console.print(generation_table(tried))
    metrics = Table(title="metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    if comparison:
        metrics.add_column("change", justify="right")
    for k, v in report["metrics"].items():
        row = [k, str(v)]
        if comparison:
            d = comparison["metrics"].get(k)
            row.append(f"{d['delta']:+}" if d else "")
        metrics.add_row(*row)
    console.print(metrics)
    if comparison:
        console.print(f"pass -> fail: {', '.join(comparison['broke']) or 'none'}")
        console.print(f"fail -> pass: {', '.join(comparison['fixed']) or 'none'}")


def generation_table(cases: list[dict[str, Any]]) -> Table:
    """Per case where generation was tried: its mode or fallback, the sentences dropped, and the quoted answer."""
    table = Table(title=f"generated answers ({len(cases)} tried)", show_lines=True)
    for name in ("case", "mode", "dropped sentences", "generated answer", "quoted (extractive) answer"):
        table.add_column(name)
    for c in cases:
        dropped = "\n".join(f"{d['text']} ({d['reason']})" for d in c["dropped"])
        mode = c["mode"] if not c["fallback"] else f"extractive: {c['fallback']}"
        shown = c["answer"] if c["mode"] == "generated" else ""
        # A model's words may hold "[/...]", which rich would read as markup.
        table.add_row(*(escape(x) for x in (c["id"], mode, dropped, shown, c["extractive"])))
    return table


def _generation_html(c: dict[str, Any]) -> str:
    esc = html.escape
    if not c.get("extractive"):
        return ""
    mode = "generated" if c["mode"] == "generated" else f"fell back to the quoted answer: {c['fallback']}"
    dropped = "".join(f"<li>{esc(d['text'])} <i>({esc(d['reason'])})</i></li>" for d in c["dropped"])
    return (f"<p class='gen'><b>{esc(mode)}</b></p>"
            + (f"<p>Dropped:</p><ul class='gen'>{dropped}</ul>" if dropped else "")
            + (f"<p class='gen'>Quoted answer: {esc(c['extractive'])}</p>" if c["mode"] == "generated" else ""))


def _chart(metrics: dict[str, Any]) -> str:
    rows = [(k, float(metrics[k])) for k in RATE_METRICS if k in metrics]
    bar_h, width = 18, 320
    parts = [f'<svg role="img" aria-label="metrics chart" width="{width + 190}" height="{bar_h * len(rows) + 4}">']
    for i, (k, v) in enumerate(rows):
        y = i * bar_h + 2
        color = "#b3261e" if k == "false_refusal_rate" else "#1f5fa8"
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{html.escape(k)}</text>')
        parts.append(f'<rect x="140" y="{y + 2}" width="{max(v, 0) * width:.1f}" height="{bar_h - 6}" fill="{color}"/>')
        parts.append(f'<text x="{145 + max(v, 0) * width:.1f}" y="{y + 13}" font-size="12">{v:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any], title: str = "partnerbot evaluation") -> str:
    """One offline HTML file: metrics and chart, every case, and a failures-only filter."""
    esc = html.escape
    metrics = report["metrics"]
    cases = report["cases"]
    failed = sum(1 for c in cases if not c["passed"])
    mrows = "".join(f"<tr><th scope='row'>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in metrics.items())
    crows = []
    for c in cases:
        sources = "".join(
            f"<li>[{s['n']}] <b>{esc(s['title'])}</b> ({esc(s['doc_id'])}, as of {esc(s['date'])}, "
            f"{esc(s['section'])}): “{esc(s['quote'])}”</li>" for s in c["sources"]
        )
        reasons = "".join(f"<li>{esc(r)}</li>" for r in c["reasons"])
        status = "pass" if c["passed"] else "fail"
        crows.append(
            f"<tr class='case {status}' data-passed='{str(c['passed']).lower()}'>"
            f"<td>{esc(c['id'])}</td><td class='status'>{status.upper()}</td>"
            f"<td>{esc(c['question'][:500])}</td><td>{esc(c['answer'])}{_generation_html(c)}"
            f"{'<ol class=src>' + sources + '</ol>' if sources else ''}</td>"
            f"<td>{'<ul>' + reasons + '</ul>' if reasons else ''}</td><td>{c['latency_ms']}</td></tr>"
        )
    return _HEAD.format(title=esc(title)) + f""".fail .status {{ color: #b3261e; font-weight: bold; }} .pass .status {{ color: #1b6e2a; }}
table.metrics {{ width: auto; }} .src {{ font-size: .9em; color: #333; }}
body.only-failures tr.pass {{ display: none; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(cases)} cases, {failed} failed.</p>
<div style="display:flex; gap:2rem; flex-wrap:wrap"><table class="metrics">{mrows}</table>{_chart(metrics)}</div>
<p><label><input type="checkbox" id="only-failures"> Show only failures</label></p>
<table id="cases"><thead><tr><th>case</th><th>result</th><th>question</th><th>answer and sources</th><th>reasons</th><th>ms</th></tr></thead>
<tbody>{''.join(crows)}</tbody></table>
<script>
document.getElementById('only-failures').addEventListener('change', function (e) {{
  document.body.classList.toggle('only-failures', e.target.checked);
}});
</script>
</body></html>
"""


def _unanswered_title(total: int, groups: Sequence[Group], since: dt.date | None) -> str:
    span = f" since {since.isoformat()}" if since else ""
    return f"{total} unanswered question(s){span} in {len(groups)} group(s), the most frequent first"


def print_unanswered(groups: Sequence[Group], console: Console, total: int, since: dt.date | None = None) -> None:
    """One row per group: its count, dates, and each wording with its own count."""
    table = Table(title=_unanswered_title(total, groups, since), show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("count", justify="right")
    table.add_column("dates")
    table.add_column("questions")
    for i, g in enumerate(groups, 1):
        dates = g.first.isoformat() if g.first == g.last else f"{g.first.isoformat()} to {g.last.isoformat()}"
        table.add_row(str(i), str(g.count), dates, "\n".join(f"{n} × {q}" for q, n in g.questions), style=None)
    console.print(table, markup=False, highlight=False)


def render_unanswered_html(groups: Sequence[Group], total: int, since: dt.date | None = None) -> str:
    """One offline HTML file listing the groups; question text is always shown as text, never as markup."""
    esc = html.escape
    title = "partnerbot: unanswered questions"
    rows = []
    for i, g in enumerate(groups, 1):
        items = "".join(f"<li><span class='n'>{n} ×</span> {esc(q)}</li>" for q, n in g.questions)
        dates = g.first.isoformat() if g.first == g.last else f"{g.first.isoformat()} to {g.last.isoformat()}"
        rows.append(f"<tr class='group'><td>{i}</td><td>{g.count}</td><td>{esc(dates)}</td><td><ul>{items}</ul></td></tr>")
    return _HEAD.format(title=esc(title)) + f"""ul {{ margin: 0; padding-left: 1.2rem; }} .n {{ color: #555; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{esc(_unanswered_title(total, groups, since))}.</p>
<table id="groups"><thead><tr><th>#</th><th>count</th><th>dates</th><th>questions (count × wording)</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
</body></html>
"""
