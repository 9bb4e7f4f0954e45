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


# Sizes per scale; kept out of conf/scale because every training run's config hash covers it.
SECOND_ORDER_ARGS = {
    "smoke": "--n 200 --logreg-d 4,8,16 --mlp-width 2,4 --max-iters 300 --lbfgs-iters 100"
    " --newton-iters 15 --block 5",
    "default": "",  # the module's defaults: N from 90 to 1,290 (logreg) and 118 to 874 (mlp)
    "full": "--n 1000 --logreg-d 8,16,32,64,128,256 --mlp-width 4,8,16,32,64",
}


rule second_order:
    input:
        f"{R}/data/fashion_mnist.pt",
    output:
        table=f"{R}/second_order.csv",
        summary=f"{R}/second_order.json",
    params:
        sizes=lambda wc: SECOND_ORDER_ARGS[SCALE],
    log:
        f"{R}/logs/second_order.log",
    threads: TRAIN_THREADS
    conda:
        "../envs/study.yaml"
    shell:
        "python -m study.experiments.second_order --data {input} --out {output.table}"
        " --summary {output.summary} {params.sizes} --threads {threads} 2> {log}"
