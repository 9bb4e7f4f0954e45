"""Rendering the report's context into report.html (self-contained) and report.md (with its
figures and LaTeX tables copied beside it), every file written atomically."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from study.outputs import atomic_path
from study.paths import TEMPLATES
from study.report.formatting import VERDICT_CLASS, md_escape


def _code_span(text: Any) -> Markup:
    """A Markdown code span: its content is shown literally (HTML included), so it is only kept
    on one line and stripped of backticks; a pipe is escaped so that it cannot end a table cell."""
    text = str(text).replace("`", "'").replace("\n", " ").replace("|", "\\|")
    return Markup(f"`{text}`")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _environment(templates: Path, markdown: bool) -> jinja2.Environment:
    if markdown:
        # Every value is Markdown-escaped unless it is Markup (the template marks links/paths).
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=False,
            finalize=lambda v: v if isinstance(v, Markup) else md_escape("" if v is None else v),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    else:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=jinja2.select_autoescape(["html", "html.j2"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    env.filters["data_uri"] = _data_uri
    # Paths are built by this module from ablation and figure names, never from free text.
    env.filters["path"] = lambda p: Markup(str(p))
    env.filters["code"] = _code_span
    env.filters["verdict_class"] = lambda v: VERDICT_CLASS.get(str(v), "neutral")
    env.filters["sentence"] = _sentence
    return env


def _sentence(text: Any) -> str:
    """``text`` ending as a sentence does: a history's change and reason are written as phrases,
    and the report runs them on with "Why:" after them."""
    text = str(text).strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def render_report(context: dict[str, Any], templates: Path = TEMPLATES) -> dict[str, str]:
    """File name → text of report.html and report.md."""
    html = _environment(templates, markdown=False).get_template("report.html.j2")
    md = _environment(templates, markdown=True).get_template("report.md.j2")
    return {"report.html": html.render(**context), "report.md": md.render(**context)}


def write_pdf(html: str, out_pdf: Path, base: Path) -> None:
    """report.html printed to a PDF (A4, its print stylesheet) by WeasyPrint: figures are inline
    data URIs, so the PDF needs nothing beside the HTML."""
    import weasyprint  # imported here: pango is only needed where a PDF is wanted

    with atomic_path(out_pdf) as tmp:
        weasyprint.HTML(string=html, base_url=str(base)).write_pdf(tmp)


def main_text_pages(html: str, base: Path, appendix: str = "appendix") -> tuple[int, int]:
    """(pages before the appendix, all pages) of report.html as WeasyPrint prints it: the
    appendix starts on a new page, at the element with id ``appendix``."""
    import weasyprint

    pages = weasyprint.HTML(string=html, base_url=str(base)).render().pages
    starts = [i for i, page in enumerate(pages) if appendix in page.anchors]
    return (starts[0] if starts else len(pages)), len(pages)


def _figures(context: dict[str, Any]) -> list[dict[str, Any]]:
    extra = [context.get(k) for k in ("forest", "second_order_figure", "pathologies_figure")]
    return [f for s in context["sections"] for f in s["figures"]] + [f for f in extra if f]


def write_report(
    context: dict[str, Any], out: str | Path, templates: Path = TEMPLATES, pdf: bool = False
) -> None:
    """Render and write the report with its figures and LaTeX tables (every file atomically),
    and with ``pdf`` also report.pdf."""
    out = Path(out)
    texts = render_report(context, templates)
    for fig in _figures(context):
        with atomic_path(out / fig["rel"]) as tmp:
            shutil.copyfile(fig["source"], tmp)
    for section in context["sections"]:
        if section["tex"]:
            with atomic_path(out / section["tex"]["rel"]) as tmp:
                shutil.copyfile(section["tex"]["source"], tmp)
    if context.get("ledger") is not None:
        with atomic_path(out / "runs.csv") as tmp:
            context["ledger"].to_csv(tmp, index=False)
    # The documents last, so they never reference a figure that is not there yet.
    for name, text in texts.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    if pdf:
        write_pdf(texts["report.html"], out / "report.pdf", out)
