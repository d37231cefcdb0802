# Report stages: the results table, the paired significance of the differences between models and the figures
# of the configured setting, each marked for `snakemake --report report.html`. The final setting's lie in results/,
# the tuning setting's in results/tuning/ (report_file), so neither replaces the other's; the data set's figure
# serves both. The report opens on workflow/report/workflow.rst (the Snakefile's `report:`), which shows the
# setting's summary_headline.html.
# Code: src/gru4rec_pipeline/report/ (the comparison: src/gru4rec_pipeline/evaluation/significance.py)


localrules:
    summarize_results,


rule summarize_results:
    input:
        metrics=[metrics_file(SETTING, name) for name in get_evaluated_models()]
        + get_repeated_run_metrics_files(),
        significance=report_file("significance.tsv"),
        source=DATA_SOURCE,
        figure=report_file("plots/metrics_by_cutoff.png"),
        code=code_inputs("summarize_results"),
    output:
        tsv=report(
            report_file("summary.tsv"),
            caption="../report/summary_tsv.rst",
            category="Results",
            labels={"output": "summary table (TSV)"},
        ),
        md=report_file("summary.md"),
        html=report(
            report_file("summary.html"),
            caption="../report/summary.rst",
            category="Results",
            labels={"output": "summary table"},
        ),
        headline=report_file("summary_headline.html"),
    log:
        report_file("summarize_results/summarize_results.log", root="logs"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/summarize_results.py"


rule plot_metrics:
    input:
        metrics=[metrics_file(SETTING, name) for name in get_evaluated_models()]
        + get_repeated_run_metrics_files(),
        code=code_inputs("plot_metrics"),
    output:
        png=report(
            report_file("plots/metrics_by_cutoff.png"),
            caption="../report/metrics_by_cutoff.rst",
            category="Results",
            labels={"output": "recall, MRR and NDCG by cut-off"},
        ),
    log:
        report_file("plot_metrics/plot_metrics.log", root="logs"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_metrics.py"


rule plot_training_speed:
    input:
        metrics=[metrics_file(SETTING, name) for name in get_evaluated_models()],
        code=code_inputs("plot_training_speed"),
    output:
        png=report(
            report_file("plots/training_speed.png"),
            caption="../report/training_speed.rst",
            category="Training",
            labels={"output": "events per second"},
        ),
    log:
        report_file("plot_training_speed/plot_training_speed.log", root="logs"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_training_speed.py"


rule plot_training_loss:
    input:
        histories=[
            model_file(SETTING, model, "history.csv") for model in get_trained_models()
        ],
        code=code_inputs("plot_training_loss"),
    output:
        png=report(
            report_file("plots/training_loss.png"),
            caption="../report/training_loss.rst",
            category="Training",
            labels={"output": "training loss per epoch"},
        ),
    log:
        report_file("plot_training_loss/plot_training_loss.log", root="logs"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_training_loss.py"


rule plot_dataset:
    input:
        stats=result_file("data/stats.json"),
        train=result_file("data/train_full.parquet"),
        test=result_file("data/test.parquet"),
        code=code_inputs("plot_dataset"),
    output:
        png=report(
            result_file("plots/dataset_statistics.png"),
            caption="../report/dataset_statistics.rst",
            category="Splits",
            labels={"output": "dataset statistics"},
        ),
    log:
        log_file("plot_dataset/plot_dataset.log"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=8000,
        runtime=20,
    script:
        "../scripts/plot_dataset.py"


rule plot_learning_curve:
    input:
        histories=[
            model_file(SETTING, model, "history.csv") for model in get_trained_models()
        ],
        code=code_inputs("plot_learning_curve"),
    output:
        png=report(
            report_file("plots/learning_curve.png"),
            caption="../report/learning_curve.rst",
            category="Training",
            labels={"output": "recall, MRR and NDCG per epoch"},
        ),
    log:
        report_file("plot_learning_curve/plot_learning_curve.log", root="logs"),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        split=names.SETTING_SPLITS[SETTING]["eval"],
    script:
        "../scripts/plot_learning_curve.py"


rule compare_models:
    input:
        ranks=[ranks_file(SETTING, name) for name in get_evaluated_models()],
        metrics=[metrics_file(SETTING, name) for name in get_evaluated_models()],
        runs=get_replicate_metrics_files(),
        code=code_inputs("compare_models"),
    output:
        table=report(
            report_file("significance.tsv"),
            caption="../report/significance.rst",
            category="Results",
            labels={"output": "paired significance (TSV)"},
        ),
    log:
        report_file("compare_models/compare_models.log", root="logs"),
    benchmark:
        report_file("compare_models/compare_models.tsv", root="benchmarks")
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        models=get_evaluated_models(),
        runs=get_replicate_metrics(),
        cutoff=max(config["evaluation"]["cutoffs"]),
        resamples=config["evaluation"]["bootstrap_resamples"],
        seed=config["seed"],
    script:
        "../scripts/compare_models.py"
