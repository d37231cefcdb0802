# Evaluation stage: recall@k and MRR@k against all items of every trained model, the baselines and, on
# synthetic data, the oracle. Code: src/gru4rec_pipeline/evaluation/.


rule evaluate_model:
    input:
        model="results/models/{loss}/model.pt",
        training="results/models/{loss}/training.json",
        evaluation=sessions_file("eval.npz"),
        vocab=sessions_file("vocab.parquet"),
        code=code_inputs("evaluate_model"),
    output:
        recall="results/recall_{loss}.txt",
        metrics="results/metrics/{loss}.json",
    log:
        "logs/evaluate_model/{loss}.log",
    benchmark:
        "benchmarks/evaluate_model/{loss}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
        hyperparameters=get_hyperparameters,
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate_model.py"


rule evaluate_baseline:
    input:
        train=sessions_file("train.npz"),
        evaluation=sessions_file("eval.npz"),
        vocab=sessions_file("vocab.parquet"),
        code=code_inputs("evaluate_baseline"),
    output:
        recall="results/recall_{baseline}.txt",
        metrics="results/metrics/{baseline}.json",
    log:
        "logs/evaluate_baseline/{baseline}.log",
    benchmark:
        "benchmarks/evaluate_baseline/{baseline}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
        itemknn=config["baselines"]["itemknn"],
    script:
        "../scripts/evaluate_baseline.py"


rule evaluate_oracle:
    input:
        process=get_synthetic_process,
        evaluation=sessions_file("eval.npz"),
        vocab=sessions_file("vocab.parquet"),
        code=code_inputs("evaluate_oracle"),
    output:
        recall="results/recall_oracle.txt",
        metrics="results/metrics/oracle.json",
    log:
        "logs/evaluate_oracle/oracle.log",
    benchmark:
        "benchmarks/evaluate_oracle/oracle.tsv"
    conda:
        "../../envs/model.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
    script:
        "../scripts/evaluate_oracle.py"
