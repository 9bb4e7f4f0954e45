# Evaluation of saved models: adding a shift or a metric here never retrains.


if RUNS_PER_JOB == 1:

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
            runs=lambda wc: f"--run {S.run(wc.ablation, wc.variant, wc.seed)}",
        threads: TRAIN_THREADS
        priority: PRIORITY["shift"]
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.experiments.shift {params.runs} --data {input.cache}"
            " --threads {threads} --settings {input.settings} 2> {log}"

else:
    # The runs of a training batch are scored under shift by one job too (one start-up), as
    # soon as that batch has trained.
    for _name, _batch in batch_rules("shift", SHIFT_BATCHES):

        rule:
            name:
                _name
            input:
                models=[str(run_dir(r) / "model.pt") for r in _batch],
                configs=[str(run_dir(r) / "config.yaml") for r in _batch],
                cache=str(S.data_cache(_batch[0].dataset)),
                settings="conf/shift.yaml",
            output:
                [str(run_dir(r) / "shift.csv") for r in _batch],
            log:
                batch_log("shift", _batch),
            params:
                runs=" ".join(f"--run {quoted([str(run_dir(r))])}" for r in _batch),
            threads: TRAIN_THREADS
            priority: PRIORITY["shift"]
            conda:
                "../envs/study.yaml"
            shell:
                "python -m study.experiments.shift {params.runs} --data {input.cache}"
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
    priority: PRIORITY["second_order"]
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.second_order --data {input} --out {output.table}"
        " --summary {output.summary} {params.sizes} --threads {threads} 2> {log}"


# Optimization pathologies on synthetic problems and Newton's asymptotics: seconds of CPU.
rule pathologies:
    input:
        str(S.data_cache("fashion_mnist")),
    output:
        table=str(S.pathologies),
        summary=str(S.pathologies.with_suffix(".json")),
    params:
        sizes=SCALE_RUN.pathologies,  # problem sizes: conf/scale/<scale>.yaml
    log:
        str(S.log("pathologies")),
    threads: 1  # its timings are of one thread
    priority: PRIORITY["second_order"]
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.pathologies --data {input} --out {output.table}"
        " --summary {output.summary} {params.sizes} --threads {threads} 2> {log}"
