# Evaluation stage: recall@k and MRR@k against all items of every trained model, the baselines and, on
# synthetic data, the oracle. Code: src/gru4rec_pipeline/evaluation/.
# Each rule evaluates the final setting (train_full -> test, results/recall_{name}.txt); its `_on_valid` twin
# evaluates the tuning setting (train_tr -> valid, results/tuning/recall_{name}.txt), so both coexist. A twin's
# input replaces the whole input of the rule it uses. Every output names the data set (results/data/source.json).


rule evaluate_model:
    input:
        model=model_file("final", "{loss}", "model.pt"),
        training=model_file("final", "{loss}", "training.json"),
        evaluation="results/sessions/final/eval.npz",
        vocab="results/sessions/final/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_model"),
    output:
        recall=recall_file("final", "{loss}"),
        metrics=metrics_file("final", "{loss}"),
        ranks=ranks_file("final", "{loss}"),
    log:
        "logs/evaluate_model/final/{loss}.log",
    benchmark:
        "benchmarks/evaluate_model/final/{loss}.tsv"
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


use rule evaluate_model as evaluate_model_on_valid with:
    input:
        model=model_file("tuning", "{loss}", "model.pt"),
        training=model_file("tuning", "{loss}", "training.json"),
        evaluation="results/sessions/tuning/eval.npz",
        vocab="results/sessions/tuning/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_model"),
    output:
        recall=recall_file("tuning", "{loss}"),
        metrics=metrics_file("tuning", "{loss}"),
        ranks=ranks_file("tuning", "{loss}"),
    log:
        "logs/evaluate_model/tuning/{loss}.log",
    benchmark:
        "benchmarks/evaluate_model/tuning/{loss}.tsv"


# A repeated run's evaluation (replicates: N), in files that carry its seed.
use rule evaluate_model as evaluate_model_replicate with:
    input:
        model=replicate_model_file("final", "{loss}", "{seed}", "model.pt"),
        training=replicate_model_file("final", "{loss}", "{seed}", "training.json"),
        evaluation="results/sessions/final/eval.npz",
        vocab="results/sessions/final/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_model"),
    output:
        recall=replicate_recall_file("final", "{loss}", "{seed}"),
        metrics=replicate_metrics_file("final", "{loss}", "{seed}"),
        ranks=replicate_metrics_file("final", "{loss}", "{seed}", ".ranks.npz"),
    log:
        "logs/evaluate_model/final/{loss}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate_model/final/{loss}/seed{seed}.tsv"
    params:
        evaluation=get_evaluation_settings(),
        hyperparameters=get_hyperparameters,
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],


use rule evaluate_model_replicate as evaluate_model_replicate_on_valid with:
    input:
        model=replicate_model_file("tuning", "{loss}", "{seed}", "model.pt"),
        training=replicate_model_file("tuning", "{loss}", "{seed}", "training.json"),
        evaluation="results/sessions/tuning/eval.npz",
        vocab="results/sessions/tuning/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_model"),
    output:
        recall=replicate_recall_file("tuning", "{loss}", "{seed}"),
        metrics=replicate_metrics_file("tuning", "{loss}", "{seed}"),
        ranks=replicate_metrics_file("tuning", "{loss}", "{seed}", ".ranks.npz"),
    log:
        "logs/evaluate_model/tuning/{loss}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate_model/tuning/{loss}/seed{seed}.tsv"


rule evaluate_baseline:
    input:
        train="results/sessions/final/train.npz",
        evaluation="results/sessions/final/eval.npz",
        vocab="results/sessions/final/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_baseline"),
    output:
        recall=recall_file("final", "{baseline}"),
        metrics=metrics_file("final", "{baseline}"),
        ranks=ranks_file("final", "{baseline}"),
    log:
        "logs/evaluate_baseline/final/{baseline}.log",
    benchmark:
        "benchmarks/evaluate_baseline/final/{baseline}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
        options=get_baseline_options,
    script:
        "../scripts/evaluate_baseline.py"


use rule evaluate_baseline as evaluate_baseline_on_valid with:
    input:
        train="results/sessions/tuning/train.npz",
        evaluation="results/sessions/tuning/eval.npz",
        vocab="results/sessions/tuning/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_baseline"),
    output:
        recall=recall_file("tuning", "{baseline}"),
        metrics=metrics_file("tuning", "{baseline}"),
        ranks=ranks_file("tuning", "{baseline}"),
    log:
        "logs/evaluate_baseline/tuning/{baseline}.log",
    benchmark:
        "benchmarks/evaluate_baseline/tuning/{baseline}.tsv"


rule evaluate_oracle:
    input:
        process=get_synthetic_process,
        evaluation="results/sessions/final/eval.npz",
        vocab="results/sessions/final/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_oracle"),
    output:
        recall=recall_file("final", "oracle"),
        metrics=metrics_file("final", "oracle"),
        ranks=ranks_file("final", "oracle"),
    log:
        "logs/evaluate_oracle/final/oracle.log",
    benchmark:
        "benchmarks/evaluate_oracle/final/oracle.tsv"
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


use rule evaluate_oracle as evaluate_oracle_on_valid with:
    input:
        process=get_synthetic_process,
        evaluation="results/sessions/tuning/eval.npz",
        vocab="results/sessions/tuning/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_oracle"),
    output:
        recall=recall_file("tuning", "oracle"),
        metrics=metrics_file("tuning", "oracle"),
        ranks=ranks_file("tuning", "oracle"),
    log:
        "logs/evaluate_oracle/tuning/oracle.log",
    benchmark:
        "benchmarks/evaluate_oracle/tuning/oracle.tsv"
