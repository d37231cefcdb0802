# The benchmark across data sets (config key benchmark.datasets): one table of every model on every listed data set,
# from each set's results (each run with --config dataset=NAME), beside the official implementation's published
# figures on the real data sets. Code: src/gru4rec_pipeline/report/benchmark.py.


localrules:
    summarize_benchmark,


rule summarize_benchmark:
    input:
        unpack(get_benchmark_inputs),
        code=code_inputs("summarize_benchmark"),
    output:
        tsv=benchmark_table("tsv"),
        md=benchmark_table("md"),
        html=report(
            benchmark_table("html"),
            caption="../report/benchmark.rst",
            category="Results",
            labels={"output": "benchmark across data sets"},
        ),
    log:
        log_file(
            "summarize_benchmark/summarize_benchmark.log",
            dataset=names.DEFAULT_DATASET,
        ),
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        datasets=BENCHMARK_DATASETS,
    script:
        "../scripts/summarize_benchmark.py"
