# Data preparation, hyperparameter tuning and training runs.


rule prepare_data:
    output:
        str(S.data_cache("{dataset}")),
    params:
        root=lambda wc: DATASETS[wc.dataset],
    log:
        str(S.log("prepare_{dataset}")),
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.components.data {wildcards.dataset} {params.root} {output} 2> {log}"


rule select_lr:
    input:
        lambda wc: tuning_files(wc.ablation),
    output:
        json=str(S.selection("{ablation}")),
        csv=str(S.selection("{ablation}", "csv")),
    params:
        metric=lambda wc: ABLATIONS[wc.ablation].tune["metric"],
        last=lambda wc: ABLATIONS[wc.ablation].tune["last"],
        searched=lambda wc: searched_keys(wc.ablation),
    log:
        str(S.log("select_lr_{ablation}")),
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.planning.tuning --metric {params.metric} --last {params.last}"
        " {params.searched} --out {output.json} {input} > {log}"


# One run per job (runs_per_job: 1) or several: a job then trains a batch of runs of one ablation,
# across its variants and seeds (tuning runs: across its levels and variants), one after another
# in one process, paying the start-up (about 2 s: Python, torch, Hydra) once per batch.
if RUNS_PER_JOB == 1:

    rule tune:
        input:
            cache=lambda wc: str(S.data_cache(tuning_run_of(wc).dataset)),
        output:
            metrics=tuning_path("metrics.json"),
            history=tuning_path("history.csv"),
            model=tuning_path("model.pt"),
            config=tuning_path("config.yaml"),
        log:
            tuning_path("train.log"),
        params:
            overrides=lambda wc: quoted(tuning_run_of(wc).overrides),
            out=lambda wc: str(S.tuning_run(wc.ablation, wc.variant, wc.level, wc.seed)),
        threads: TRAIN_THREADS
        priority: PRIORITY["tune"]
        resources:
            gpu=lambda wc: gpus(tuning_run_of(wc)),
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.train {params.overrides} seed={wildcards.seed} threads={threads}"
            " run.out={params.out} run.ablation={wildcards.ablation}"
            " run.variant={wildcards.variant} run.cache={input.cache} run.verbose=false"


    rule train:
        input:
            cache=lambda wc: str(S.data_cache(run_of(wc).dataset)),
            selection=lambda wc: selection_input(run_of(wc)),
        output:
            metrics=run_path("metrics.json"),
            history=run_path("history.csv"),
            model=run_path("model.pt"),
            config=run_path("config.yaml"),
        log:
            run_path("train.log"),
        params:
            overrides=lambda wc: quoted(run_of(wc).overrides),
            tuned=lambda wc: quoted(tuned_lr(run_of(wc))),
            out=lambda wc: str(S.run(wc.ablation, wc.variant, wc.seed)),
        threads: TRAIN_THREADS
        priority: PRIORITY["train"]
        resources:
            gpu=lambda wc: gpus(run_of(wc)),
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.train {params.overrides} {params.tuned} seed={wildcards.seed}"
            " threads={threads} run.out={params.out} run.ablation={wildcards.ablation}"
            " run.variant={wildcards.variant} run.cache={input.cache} run.verbose=false"

else:
    # One rule per batch, its runs' files as outputs (no wildcards: a batch's runs differ in
    # variant and seed). The first batch's rule keeps the plain name (train, tune) that --until
    # refers to; every batch rule takes the resources a profile sets for that name. Outputs are
    # flagged update: a rerun after a kill keeps the runs already finished (the job skips them)
    # instead of deleting them first.
    for _name, _batch in batch_rules("train", TRAIN_BATCHES):

        rule:
            name:
                _name
            input:
                cache=str(S.data_cache(_batch[0].dataset)),
                selection=selection_input(_batch[0]),
            output:
                [update(str(run_dir(r) / n)) for r in _batch for n in RUN_FILES],
            log:
                batch_log("train", _batch),
            params:
                shared=shared_overrides(_batch),
                members=members(_batch, run_dir),
            threads: TRAIN_THREADS
            priority: PRIORITY["train"]
            resources:
                gpu=gpus(_batch[0]),
                **profile_resources("train"),
            conda:
                "../envs/study.yaml"
            shell:
                "python -m study.train {params.shared} threads={threads} run.verbose=false"
                " {params.members} 2> {log}"

    for _name, _batch in batch_rules("tune", TUNING_BATCHES):

        rule:
            name:
                _name
            input:
                cache=str(S.data_cache(_batch[0].dataset)),
            output:
                [update(str(tuning_dir(t) / n)) for t in _batch for n in RUN_FILES],
            log:
                batch_log("tune", _batch),
            params:
                shared=shared_overrides(_batch),
                members=members(_batch, tuning_dir),
            threads: TRAIN_THREADS
            priority: PRIORITY["tune"]
            resources:
                gpu=gpus(_batch[0]),
                **profile_resources("tune"),
            conda:
                "../envs/study.yaml"
            shell:
                "python -m study.train {params.shared} threads={threads} run.verbose=false"
                " {params.members} 2> {log}"
