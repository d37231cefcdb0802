# The day-by-day evaluation (rolling.run, rolling.days, rolling.epochs_warm): for each of the last D days, its
# sessions are tested with three strategies' models, each (strategy, day, loss) a job:
#   scratch  a new training on all days before the day (the loss's configured epochs);
#   warm     the previous day's warm model retrained on the previous day (epochs_warm); day 1: scratch's;
#   frozen   the first day's scratch model, never updated.
# Code: src/gru4rec_pipeline/data/rolling.py, evaluation/rolling.py, report/rolling.py, training/retraining.py.


rule split_rolling_days:
    input:
        clicks=result_file("data/clicks.parquet"),
        code=code_inputs("split_rolling_days"),
    output:
        before=expand(
            result_file("rolling/days/before_{day}.parquet"), day=ROLLING_DAYS
        ),
        days=expand(result_file("rolling/days/day_{day}.parquet"), day=ROLLING_DAYS),
        record=result_file("rolling/days/days.json"),
    log:
        log_file("split_rolling_days/split_rolling_days.log"),
    benchmark:
        benchmark_file("split_rolling_days/split_rolling_days.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        protocol=config["protocol"],
        # The number of day files: without it in the params, lowering rolling.days would leave the files of the
        # earlier, longer split in place (the first days of the old count, not the last of the new one).
        days=ROLLING["days"],
        min_test_predictions=config["limits"]["min_test_predictions"],
    script:
        "../scripts/split_rolling_days.py"


use rule build_sessions as build_rolling_sessions with:
    input:
        train=result_file("rolling/days/before_{day}.parquet"),
        evaluation=result_file("rolling/days/day_{day}.parquet"),
        code=code_inputs("build_sessions"),
    output:
        vocab=result_file("rolling/sessions/day_{day}/vocab.parquet"),
        train=result_file("rolling/sessions/day_{day}/train.npz"),
        evaluation=result_file("rolling/sessions/day_{day}/eval.npz"),
        counts=result_file("rolling/sessions/day_{day}/counts.json"),
    log:
        log_file("build_rolling_sessions/day_{day}.log"),
    benchmark:
        benchmark_file("build_rolling_sessions/day_{day}.tsv")


use rule train_model as train_rolling_scratch with:
    input:
        train=result_file("rolling/sessions/day_{day}/train.npz"),
        vocab=result_file("rolling/sessions/day_{day}/vocab.parquet"),
        evaluation=[],
        code=code_inputs("train_model"),
    output:
        model=result_file("rolling/{loss}/scratch/day_{day}/model.pt"),
        history=result_file("rolling/{loss}/scratch/day_{day}/history.csv"),
        summary=result_file("rolling/{loss}/scratch/day_{day}/training.json"),
        state=result_file(
            f"rolling/{{loss}}/scratch/day_{{day}}/{names.TRAINING_STATE_FILE}"
        ),
    log:
        log_file("train_rolling_scratch/{loss}/day_{day}.log"),
    benchmark:
        benchmark_file("train_rolling_scratch/{loss}/day_{day}.tsv")
    params:
        hyperparameters=get_hyperparameters,
        seed=config["seed"],
        device=config["device"],
        # No learning curve for the day-by-day models: they are evaluated on their day once (evaluate_rolling_day).
        eval_every_epoch=False,
        eval_split="",
        early_stopping=None,


use rule retrain_model as retrain_rolling_warm with:
    input:
        unpack(get_warm_parent),
        code=code_inputs("retrain_model"),
    output:
        model=result_file("rolling/{loss}/warm/day_{day}/model.pt"),
        history=result_file("rolling/{loss}/warm/day_{day}/history.csv"),
        summary=result_file("rolling/{loss}/warm/day_{day}/training.json"),
        vocab=result_file("rolling/{loss}/warm/day_{day}/vocab.parquet"),
        state=result_file(
            f"rolling/{{loss}}/warm/day_{{day}}/{names.TRAINING_STATE_FILE}"
        ),
    log:
        log_file("retrain_rolling_warm/{loss}/day_{day}.log"),
    benchmark:
        benchmark_file("retrain_rolling_warm/{loss}/day_{day}.tsv")
    wildcard_constraints:
        # Day 1's warm model is scratch's: the first retrain is for day 2.
        day=r"[2-9]|[1-9]\d+",
    params:
        epochs=ROLLING["epochs_warm"],
        protocol=config["protocol"],
        support_decay=config["retrain"]["support_decay"],
        device=config["device"],


rule evaluate_rolling_day:
    input:
        unpack(get_rolling_model),
        day=result_file("rolling/days/day_{day}.parquet"),
        code=code_inputs("evaluate_rolling_day"),
    output:
        record=result_file("rolling/{loss}/records/{strategy}_day_{day}.json"),
    log:
        log_file("evaluate_rolling_day/{loss}/{strategy}_day_{day}.log"),
    benchmark:
        benchmark_file("evaluate_rolling_day/{loss}/{strategy}_day_{day}.tsv")
    conda:
        "../../envs/model.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        evaluation=get_evaluation_settings(),
        min_session_length=config["protocol"]["min_session_length"],
        device=config["device"],
    script:
        "../scripts/evaluate_rolling_day.py"


rule report_rolling:
    input:
        records=get_rolling_records,
        code=code_inputs("report_rolling"),
    output:
        tsv=result_file("rolling/{loss}.tsv"),
        png=report(
            result_file("rolling/{loss}.png"),
            caption="../report/rolling.rst",
            category="Results",
            labels={"output": "day-by-day recall@20", "loss": "{loss}"},
        ),
        md=result_file("rolling/{loss}.md"),
    log:
        log_file("report_rolling/{loss}.log"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report_rolling.py"
