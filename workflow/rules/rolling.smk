# The day-by-day evaluation (rolling.run, rolling.days, rolling.epochs_warm): for each of the last D days, its
# sessions are tested with three strategies' models, each (strategy, day, loss) a job:
#   scratch  a new training on all days before the day (the loss's configured epochs);
#   warm     the previous day's warm model retrained on the previous day (epochs_warm); day 1: scratch's;
#   frozen   the first day's scratch model, never updated.
# Code: src/gru4rec_pipeline/data/rolling.py, evaluation/rolling.py, report/rolling.py, training/retraining.py.


rule split_rolling_days:
    input:
        clicks="results/data/clicks.parquet",
        code=code_inputs("split_rolling_days"),
    output:
        before=expand("results/rolling/days/before_{day}.parquet", day=ROLLING_DAYS),
        days=expand("results/rolling/days/day_{day}.parquet", day=ROLLING_DAYS),
        record="results/rolling/days/days.json",
    log:
        "logs/split_rolling_days/split_rolling_days.log",
    benchmark:
        "benchmarks/split_rolling_days/split_rolling_days.tsv"
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
        train="results/rolling/days/before_{day}.parquet",
        evaluation="results/rolling/days/day_{day}.parquet",
        code=code_inputs("build_sessions"),
    output:
        vocab="results/rolling/sessions/day_{day}/vocab.parquet",
        train="results/rolling/sessions/day_{day}/train.npz",
        evaluation="results/rolling/sessions/day_{day}/eval.npz",
        counts="results/rolling/sessions/day_{day}/counts.json",
    log:
        "logs/build_rolling_sessions/day_{day}.log",
    benchmark:
        "benchmarks/build_rolling_sessions/day_{day}.tsv"


use rule train_model as train_rolling_scratch with:
    input:
        train="results/rolling/sessions/day_{day}/train.npz",
        vocab="results/rolling/sessions/day_{day}/vocab.parquet",
        evaluation=[],
        code=code_inputs("train_model"),
    output:
        model="results/rolling/{loss}/scratch/day_{day}/model.pt",
        history="results/rolling/{loss}/scratch/day_{day}/history.csv",
        summary="results/rolling/{loss}/scratch/day_{day}/training.json",
        state=f"results/rolling/{{loss}}/scratch/day_{{day}}/{names.TRAINING_STATE_FILE}",
    log:
        "logs/train_rolling_scratch/{loss}/day_{day}.log",
    benchmark:
        "benchmarks/train_rolling_scratch/{loss}/day_{day}.tsv"
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
        model="results/rolling/{loss}/warm/day_{day}/model.pt",
        history="results/rolling/{loss}/warm/day_{day}/history.csv",
        summary="results/rolling/{loss}/warm/day_{day}/training.json",
        vocab="results/rolling/{loss}/warm/day_{day}/vocab.parquet",
        state=f"results/rolling/{{loss}}/warm/day_{{day}}/{names.TRAINING_STATE_FILE}",
    log:
        "logs/retrain_rolling_warm/{loss}/day_{day}.log",
    benchmark:
        "benchmarks/retrain_rolling_warm/{loss}/day_{day}.tsv"
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
        day="results/rolling/days/day_{day}.parquet",
        code=code_inputs("evaluate_rolling_day"),
    output:
        record="results/rolling/{loss}/records/{strategy}_day_{day}.json",
    log:
        "logs/evaluate_rolling_day/{loss}/{strategy}_day_{day}.log",
    benchmark:
        "benchmarks/evaluate_rolling_day/{loss}/{strategy}_day_{day}.tsv"
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
        tsv="results/rolling/{loss}.tsv",
        png=report(
            "results/rolling/{loss}.png",
            caption="../report/rolling.rst",
            category="Results",
            labels={"output": "day-by-day recall@20", "loss": "{loss}"},
        ),
        md="results/rolling/{loss}.md",
    log:
        "logs/report_rolling/{loss}.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report_rolling.py"
