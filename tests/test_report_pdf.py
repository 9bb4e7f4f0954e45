"""report.pdf: WeasyPrint prints report.html, and every figure of the HTML is on its pages."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from matplotlib.image import imread
from test_figures import build_study

from study.figures import make_figures
from study.report import build_context, write_report

pytest.importorskip("weasyprint")
if not (shutil.which("pdftoppm") and shutil.which("pdfimages")):
    pytest.skip("poppler-utils (pdftoppm, pdfimages) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdf")
    scale_dir, ablations = build_study(root)
    for ablation in ablations.values():
        make_figures(scale_dir, ablation, ["test_accuracy", "learning_curves"])
    out = root / "paper"
    write_report(build_context(scale_dir, ablations, scale="smoke", repo=root), out, pdf=True)
    html = (out / "report.html").read_text()
    return {
        "path": out / "report.pdf",
        "figures": len(re.findall(r"<img src=", html)),
        "root": root,
    }


def test_every_figure_of_the_html_is_embedded_in_the_pdf(pdf):
    listing = subprocess.run(["pdfimages", "-list", str(pdf["path"])], capture_output=True,
                             text=True, check=True).stdout.splitlines()[2:]  # fmt: skip
    images = [line.split() for line in listing if line.strip()]
    # One image per figure (an alpha channel would add an "smask" row of the same image).
    assert sum(row[2] == "image" for row in images) == pdf["figures"] == 8


def test_pages_show_the_figures(pdf):
    pages = pdf["root"] / "pages"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf["path"]), str(pages / "p")],
                   check=True)  # fmt: skip
    images = sorted(pages.glob("p-*.png"))
    listing = subprocess.run(["pdfimages", "-list", str(pdf["path"])], capture_output=True,
                             text=True, check=True).stdout.splitlines()[2:]  # fmt: skip
    with_figure = sorted({int(line.split()[0]) for line in listing if line.split()[2] == "image"})
    # At most two figures share a page, so they are spread over at least half as many pages.
    assert len(with_figure) >= pdf["figures"] // 2
    for page in with_figure:
        gray = imread(images[page - 1])[..., :3].mean(axis=-1)
        # A drawn figure (axes, lines, labels) puts ink on a large share of the page's rows; a
        # figure that failed to render leaves a blank box.
        inked_rows = float((gray < 0.8).any(axis=1).mean())
        assert inked_rows > 0.25, (page, round(inked_rows, 3))
