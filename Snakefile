# GRU4Rec on RSC15 (yoochoose): from the raw click archive to trained, evaluated and reported models.
# This file only wires the workflow; the rules live in workflow/rules/, the logic in src/gru4rec_pipeline/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/rolling.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/window.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


onsuccess:
    print_results_of_rule_all()
