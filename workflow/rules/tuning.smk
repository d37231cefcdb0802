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
        train=sessions_file("tuning", "train.npz"),
        evaluation=sessions_file("tuning", "eval.npz"),
        vocab=sessions_file("tuning", "vocab.parquet"),
        code=code_inputs("tune_worker"),
    output:
        record=result_file("tuning/{loss}/workers/{worker}.json"),
    log:
        log_file("tune_worker/{loss}/{worker}.log"),
    benchmark:
        benchmark_file("tune_worker/{loss}/{worker}.tsv")
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
        folder=result_file("tuning/{loss}"),
        tuning=get_study_settings(),
        space=get_search_space,
        hyperparameters=get_hyperparameters,
        evaluation=get_trial_evaluation_settings(),
        early_stopping=dict(EARLY_STOPPING) if EARLY_STOPPING["patience"] else None,
        seed=config["seed"],
        device=config["device"],
        engine=config["training"]["engine"],
    script:
        "../scripts/tune_worker.py"


rule summarize_study:
    input:
        workers=get_study_workers,
        code=code_inputs("summarize_study"),
    output:
        best=result_file("tuning/{loss}/best.yaml"),
        study=result_file("tuning/{loss}/study.json"),
        trials=report(
            result_file("tuning/{loss}/trials.tsv"),
            caption="../report/tuning_trials.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "trials (TSV)"},
        ),
        history=report(
            result_file("tuning/{loss}/optimization_history.png"),
            caption="../report/optimization_history.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "optimization history"},
        ),
        importances=report(
            result_file("tuning/{loss}/param_importances.png"),
            caption="../report/param_importances.rst",
            category="Tuning",
            subcategory="{loss}",
            labels={"loss": "{loss}", "output": "hyperparameter importances"},
        ),
    log:
        log_file("summarize_study/{loss}.log"),
    conda:
        "../../envs/tuning.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder=result_file("tuning/{loss}"),
        tuning=get_study_settings(),
        space=get_search_space,
        hyperparameters=get_hyperparameters,
    script:
        "../scripts/summarize_study.py"


rule train_tuned_model:
    input:
        best=result_file("tuning/{loss}/best.yaml"),
        train=sessions_file("final", "train.npz"),
        vocab=sessions_file("final", "vocab.parquet"),
        evaluation=get_tuned_epoch_evaluation_split(),
        code=code_inputs("train_tuned_model"),
    output:
        model=model_file("final", "{loss}_tuned", "model.pt"),
        history=model_file("final", "{loss}_tuned", "history.csv"),
        summary=model_file("final", "{loss}_tuned", "training.json"),
        state=model_file("final", "{loss}_tuned", "training_state.pt"),
    log:
        log_file("train_tuned_model/{loss}.log"),
    benchmark:
        benchmark_file("train_tuned_model/{loss}.tsv")
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
        engine=config["training"]["engine"],
        evaluation=get_curve_settings(),
        eval_every_epoch=config["training"]["eval_every_epoch"],
    script:
        "../scripts/train_tuned_model.py"


rule evaluate_tuned_model:
    input:
        best=result_file("tuning/{loss}/best.yaml"),
        study=result_file("tuning/{loss}/study.json"),
        model=model_file("final", "{loss}_tuned", "model.pt"),
        training=model_file("final", "{loss}_tuned", "training.json"),
        evaluation=sessions_file("final", "eval.npz"),
        vocab=sessions_file("final", "vocab.parquet"),
        source=DATA_SOURCE,
        code=code_inputs("evaluate_tuned_model"),
    output:
        recall=recall_file("final", "{loss}_tuned"),
        metrics=metrics_file("final", "{loss}_tuned"),
        ranks=ranks_file("final", "{loss}_tuned"),
    log:
        log_file("evaluate_tuned_model/{loss}.log"),
    benchmark:
        benchmark_file("evaluate_tuned_model/{loss}.tsv")
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
