# Data preparation, learning-rate tuning and training runs.


rule prepare_data:
    output:
        f"{R}/data/{{dataset}}.pt",
    params:
        root=lambda wc: DATASETS[wc.dataset],
    log:
        f"{R}/logs/prepare_{{dataset}}.log",
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.components.data {wildcards.dataset} {params.root} {output} 2> {log}"


rule tune:
    input:
        cache=lambda wc: f"{R}/data/{tuning_run_of(wc).dataset}.pt",
    output:
        metrics=f"{R}/tune/{{ablation}}/{{variant}}/{{level}}/seed0/metrics.json",
        history=f"{R}/tune/{{ablation}}/{{variant}}/{{level}}/seed0/history.csv",
        model=f"{R}/tune/{{ablation}}/{{variant}}/{{level}}/seed0/model.pt",
        config=f"{R}/tune/{{ablation}}/{{variant}}/{{level}}/seed0/config.yaml",
    log:
        f"{R}/tune/{{ablation}}/{{variant}}/{{level}}/seed0/train.log",
    params:
        overrides=lambda wc: quoted(tuning_run_of(wc).overrides),
        out=lambda wc, output: os.path.dirname(output.metrics),
    threads: TRAIN_THREADS
    resources:
        gpu=lambda wc: gpus(tuning_run_of(wc)),
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.train {params.overrides} seed=0 threads={threads}"
        " run.out={params.out} run.ablation={wildcards.ablation}"
        " run.variant={wildcards.variant} run.cache={input.cache} run.verbose=false"


rule select_lr:
    input:
        lambda wc: tuning_files(wc.ablation),
    output:
        json=f"{R}/selection/{{ablation}}.json",
        csv=f"{R}/selection/{{ablation}}.csv",
    params:
        metric=lambda wc: ABLATIONS[wc.ablation].tune["metric"],
    log:
        f"{R}/logs/select_lr_{{ablation}}.log",
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.planning.tuning --metric {params.metric} --out {output.json} {input} > {log}"


rule train:
    input:
        cache=lambda wc: f"{R}/data/{run_of(wc).dataset}.pt",
        selection=lambda wc: (
            [f"{R}/selection/{wc.ablation}.json"] if run_of(wc).tuned else []
        ),
    output:
        metrics=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/metrics.json",
        history=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/history.csv",
        model=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/model.pt",
        config=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/config.yaml",
    log:
        f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/train.log",
    params:
        overrides=lambda wc: quoted(run_of(wc).overrides),
        tuned=lambda wc, input: (
            f"train.lr_from={input.selection[0]}" if input.selection else ""
        ),
        out=lambda wc, output: os.path.dirname(output.metrics),
    threads: TRAIN_THREADS
    resources:
        gpu=lambda wc: gpus(run_of(wc)),
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.train {params.overrides} {params.tuned} seed={wildcards.seed}"
        " threads={threads} run.out={params.out} run.ablation={wildcards.ablation}"
        " run.variant={wildcards.variant} run.cache={input.cache} run.verbose=false"
