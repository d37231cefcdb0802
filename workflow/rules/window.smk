# The window preset (protocol.preset: window): session-rec's sliding windows. One split per slice
# (results/data/window/{slice}/), and per slice the sessions, every model and baseline, trained and evaluated
# (results/window/{slice}/); results/window/summary.md gives the mean over slices and each slice's figure.
# The per-slice rules are the final setting's rules on the slice's files. Code: src/gru4rec_pipeline/data/window.py.


rule split_window:
    input:
        clicks=result_file("data/clicks.parquet"),
        code=code_inputs("split_window"),
    output:
        splits=expand(
            result_file("data/window/{slice}/{split}.parquet"),
            slice=WINDOW_SLICES,
            split=("train_full", "test"),
        ),
        stats=result_file("data/window/stats.json"),
    log:
        log_file("split_window/split_window.log"),
    benchmark:
        benchmark_file("split_window/split_window.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        protocol=config["protocol"],
    script:
        "../scripts/split_window.py"


use rule build_sessions as build_window_sessions with:
    input:
        train=result_file("data/window/{slice}/train_full.parquet"),
        evaluation=result_file("data/window/{slice}/test.parquet"),
        code=code_inputs("build_sessions"),
    output:
        vocab=result_file("window/{slice}/sessions/vocab.parquet"),
        train=result_file("window/{slice}/sessions/train.npz"),
        evaluation=result_file("window/{slice}/sessions/eval.npz"),
        counts=result_file("window/{slice}/sessions/counts.json"),
    log:
        log_file("build_sessions/window/{slice}.log"),
    benchmark:
        benchmark_file("build_sessions/window/{slice}.tsv")


use rule train_model as train_model_window with:
    input:
        train=result_file("window/{slice}/sessions/train.npz"),
        vocab=result_file("window/{slice}/sessions/vocab.parquet"),
        evaluation=(
            result_file("window/{slice}/sessions/eval.npz")
            if config["training"]["eval_every_epoch"]
            else []
        ),
        code=code_inputs("train_model"),
    output:
        model=result_file("window/{slice}/models/{loss}/model.pt"),
        history=result_file("window/{slice}/models/{loss}/history.csv"),
        summary=result_file("window/{slice}/models/{loss}/training.json"),
        state=result_file(
            f"window/{{slice}}/models/{{loss}}/{names.TRAINING_STATE_FILE}"
        ),
    log:
        log_file("train_model/window/{slice}/{loss}.log"),
    benchmark:
        benchmark_file("train_model/window/{slice}/{loss}.tsv")
    params:
        hyperparameters=get_hyperparameters,
        seed=config["seed"],
        device=config["device"],
        # The slice's learning curve is measured on its test split, as the final setting's: for reading only.
        eval_split="test",
        early_stopping=None,


use rule evaluate_model as evaluate_model_window with:
    input:
        model=result_file("window/{slice}/models/{loss}/model.pt"),
        training=result_file("window/{slice}/models/{loss}/training.json"),
        evaluation=result_file("window/{slice}/sessions/eval.npz"),
        vocab=result_file("window/{slice}/sessions/vocab.parquet"),
        source=DATA_SOURCE,
        code=code_inputs("evaluate_model"),
    output:
        recall=result_file("window/{slice}/recall_{loss}.txt"),
        metrics=result_file("window/{slice}/metrics/{loss}.json"),
        ranks=result_file("window/{slice}/metrics/{loss}.ranks.npz"),
    log:
        log_file("evaluate_model/window/{slice}/{loss}.log"),
    benchmark:
        benchmark_file("evaluate_model/window/{slice}/{loss}.tsv")


use rule evaluate_baseline as evaluate_baseline_window with:
    input:
        train=result_file("window/{slice}/sessions/train.npz"),
        evaluation=result_file("window/{slice}/sessions/eval.npz"),
        vocab=result_file("window/{slice}/sessions/vocab.parquet"),
        source=DATA_SOURCE,
        code=code_inputs("evaluate_baseline"),
    output:
        recall=result_file("window/{slice}/recall_{baseline}.txt"),
        metrics=result_file("window/{slice}/metrics/{baseline}.json"),
        ranks=result_file("window/{slice}/metrics/{baseline}.ranks.npz"),
    log:
        log_file("evaluate_baseline/window/{slice}/{baseline}.log"),
    benchmark:
        benchmark_file("evaluate_baseline/window/{slice}/{baseline}.tsv")


rule summarize_window:
    input:
        metrics=expand(
            result_file("window/{slice}/metrics/{name}.json"),
            slice=WINDOW_SLICES,
            name=get_window_models(),
        ),
        code=code_inputs("summarize_window"),
    output:
        tsv=result_file("window/summary.tsv"),
        md=result_file("window/summary.md"),
    log:
        log_file("summarize_window/summarize_window.log"),
    conda:
        "../../envs/report.yaml"
    params:
        slices=WINDOW_SLICES,
    script:
        "../scripts/summarize_window.py"
