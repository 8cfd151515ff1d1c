"""Reports of sweep results for people: a self-contained HTML page and Markdown with its figures.

Takes results, never MLX. The words and tables come from :mod:`mlxtune.view`, the figures from
:mod:`mlxtune.plots`; this module only renders them. Every file is rendered in memory, then written
through :mod:`mlxtune.files` (atomic replaces; a report and its figures change together; special
files are never replaced), so an error while rendering or writing never leaves a half-written file
over a good one. Every string that came from a user is escaped: HTML through jinja2's
autoescaping, Markdown through :func:`markdown_text`. JSON and CSV are :mod:`mlxtune.store`'s.
"""

from __future__ import annotations

import datetime
import html
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from mlxtune.decision import TOLERANCE
from mlxtune.files import write_atomic, write_together
from mlxtune.plots import check_format, data_uri, figure_bytes
from mlxtune.present import (
    Row,
    Table,
    code_snippets,
    design_text,
    environment_rows,
    errors_in_full,
    fleet_headline,
    fleet_table,
    reproduce_text,
    runs_table,
    status_text,
    summary_table,
)
from mlxtune.view import headline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlxtune.fleet_result import FleetResult
    from mlxtune.result import SweepResult

__all__ = [
    "FIGURE_KINDS",
    "code_block",
    "figure_files",
    "fleet_html_fragment",
    "markdown_image",
    "markdown_table",
    "markdown_text",
    "render_html",
    "render_markdown",
    "render_template",
    "result_html_fragment",
    "summary_html",
    "write_fleet_html",
    "write_fleet_markdown",
    "write_html",
    "write_markdown",
]

#: Figures a report shows, in order (see :mod:`mlxtune.plots`).
FIGURE_KINDS = ("tradeoff", "throughput", "memory", "timeline", "order")
_CAPTIONS = {
    "tradeoff": "Speed against the memory a cache limit changes (the peak above what a run started with): "
    "one point per cache limit, error bars the quartiles of the runs, the Pareto front dashed, the "
    "recommended limit starred once decided.",
    "throughput": "Median throughput against cache limit, with the quartiles of the runs.",
    "memory": "Memory against cache limit: the largest value over the runs, bars down to the smallest.",
    "timeline": "Memory during a typical run at each cache limit (the run with the median throughput): the "
    "cache fills and stops at its limit (dashed); above, the cache; below, everything MLX held.",
    "order": "Every run's throughput in the order the runs ran: a slope shared by all limits is drift, a "
    "step a busy spell; interleaving keeps either from favouring a limit.",
}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- JSON: save and load ------------------------------------------------------------------------


# -- tables shared by HTML and Markdown ---------------------------------------------------------


def _figures(result: SweepResult, kinds: Iterable[str], budget: int | str | None,
             tolerance: float) -> list[tuple[str, Figure]]:
    if not len(result.speed_rows) or result.summary_frame()["throughput_median"].notna().sum() == 0:
        return []
    figures = []
    for kind in kinds:
        if kind == "timeline" and result.timelines.empty:
            continue  # results saved before runs were sampled
        options: dict[str, Any] = {"budget": budget, "tolerance": tolerance} if kind == "tradeoff" else {}
        figures.append((kind, result.plot(kind=kind, **options)))
    return figures


# -- HTML ---------------------------------------------------------------------------------------


def render_template(name: str, **context: Any) -> str:
    """Render one of the package's HTML templates; every value is autoescaped.

    ``written`` (the page footer's time, UTC) is filled in here, so every page says it the same way.
    """
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _TEMPLATES.get_template(name).render(written=written, **context)


def _template_context(result: SweepResult, budget: int | str | None, tolerance: float) -> dict[str, Any]:
    rec = result.recommend(budget=budget, tolerance=tolerance)
    python_code, swift_code = code_snippets(rec)
    return {
        "result": result,
        "status": status_text(result),
        "design": design_text(result),
        "recommendation": rec,
        "headline": headline(result.decision(budget, tolerance), result.unit),
        "python_code": python_code,
        "swift_code": swift_code,
        "summary": summary_table(result, rec),
        "reproduce": reproduce_text(result),
        "version": result.environment.get("mlxtune", ""),
    }


def render_html(
    result: SweepResult,
    *,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = TOLERANCE,
    figures: Sequence[str] = FIGURE_KINDS,
    image_format: str = "svg",
) -> str:
    """The report as one HTML document (figures inline as data URIs, no scripts, no network)."""
    check_format(image_format)
    context = _template_context(result, budget, tolerance)
    items = [
        {"kind": kind, "uri": data_uri(fig, image_format), "caption": _CAPTIONS[kind],
         "alt": f"{kind} figure of {result.label}"}
        for kind, fig in _figures(result, figures, budget, tolerance)
    ]
    return render_template(
        "report.html.j2",
        **context,
        title=title or f"mlxtune report: {result.label}",
        figures=items,
        runs=runs_table(result),
        blocks=runs_table(result, blocks=True) if result.design == "paired" else None,
        errors=errors_in_full(result),
        environment=environment_rows(result),
    )


def write_html(result: SweepResult, path: str | os.PathLike[str], **options: Any) -> str:
    """Write :func:`render_html` (same options) to ``path`` atomically; returns the path."""
    return write_atomic(path, render_html(result, **options))


def summary_html(result: SweepResult, *, caption: str = "") -> str:
    """The summary table alone as HTML (the recommended row marked), as a notebook shows it."""
    return render_template("table.html.j2", table=summary_table(result, result.recommend()), css="summary",
                           caption=caption)


def result_html_fragment(result: SweepResult) -> str:
    """A small HTML block for notebooks: label, status, the recommendation, the summary table."""
    if not len(result.speed_rows):
        return f"<div class='mlxtune-result'><strong>{html.escape(result.label)}</strong>: no runs yet</div>"
    context = _template_context(result, None, TOLERANCE)
    return render_template("fragment.html.j2", **context)


# -- Markdown -----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


#: Joins "@" to the name after it, invisibly, so "@org/team" in a label reads as typed but is no
#: mention where CI posts the Markdown (a pull request would notify the team).
_NO_MENTION = "@\u2060"


def markdown_text(value: Any) -> str:
    """Text safe inside a Markdown table cell or paragraph: HTML escaped, one line, syntax escaped, no
    live @mention."""
    text = " ".join(str(value).splitlines()).replace("@", _NO_MENTION)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def markdown_table(table: Table, bold: Sequence[Sequence[bool]] | None = None) -> str:
    """A pipe table; cells where ``bold`` is true are emphasised."""
    aligns = [":---" if i < table.text_columns else "---:" for i in range(len(table.headers))]
    lines = ["| " + " | ".join(markdown_text(h) for h in table.headers) + " |", "|" + "|".join(aligns) + "|"]
    for r, row in enumerate(table.rows):
        cells = [markdown_text(c) for c in row.cells]
        if bold is not None:
            cells = [f"**{c}**" if bold[r][i] and c else c for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def code_block(code: str, language: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside ``code``."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code}\n{fence}"


def markdown_image(alt: str, file_name: str) -> str:
    """An image link to a file beside the Markdown; the name is URL-quoted (spaces, brackets), and a
    ``data:`` URI (an inlined figure) is kept as it is."""
    target = file_name if file_name.startswith("data:") else urllib.parse.quote(file_name)
    return f"![{markdown_text(alt)}]({target})"


def figure_files(path: str | os.PathLike[str], names: Iterable[str]) -> dict[str, Path]:
    """Where the PNG figures of a Markdown file go: beside it, named ``<stem>-<figure>.png``."""
    target = Path(path)
    return {name: target.with_name(f"{target.stem}-{name}.png") for name in names}


_MARKDOWN = jinja2.Environment(  # text goes through the "md" filter: Markdown has no autoescape
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_MARKDOWN.filters.update(md=markdown_text, table=markdown_table, code=code_block,
                         image=lambda file_name, alt: markdown_image(alt, file_name))


def render_markdown_template(name: str, **context: Any) -> str:
    """Render one of the package's Markdown templates (``*.md.j2``)."""
    return _MARKDOWN.get_template(name).render(**context)


def render_markdown(
    result: SweepResult,
    figure_names: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = TOLERANCE,
) -> str:
    """The report as Markdown; ``figure_names`` maps figure kinds to the images it links (file names
    beside it, or ``data:`` URIs)."""
    context = _template_context(result, budget, tolerance)
    environment = Table(["setting", "value"], [Row([k, v]) for k, v in environment_rows(result)], 2)
    return render_markdown_template(
        "report.md.j2", **context, title=title or f"mlxtune report: {result.label}",
        figure_names=figure_names or {}, environment=environment, runs=runs_table(result),
        blocks=runs_table(result, blocks=True) if result.design == "paired" else None,
        reproduce_language="sh" if result.environment.get("command") else "python")


def write_markdown(
    result: SweepResult,
    path: str | os.PathLike[str],
    *,
    figures: Sequence[str] = FIGURE_KINDS,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = TOLERANCE,
    inline: bool = False,
) -> str:
    """Write the Markdown report and its figures as PNG files beside it; returns the Markdown path.

    ``inline=True`` puts the figures into the Markdown itself as ``data:`` URIs: one file that can
    be moved or attached whole (renderers that refuse data URIs show the alt text instead).
    Everything is rendered before anything is written, and the files change together
    (:func:`mlxtune.files.write_together`): an error leaves every old file as it was.
    """
    rendered = _figures(result, figures, budget, tolerance)
    if inline:
        links = {kind: data_uri(fig, "png") for kind, fig in rendered}
        text = render_markdown(result, links, title=title, budget=budget, tolerance=tolerance)
        return write_atomic(path, text)
    files = figure_files(path, [kind for kind, _ in rendered])
    images = {kind: figure_bytes(fig, "png") for kind, fig in rendered}
    text = render_markdown(result, {kind: files[kind].name for kind in images}, title=title, budget=budget,
                           tolerance=tolerance)
    return write_together({**{files[kind]: data for kind, data in images.items()}, path: text})[-1]


# -- fleets -------------------------------------------------------------------------------------

_FLEET_FIGURES = {
    "tradeoff": "Speed against footprint, one curve per host (error bars: quartiles of the runs).",
    "throughput": "Median throughput against cache limit, one curve per host.",
}


def _fleet_context(fleet: FleetResult, budget: Any, tolerance: float) -> dict[str, Any]:
    rec = fleet.recommend(budget, tolerance)
    measured = f"{len(fleet.results)} of {len(fleet.hosts)} hosts measured"
    return {
        "fleet": fleet,
        "status": measured if fleet.complete else f"{measured}; stopped: {fleet.stop_reason}",
        "recommendation": rec,
        "headline": fleet_headline(rec),
        "hosts": fleet_table(fleet, rec),
        "version": next((r.environment.get("mlxtune", "") for r in fleet.results.values()), ""),
    }


def _fleet_figures(fleet: FleetResult) -> dict[str, Figure]:
    return {kind: fleet.plot(kind) for kind in _FLEET_FIGURES} if fleet.results else {}


def render_fleet_html(fleet: FleetResult, *, title: str | None = None, budget: Any = None,
                      tolerance: float = TOLERANCE, image_format: str = "svg") -> str:
    """A fleet's report as one HTML page: the answer for every host, the hosts, a curve per host, and
    each host's own summary and environment."""
    check_format(image_format)
    context = _fleet_context(fleet, budget, tolerance)
    own = context["recommendation"].hosts
    sections = [{"name": host, "reason": own[host].reason, "summary": summary_table(result, own[host]),
                 "environment": environment_rows(result)} for host, result in fleet.results.items()]
    figures = [{"kind": kind, "uri": data_uri(fig, image_format), "caption": _FLEET_FIGURES[kind],
                "alt": f"{kind} figure, one curve per host"} for kind, fig in _fleet_figures(fleet).items()]
    return render_template("fleet.html.j2", **context, title=title or f"mlxtune fleet report: {fleet.label}",
                           sections=sections, figures=figures)


def write_fleet_html(fleet: FleetResult, path: str | os.PathLike[str], **options: Any) -> str:
    """Write :func:`render_fleet_html` (same options) to ``path`` atomically; returns the path."""
    return write_atomic(path, render_fleet_html(fleet, **options))


def write_fleet_markdown(fleet: FleetResult, path: str | os.PathLike[str], *, title: str | None = None,
                         budget: Any = None, tolerance: float = TOLERANCE) -> str:
    """The fleet's report as Markdown, its figures as PNG files beside it (written together)."""
    context = _fleet_context(fleet, budget, tolerance)
    rec = context["recommendation"]
    images = {kind: figure_bytes(fig, "png") for kind, fig in _fleet_figures(fleet).items()}
    files = figure_files(path, images)
    text = render_markdown_template(
        "fleet.md.j2", **context, title=title or f"mlxtune fleet report: {fleet.label}",
        figure_names={kind: files[kind].name for kind in images},
        host_summaries=[(host, summary_table(result, rec.hosts[host]))
                        for host, result in fleet.results.items()])
    return write_together({**{files[kind]: data for kind, data in images.items()}, path: text})[-1]


def fleet_html_fragment(fleet: FleetResult) -> str:
    """A small HTML block for notebooks: the fleet's answer and its table of hosts."""
    return render_template("fleet_fragment.html.j2", **_fleet_context(fleet, None, TOLERANCE))

