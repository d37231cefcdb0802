# Model stage: GRU4Rec training, one job per setting and loss (final: train_full, tuning: train_tr).
# Code: src/gru4rec_pipeline/training/ (run.py: run_training of the TrainingJob the script builds), model/.


rule train_model:
    input:
        train=sessions_file("{setting}", "train.npz"),
        vocab=sessions_file("{setting}", "vocab.parquet"),
        evaluation=get_epoch_evaluation_split,
        code=code_inputs("train_model"),
    output:
        model=model_file("{setting}", "{loss}", "model.pt"),
        history=model_file("{setting}", "{loss}", "history.csv"),
        summary=model_file("{setting}", "{loss}", "training.json"),
        # What a retrain continues: optimizer state and random streams (training/state.py).
        state=model_file("{setting}", "{loss}", "training_state.pt"),
    log:
        log_file("train_model/{setting}/{loss}.log"),
    benchmark:
        benchmark_file("train_model/{setting}/{loss}.tsv")
    conda:
        "../../envs/model.yaml"
    # Data-parallel (training.processes x training.nodes): the job starts its processes itself (torchrun here,
    # srun on SLURM), so it asks for all their threads, and on SLURM for one task per process.
    threads: get_training_job_threads()
    resources:
        mem_mb=8000 * get_training_processes()[0],
        runtime=240,
        gpu=get_training_job_gpus,
        gpu_share=get_training_gpu_share,
        tasks=get_training_tasks,
        nodes=get_training_nodes,
        # SLURM: each task (process) has the training's threads; with GPUs one task per GPU.
        cpus_per_task=config["training"]["threads"],
        tasks_per_gpu=1,
    params:
        hyperparameters=get_hyperparameters,
        processes=get_training_processes()[0],
        nodes=get_training_processes()[1],
        exchange=config["training"]["exchange"],
        engine=config["training"]["engine"],
        seed=config["seed"],
        device=config["device"],
        evaluation=get_curve_settings(),
        eval_every_epoch=config["training"]["eval_every_epoch"],
        eval_split=lambda wildcards: names.SETTING_SPLITS[wildcards.setting]["eval"],
        early_stopping=get_early_stopping,
    script:
        "../scripts/train_model.py"


# A repeated run (replicates: N) of a loss with seed `seed` + 1 .. N - 1, beside the first run's files.
use rule train_model as train_model_replicate with:
    output:
        model=replicate_model_file("{setting}", "{loss}", "{seed}", "model.pt"),
        history=replicate_model_file("{setting}", "{loss}", "{seed}", "history.csv"),
        summary=replicate_model_file("{setting}", "{loss}", "{seed}", "training.json"),
        state=replicate_model_file(
            "{setting}", "{loss}", "{seed}", names.TRAINING_STATE_FILE
        ),
    log:
        log_file("train_model/{setting}/{loss}/seed{seed}.log"),
    benchmark:
        benchmark_file("train_model/{setting}/{loss}/seed{seed}.tsv")
    params:
        hyperparameters=get_hyperparameters,
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        evaluation=get_curve_settings(),
        eval_every_epoch=config["training"]["eval_every_epoch"],
        eval_split=lambda wildcards: names.SETTING_SPLITS[wildcards.setting]["eval"],
        early_stopping=get_early_stopping,
