# Evaluation of saved models: adding a shift or a metric here never retrains.


rule shift:
    input:
        model=run_path("model.pt"),
        config=run_path("config.yaml"),
        cache=lambda wc: str(S.data_cache(run_of(wc).dataset)),
        settings="conf/shift.yaml",
    output:
        run_path("shift.csv"),
    log:
        str(S.log("shift/{ablation}_{variant}_seed{seed}")),
    params:
        run=lambda wc: str(S.run(wc.ablation, wc.variant, wc.seed)),
    threads: TRAIN_THREADS
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.shift --run {params.run} --data {input.cache}"
        " --threads {threads} --settings {input.settings} 2> {log}"


rule second_order:
    input:
        str(S.data_cache("fashion_mnist")),
    output:
        table=str(S.second_order),
        summary=str(S.second_order.with_suffix(".json")),
    params:
        sizes=SCALE_RUN.second_order,  # problem sizes: conf/scale/<scale>.yaml
    log:
        str(S.log("second_order")),
    threads: TRAIN_THREADS
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.second_order --data {input} --out {output.table}"
        " --summary {output.summary} {params.sizes} --threads {threads} 2> {log}"
