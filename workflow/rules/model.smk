# Model stage: GRU4Rec training, one job per loss. Code: src/gru4rec_pipeline/model/.


rule train_model:
    input:
        train=sessions_file("train.npz"),
        vocab=sessions_file("vocab.parquet"),
        code=code_inputs("train_model"),
    output:
        model="results/models/{loss}/model.pt",
        history="results/models/{loss}/history.csv",
        summary="results/models/{loss}/training.json",
    log:
        "logs/train_model/{loss}.log",
    benchmark:
        "benchmarks/train_model/{loss}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=get_training_gpus,
        gpu_share=get_training_gpu_share,
    params:
        hyperparameters=get_hyperparameters,
        seed=config["seed"],
        device=config["device"],
        checkpoint_root="results/models/{loss}/checkpoints",
    script:
        "../scripts/train_model.py"
