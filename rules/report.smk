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
    params:
        scale_dir=lambda wc, output: os.path.dirname(os.path.dirname(output[0])),
        ablations=lambda wc, input: os.path.dirname(input.ablations[0]),
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
            scale_dir=lambda wc, output: os.path.dirname(
                os.path.dirname(os.path.dirname(output.captions))
            ),
            ablations=os.path.dirname(str(ABLATIONS[_name].path)),
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.figures --scale-dir {params.scale_dir} --ablation {params.ablation}"
            " --ablations {params.ablations} 2> {log}"


rule report:
    input:
        tables=rules.tables.output,
        figures=figure_files("png"),
        template=f"{PAPER}/templates/report.html.j2",
        ablations=[str(a.path) for a in ABLATIONS.values()],
        claims=CLAIMS,
    output:
        html=f"{PAPER}/report.html",
        md=f"{PAPER}/report.md",
    log:
        f"{R}/logs/report.log",
    params:
        scale_dir=lambda wc, input: os.path.dirname(os.path.dirname(input.tables[0])),
        ablations=lambda wc, input: os.path.dirname(input.ablations[0]),
        paper=lambda wc, output: os.path.dirname(output.html),
        scale=SCALE,
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.report --scale-dir {params.scale_dir} --ablations {params.ablations}"
        " --claims {input.claims} --out {params.paper} --scale {params.scale} 2> {log}"
