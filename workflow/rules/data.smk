# Data stages: the source's record -> archive -> raw clicks -> clicks.parquet -> protocol splits -> session arrays
# (+ exports).
# Code: src/gru4rec_pipeline/data/.


localrules:
    download_archive,


rule download_archive:
    input:
        # Declared but never a reason to run again: the archive is the same whichever code fetched it
        # (its checksum says so), and a download is costly.
        code=ancient(code_inputs("download_archive")),
    output:
        archive=result_file(DOWNLOADED_ARCHIVE),
    log:
        log_file("download_archive/download_archive.log"),
    cache: "omit-software"
    # No Snakemake retries, whatever --retries or a profile says: download() retries what a retry can fix
    # (within its own bounds) and resumes from the partial file; a checksum mismatch or a 404 cannot change
    # on retry, and a rerun of the workflow resumes where this one stopped.
    retries: 0
    conda:
        "../../envs/data.yaml"
    params:
        url=config["url"],
        sha256=config["sha256"],
        min_rate=config["limits"]["download_min_bytes_per_s"],
    script:
        "../scripts/download_archive.py"


# What the clicks come from (data/source.py): reruns when the configured source changes (another path, preset,
# seed, URL) or its file does (size, mtime), and everything from the clicks down reruns after it.
rule record_data_source:
    input:
        data=get_source_file(),
        code=code_inputs("record_data_source"),
    output:
        record=DATA_SOURCE,
    log:
        log_file("record_data_source/record_data_source.log"),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        source=get_source_marker(),
    script:
        "../scripts/record_data_source.py"


rule extract_clicks:
    input:
        archive=get_archive(),
        source=DATA_SOURCE,
        code=code_inputs("extract_clicks"),
    output:
        clicks=result_file("raw/yoochoose-clicks.dat"),
    log:
        log_file("extract_clicks/extract_clicks.log"),
    # Cached between workflow copies (--cache), so no benchmark: a cache hit could not fill it.
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        max_bytes=config["limits"]["max_extracted_bytes"],
    script:
        "../scripts/extract_clicks.py"


rule clicks_to_parquet:
    input:
        clicks=get_click_log(),
        source=DATA_SOURCE,
        code=code_inputs("clicks_to_parquet"),
    output:
        parquet=result_file("data/clicks.parquet"),
    log:
        log_file("clicks_to_parquet/clicks_to_parquet.log"),
    benchmark:
        benchmark_file("clicks_to_parquet/clicks_to_parquet.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        log_format=get_click_log_format(),
        own_data=config["own_data"],
    script:
        "../scripts/clicks_to_parquet.py"


rule extract_test_clicks:
    input:
        archive=get_archive(),
        source=DATA_SOURCE,
        code=code_inputs("extract_test_clicks"),
    output:
        clicks=result_file("data/test_clicks.parquet"),
    log:
        log_file("extract_test_clicks/extract_test_clicks.log"),
    benchmark:
        benchmark_file("extract_test_clicks/extract_test_clicks.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/extract_test_clicks.py"


rule split_sessions:
    input:
        clicks=result_file("data/clicks.parquet"),
        test_clicks=get_test_clicks,
        code=code_inputs("split_sessions"),
    output:
        **{split: result_file(f"data/{split}.parquet") for split in SPLITS},
        stats=result_file("data/stats.json"),
    log:
        log_file("split_sessions/split_sessions.log"),
    benchmark:
        benchmark_file("split_sessions/split_sessions.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        protocol=config["protocol"],
        min_test_predictions=config["limits"]["min_test_predictions"],
    script:
        "../scripts/split_sessions.py"


rule build_sessions:
    input:
        train=get_setting_split("train"),
        evaluation=get_setting_split("eval"),
        code=code_inputs("build_sessions"),
    output:
        vocab=sessions_file("{setting}", "vocab.parquet"),
        train=sessions_file("{setting}", "train.npz"),
        evaluation=sessions_file("{setting}", "eval.npz"),
        counts=sessions_file("{setting}", "counts.json"),
    log:
        log_file("build_sessions/{setting}.log"),
    benchmark:
        benchmark_file("build_sessions/{setting}.tsv")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        min_session_length=config["protocol"]["min_session_length"],
    script:
        "../scripts/build_sessions.py"


rule export_split:
    input:
        events=result_file("data/{split}.parquet"),
        vocab=sessions_file(SETTING, "vocab.parquet"),
        code=code_inputs("export_split"),
    output:
        tsv=result_file("export/{split}.tsv"),
        paddle=result_file("export/{split}.paddle.txt"),
    log:
        log_file("export_split/{split}.log"),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/export_split.py"
