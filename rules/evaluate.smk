# Evaluation of saved models: adding a shift or a metric here never retrains.


rule shift:
    input:
        model=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/model.pt",
        config=f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/config.yaml",
        cache=lambda wc: f"{R}/data/{run_of(wc).dataset}.pt",
        settings="conf/shift.yaml",
    output:
        f"{R}/runs/{{ablation}}/{{variant}}/seed{{seed}}/shift.csv",
    log:
        f"{R}/logs/shift/{{ablation}}_{{variant}}_seed{{seed}}.log",
    threads: TRAIN_THREADS
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.shift --run $(dirname {input.model}) --data {input.cache}"
        " --threads {threads} --settings {input.settings} 2> {log}"


rule second_order:
    input:
        f"{R}/data/fashion_mnist.pt",
    output:
        f"{R}/second_order.csv",
    params:
        n=lambda wc: 500 if SCALE == "smoke" else 2000,
    log:
        f"{R}/logs/second_order.log",
    threads: TRAIN_THREADS
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.second_order --data {input} --out {output} --n {params.n}"
        " --threads {threads} 2> {log}"
