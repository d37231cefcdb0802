# Evaluation stage: recall@k and MRR@k against all items of every trained model, the baselines and, on
# synthetic data, the oracle. Code: src/gru4rec_pipeline/evaluation/.
# Each rule below is defined once and made for both settings: final (train_full -> test,
# results/recall_{name}.txt) and tuning (train_tr -> valid, results/tuning/recall_{name}.txt; the rule's name ends
# in _on_valid), so both coexist and no setting's rule can lack an input the other has. Every output names the
# data set (results/data/source.json).

# A model's first run, and its repeated runs (replicates: N) in files that carry the seed: the rule, the model's
# folder below its setting's, and the name in its recall file.
MODEL_RUNS = {
    "evaluate_model": ("{loss}", "{loss}"),
    "evaluate_model_replicate": ("{loss}/seed{seed}", "{loss}_seed{seed}"),
}

for setting in names.SETTINGS:
    for rule_name, (model, recall_name) in MODEL_RUNS.items():

        rule:
            name:
                setting_rule_name(rule_name, setting)
            input:
                model=model_file(setting, model, "model.pt"),
                training=model_file(setting, model, "training.json"),
                evaluation=sessions_file(setting, "eval.npz"),
                vocab=sessions_file(setting, "vocab.parquet"),
                source=DATA_SOURCE,
                code=code_inputs("evaluate_model"),
            output:
                recall=recall_file(setting, recall_name),
                metrics=metrics_file(setting, model),
                ranks=ranks_file(setting, model),
            log:
                log_file(f"evaluate_model/{setting}/{model}.log"),
            benchmark:
                benchmark_file(f"evaluate_model/{setting}/{model}.tsv")
            conda:
                "../../envs/model.yaml"
            threads: config["evaluation"]["threads"]
            resources:
                mem_mb=8000,
                runtime=60,
            params:
                evaluation=get_evaluation_settings(),
                hyperparameters=get_hyperparameters,
                seed=get_model_seed,
                device=config["device"],
            script:
                "../scripts/evaluate_model.py"

    rule:
        name:
            setting_rule_name("evaluate_baseline", setting)
        input:
            train=sessions_file(setting, "train.npz"),
            evaluation=sessions_file(setting, "eval.npz"),
            vocab=sessions_file(setting, "vocab.parquet"),
            source=DATA_SOURCE,
            code=code_inputs("evaluate_baseline"),
        output:
            recall=recall_file(setting, "{baseline}"),
            metrics=metrics_file(setting, "{baseline}"),
            ranks=ranks_file(setting, "{baseline}"),
        log:
            log_file(f"evaluate_baseline/{setting}/{{baseline}}.log"),
        benchmark:
            benchmark_file(f"evaluate_baseline/{setting}/{{baseline}}.tsv")
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

    rule:
        name:
            setting_rule_name("evaluate_oracle", setting)
        input:
            process=get_synthetic_process,
            evaluation=sessions_file(setting, "eval.npz"),
            vocab=sessions_file(setting, "vocab.parquet"),
            source=DATA_SOURCE,
            code=code_inputs("evaluate_oracle"),
        output:
            recall=recall_file(setting, "oracle"),
            metrics=metrics_file(setting, "oracle"),
            ranks=ranks_file(setting, "oracle"),
        log:
            log_file(f"evaluate_oracle/{setting}/oracle.log"),
        benchmark:
            benchmark_file(f"evaluate_oracle/{setting}/oracle.tsv")
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
