# The synthetic yoochoose-format archive (the default dataset) and its generating process, for the oracle.
# Code: src/gru4rec_pipeline/synthetic/.


rule synthesize_archive:
    input:
        code=code_inputs("synthesize_archive"),
    output:
        archive=result_file(SYNTHETIC_ARCHIVE),
        process=result_file("raw/synthetic/process.npz"),
    log:
        log_file("synthesize_archive/synthesize_archive.log"),
    # Cached between workflow copies (--cache), so no benchmark: a cache hit could not fill it.
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        preset=config["synthetic"]["preset"],
        seed=config["synthetic"]["seed"],
    script:
        "../scripts/synthesize_archive.py"
