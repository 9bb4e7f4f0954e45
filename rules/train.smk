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


# One run per job (runs_per_job: 1) or several: a job then trains a batch of seeds of one variant
# (or the learning-rate levels of one tuning sweep) in one process, paying the start-up once.
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
            tuned=lambda wc, input: quoted(tuned_lr(run_of(wc), input)),
            out=lambda wc: str(S.run(wc.ablation, wc.variant, wc.seed)),
        threads: TRAIN_THREADS
        resources:
            gpu=lambda wc: gpus(run_of(wc)),
        conda:
            "../envs/study.yaml"
        shell:
            "python -m study.train {params.overrides} {params.tuned} seed={wildcards.seed}"
            " threads={threads} run.out={params.out} run.ablation={wildcards.ablation}"
            " run.variant={wildcards.variant} run.cache={input.cache} run.verbose=false"

else:
    # One rule per distinct tuple of seeds (levels); its {pair} wildcard is "<ablation>/<variant>"
    # restricted to the variants batched that way, so no two rules can make the same file. The
    # largest group keeps the plain name (train, tune) that profiles and --until refer to.
    # Outputs are flagged update: a rerun after a kill keeps the runs already finished (the
    # job skips them) instead of deleting them first.
    for _name, _seeds, _pairs in batch_rules("train", TRAIN_BATCHES):

        rule:
            name:
                _name
            input:
                cache=lambda wc: str(S.data_cache(batch_run(wc).dataset)),
                selection=lambda wc: selection_input(batch_run(wc)),
            output:
                [update(pair_path(run_path, n, s)) for s in _seeds for n in RUN_FILES],
            log:
                str(S.log(f"train/{{pair}}_seeds_{'_'.join(_seeds)}")),
            params:
                shared=lambda wc, input: quoted(
                    [
                        *batch_run(wc).overrides,
                        *tuned_lr(batch_run(wc), input),
                        *where(batch_run(wc)),
                    ]
                ),
                members=lambda wc, seeds=_seeds: members(
                    f"seed={s} run.out={S.run(*split_pair(wc), s)}" for s in seeds
                ),
            threads: TRAIN_THREADS
            resources:
                gpu=lambda wc: gpus(batch_run(wc)),
            wildcard_constraints:
                pair=pair_pattern(_pairs),
            conda:
                "../envs/study.yaml"
            shell:
                "python -m study.train {params.shared} threads={threads} run.verbose=false"
                " {params.members} 2> {log}"

    for _name, _levels, _pairs in batch_rules("tune", TUNING_BATCHES):

        rule:
            name:
                _name
            input:
                cache=lambda wc: str(S.data_cache(batch_tuning_run(wc).dataset)),
            output:
                [update(tuning_pair_path(n, m)) for m in _levels for n in RUN_FILES],
            log:
                str(S.log(f"tune/{{pair}}_{_name}")),
            params:
                shared=lambda wc: quoted(where(batch_tuning_run(wc))),
                members=lambda wc, levels=_levels: members(
                    quoted(TUNING[(*split_pair(wc), *level_seed(m))].overrides)
                    + f" seed={level_seed(m)[1]}"
                    + f" run.out={S.tuning_run(*split_pair(wc), *level_seed(m))}"
                    for m in levels
                ),
            threads: TRAIN_THREADS
            resources:
                gpu=lambda wc: gpus(batch_tuning_run(wc)),
            wildcard_constraints:
                pair=pair_pattern(_pairs),
            conda:
                "../envs/study.yaml"
            shell:
                "python -m study.train {params.shared} threads={threads} run.verbose=false"
                " {params.members} 2> {log}"
