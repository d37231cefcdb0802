# Models that keep learning: a final model retrained on new clicks (retrain.clicks), with a vocabulary that
# grows. Code: src/gru4rec_pipeline/training/retraining.py, training/job.py (retraining_job), data/increment.py.


rule retrain_model:
    input:
        model=model_file("final", "{loss}", "model.pt"),
        state=model_file("final", "{loss}", names.TRAINING_STATE_FILE),
        vocab=sessions_file("final", "vocab.parquet"),
        clicks=get_retrain_clicks,
        code=code_inputs("retrain_model"),
    output:
        model=result_file("retrained/{loss}/model.pt"),
        history=result_file("retrained/{loss}/history.csv"),
        summary=result_file("retrained/{loss}/training.json"),
        vocab=result_file("retrained/{loss}/vocab.parquet"),
        state=result_file(f"retrained/{{loss}}/{names.TRAINING_STATE_FILE}"),
    log:
        log_file("retrain_model/{loss}.log"),
    benchmark:
        benchmark_file("retrain_model/{loss}.tsv")
    conda:
        "../../envs/model.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=get_training_gpus,
        gpu_share=get_training_gpu_share,
    params:
        epochs=config["retrain"]["epochs"],
        protocol=config["protocol"],
        support_decay=config["retrain"]["support_decay"],
        device=config["device"],
        engine=config["training"]["engine"],
    script:
        "../scripts/retrain_model.py"
