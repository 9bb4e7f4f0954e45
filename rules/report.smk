# Aggregation: tables (pandas), figures (seaborn), and the report (paper/ for the default scale,
# results/<scale>/paper/ for any other).

from pathlib import Path


rule tables:
    input:
        runs=run_files(),
        shift=shift_files(),
        selections=selections(),
        second_order=str(S.second_order),
        pathologies=str(S.pathologies),
        ablations=[str(a.path) for a in ABLATIONS.values()],
        claims=CLAIMS,
    output:
        table_files(),
    log:
        str(S.log("tables")),
    params:
        scale_dir=scale_dir,
        ablations=lambda wc: ABLATION_DIR,
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.analysis.tables --scale-dir {params.scale_dir} --ablations {params.ablations}"
        " --claims {input.claims} 2> {log}"


# One figures rule per ablation: the figures an ablation asks for are known only from its file.
for _name in ABLATIONS:

    rule:
        name:
            f"figures_{_name}"
        input:
            tables=rules.tables.output,
            models=run_files(_name, "model.pt"),
        output:
            png=report(
                [str(S.figure(_name, f)) for f in figure_names(_name)],
                category=ABLATIONS[_name].title,
                caption="../paper/figure_caption.rst",
            ),
            svg=[str(S.figure(_name, f, "svg")) for f in figure_names(_name)],
            captions=str(S.captions(_name)),
        log:
            str(S.log(f"figures_{_name}")),
        params:
            ablation=_name,
            scale_dir=scale_dir,
            ablations=lambda wc: ABLATION_DIR,
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.figures --scale-dir {params.scale_dir} --ablation {params.ablation}"
            " --ablations {params.ablations} 2> {log}"


# The second-order experiment belongs to no ablation; its figure is drawn beside the others.
rule figure_second_order:
    input:
        table=str(S.second_order),
        summary=str(S.second_order.with_suffix(".json")),
    output:
        str(S.root / "figures" / "second_order" / "scaling.png"),
    log:
        str(S.log("figure_second_order")),
    conda:
        "../envs/study.yaml"
    shell:
        "python -c 'import sys; from study.figures.second_order import second_order_scaling as f;"
        " f(*sys.argv[1:])' {input.table} {input.summary} {output} 2> {log}"


rule figure_pathologies:
    input:
        str(S.pathologies),
    output:
        str(S.root / "figures" / "pathologies" / "pathologies.png"),
    log:
        str(S.log("figure_pathologies")),
    conda:
        "../envs/study.yaml"
    shell:
        "python -c 'import sys; from study.figures.pathologies import pathologies_figure as f;"
        " f(*sys.argv[1:])' {input} {output} 2> {log}"


rule report:
    input:
        tables=rules.tables.output,
        figures=figure_files("png"),
        second_order=rules.figure_second_order.output,
        pathologies=rules.figure_pathologies.output,
        # The templates live in the repository whatever paper= says the report is written to.
        templates=["paper/templates/report.html.j2", "paper/templates/report.md.j2"],
        ablations=[str(a.path) for a in ABLATIONS.values()],
        claims=CLAIMS,
        # The course's statements beside the claims file, when there are any (report/course.py).
        statements=lambda wc: [
            str(p) for p in [Path(CLAIMS).parent / "course_statements.yaml"] if p.is_file()
        ],
    output:
        html=f"{PAPER}/report.html",
        md=f"{PAPER}/report.md",
        pdf=f"{PAPER}/report.pdf",
        runs=f"{PAPER}/runs.csv",
        claims=f"{PAPER}/claims.csv",
        forest=f"{PAPER}/figures/claims_forest.png",
    log:
        str(S.log("report")),
    params:
        scale_dir=scale_dir,
        ablations=lambda wc: ABLATION_DIR,
        paper=lambda wc: PAPER,
        scale=SCALE,
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.report --scale-dir {params.scale_dir} --ablations {params.ablations}"
        " --claims {input.claims} --out {params.paper} --scale {params.scale} 2> {log}"
