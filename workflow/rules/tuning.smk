# Tuning stage: a hyperparameter study per loss (Optuna), its trials run by parallel worker jobs on train_tr ->
# valid, then the best setting retrained on train_full and evaluated on test. Code: src/gru4rec_pipeline/tuning/.
#   snakemake --cores 8 results/tuning/bpr_max/best.yaml     # the study
#   snakemake --cores 8 results/recall_bpr_max_tuned.txt      # and the tuned model
# Workers share the study through its storage (a journal file in results/tuning/{loss}/, or tuning.storage);
# each runs trials until the study holds tuning.trials, so Snakemake or SLURM decides how many run at once.


localrules:
    summarize_study,


rule tune_worker:
    input:
        train="results/sessions/tuning/train.npz",
        evaluation="results/sessions/tuning/eval.npz",
        vocab="results/sessions/tuning/vocab.parquet",
        code=code_inputs("tune_worker"),
    output:
        record="results/tuning/{loss}/workers/{worker}.json",
    log:
        "logs/tune_worker/{loss}/{worker}.log",
    benchmark:
        "benchmarks/tune_worker/{loss}/{worker}.tsv"
    conda:
        "../../envs/tuning.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=8000,
        # Minutes. A worker runs trials until the study is full; one stopped by the limit is resubmitted
        # (profiles/slurm: retries) and its unfinished trial runs again.
        runtime=1440,
        gpu=get_training_gpus,
        gpu_share=get_training_gpu_share,
    params:
        folder="results/tuning/{loss}",
        tuning=get_study_settings(),
        space=get_search_space,
        hyperparameters=get_hyperparameters,
        evaluation=get_trial_evaluation_settings(),
        early_stopping=dict(EARLY_STOPPING) if EARLY_STOPPING["patience"] else None,
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/tune_worker.py"


rule summarize_study:
    input:
        workers=get_study_workers,
        code=code_inputs("summarize_study"),
    output:
        best="results/tuning/{loss}/best.yaml",
        study="results/tuning/{loss}/study.json",
        trials=report(
            "results/tuning/{loss}/trials.tsv",
            caption="../report/tuning_trials.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "trials (TSV)"},
        ),
        history=report(
            "results/tuning/{loss}/optimization_history.png",
            caption="../report/optimization_history.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "optimization history"},
        ),
        importances=report(
            "results/tuning/{loss}/param_importances.png",
            caption="../report/param_importances.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "hyperparameter importances"},
        ),
    log:
        "logs/summarize_study/{loss}.log",
    conda:
        "../../envs/tuning.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder="results/tuning/{loss}",
        tuning=get_study_settings(),
        space=get_search_space,
        hyperparameters=get_hyperparameters,
    script:
        "../scripts/summarize_study.py"


rule train_tuned_model:
    input:
        best="results/tuning/{loss}/best.yaml",
        train="results/sessions/final/train.npz",
        vocab="results/sessions/final/vocab.parquet",
        evaluation=get_tuned_epoch_evaluation_split(),
        code=code_inputs("train_tuned_model"),
    output:
        model=model_file("final", "{loss}_tuned", "model.pt"),
        history=model_file("final", "{loss}_tuned", "history.csv"),
        summary=model_file("final", "{loss}_tuned", "training.json"),
        state=model_file("final", "{loss}_tuned", "training_state.pt"),
    log:
        "logs/train_tuned_model/{loss}.log",
    benchmark:
        "benchmarks/train_tuned_model/{loss}.tsv"
    conda:
        "../../envs/tuning.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=get_training_gpus,
        gpu_share=get_training_gpu_share,
    params:
        seed=config["seed"],
        device=config["device"],
        checkpoint_root=model_file("final", "{loss}_tuned", "checkpoints"),
        evaluation=get_curve_settings(),
        eval_every_epoch=config["training"]["eval_every_epoch"],
    script:
        "../scripts/train_tuned_model.py"


rule evaluate_tuned_model:
    input:
        best="results/tuning/{loss}/best.yaml",
        study="results/tuning/{loss}/study.json",
        model=model_file("final", "{loss}_tuned", "model.pt"),
        training=model_file("final", "{loss}_tuned", "training.json"),
        evaluation="results/sessions/final/eval.npz",
        vocab="results/sessions/final/vocab.parquet",
        source=DATA_SOURCE,
        code=code_inputs("evaluate_tuned_model"),
    output:
        recall=recall_file("final", "{loss}_tuned"),
        metrics=metrics_file("final", "{loss}_tuned"),
        ranks=ranks_file("final", "{loss}_tuned"),
    log:
        "logs/evaluate_tuned_model/{loss}.log",
    benchmark:
        "benchmarks/evaluate_tuned_model/{loss}.tsv"
    conda:
        "../../envs/tuning.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate_tuned_model.py"
