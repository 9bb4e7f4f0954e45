# Aggregation: tables (pandas), figures (seaborn), and the report in paper/.


rule tables:
    input:
        runs=run_files(),
        shift=shift_files(),
        selections=selections(),
        second_order=f"{R}/second_order.csv",
        ablations=[str(a.path) for a in ABLATIONS.values()],
        claims=CLAIMS,
    output:
        table_files(),
    log:
        f"{R}/logs/tables.log",
    shell:
        "python -m study.tables --scale-dir {R} --ablations {ABLATION_DIR}"
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
                [f"{R}/figures/{_name}/{f}.png" for f in figure_names(_name)],
                category=ABLATIONS[_name].title,
                caption="../paper/figure_caption.rst",
            ),
            svg=[f"{R}/figures/{_name}/{f}.svg" for f in figure_names(_name)],
            captions=f"{R}/figures/{_name}/captions.json",
        log:
            f"{R}/logs/figures_{_name}.log",
        params:
            ablation=_name,
        shell:
            "python -m study.figures --scale-dir {R} --ablation {params.ablation}"
            " --ablations {ABLATION_DIR} 2> {log}"


rule report:
    input:
        tables=rules.tables.output,
        figures=figure_files("png"),
        template=f"{PAPER}/templates/report.html.j2",
    output:
        html=f"{PAPER}/report.html",
        md=f"{PAPER}/report.md",
    log:
        f"{R}/logs/report.log",
    shell:
        "python -m study.report --scale-dir {R} --ablations {ABLATION_DIR} --claims {CLAIMS}"
        " --out {PAPER} --scale {SCALE} 2> {log}"
