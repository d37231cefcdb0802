# The data sets of the GRU4Rec authors' comparison besides rsc15 (config key dataset): their raw files, from the
# folder `raw`, downloaded (Rees46) or generated in their format, split as the authors' scripts do into the same
# split files and stats.json that RSC15's clicks give (data.smk), which every later stage reads unchanged.
# Code: src/gru4rec_pipeline/data/datasets/ (stage.py), src/gru4rec_pipeline/synthetic/datasets.py.

if DATASET != names.DEFAULT_DATASET:

    ruleorder: split_dataset > split_sessions

    rule synthesize_dataset_raw:
        input:
            code=code_inputs("synthesize_dataset_raw"),
        output:
            raw=dataset_raw_files(DATASET_SYNTHETIC_FOLDER, DATASET_SPEC.raw_files),
        log:
            log_file("synthesize_dataset_raw/synthesize_dataset_raw.log"),
        benchmark:
            benchmark_file("synthesize_dataset_raw/synthesize_dataset_raw.tsv")
        conda:
            "../../envs/data.yaml"
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            dataset=DATASET,
            preset=config["synthetic"]["preset"],
            seed=config["synthetic"]["seed"],
        script:
            "../scripts/synthesize_dataset_raw.py"

    rule split_dataset:
        input:
            raw=SOURCE["files"],
            source=DATA_SOURCE,
            code=code_inputs("split_dataset"),
        output:
            **{split: result_file(f"data/{split}.parquet") for split in SPLITS},
            **get_dataset_item_map(),
            stats=result_file("data/stats.json"),
        log:
            log_file("split_dataset/split_dataset.log"),
        benchmark:
            benchmark_file("split_dataset/split_dataset.tsv")
        conda:
            "../../envs/data.yaml"
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            dataset=DATASET,
            protocol={
                key: config["protocol"][key]
                for key in ("min_session_length", "min_item_support")
            },
            min_test_predictions=config["limits"]["min_test_predictions"],
        script:
            "../scripts/split_dataset.py"

    if DATASET_SPEC.download.urls:

        localrules:
            download_dataset_raw,

        rule download_dataset_raw:
            input:
                # Declared but never a reason to run again: the files are the same whichever code fetched them.
                code=ancient(code_inputs("download_dataset_raw")),
            output:
                raw=dataset_raw_files(
                    DATASET_DOWNLOAD_FOLDER, DATASET_SPEC.download.urls
                ),
            log:
                log_file("download_dataset_raw/download_dataset_raw.log"),
            # download() retries and resumes itself (data.smk's download_archive says why Snakemake does not).
            retries: 0
            conda:
                "../../envs/data.yaml"
            params:
                dataset=DATASET,
                min_rate=config["limits"]["download_min_bytes_per_s"],
            script:
                "../scripts/download_dataset_raw.py"
