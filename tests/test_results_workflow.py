"""The workflow's trustworthy-results outputs on the tiny preset: per-event ranks, the significance table, the
learning curve, coverage and popularity, and repeated runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import LOSSES, TINY, planned_jobs, rules_of, run_snakemake
from gru4rec_pipeline import names
from gru4rec_pipeline.evaluation.event_ranks import EventRanks

MODELS = LOSSES + [*names.BASELINES, names.ORACLE]


@pytest.mark.slow
def test_every_evaluation_writes_ranks_of_one_split_and_the_comparison_reads_them(tiny_run: Path):
    metrics = tiny_run / "results" / "metrics" / "final"
    fingerprints = set()
    for name in MODELS:
        ranks = EventRanks.load(metrics / f"{name}.ranks.npz")
        record = json.loads((metrics / f"{name}.json").read_text())
        assert len(ranks.ranks) == record["events"]
        assert np.mean(ranks.ranks <= 20) == pytest.approx(record["recall"]["20"])
        gains = np.where(ranks.ranks <= 20, 1 / np.log2(ranks.ranks + 1), 0.0)
        assert record["ndcg"]["20"] == pytest.approx(gains.mean()) and set(record["ndcg"]) == {"1", "5", "10", "20"}
        # the default tie mode, and how much ties decided (baselines: also the targets they did not score)
        assert record["tie_mode"] == "conservative" and set(record["tie_decided_hits"].values()) == {0.0}
        assert set(record["tie_dependent_events"]) == {"1", "5", "10", "20"}
        assert ("unscored_targets" in record) == (name not in LOSSES)
        assert 0 < record["coverage"]["20"] <= 1 and 0 < record["popularity"]["20"] <= 1
        recall_file = (tiny_run / "results" / f"recall_{name}.txt").read_text()
        assert "# Coverage@1:" in recall_file and f"\nNDCG@20: {record['ndcg']['20']:.4f}\n" in recall_file
        fingerprints.add(ranks.split_fingerprint)
    assert len(fingerprints) == 1
    table = pd.read_csv(tiny_run / "results" / "significance.tsv", sep="\t")
    assert len(table) == len(MODELS) * (len(MODELS) - 1) * 3
    assert set(table["metric"]) == {"recall@20", "mrr@20", "ndcg@20"}
    pop = table[(table.model_a == "ce_sampled") & (table.model_b == "pop")].set_index("metric")
    assert (pop["difference"] > 0).all() and (pop["p_adjusted"] < 0.05).all()
    assert (pop["ci_low"] > 0).all()
    summary = pd.read_csv(tiny_run / "results" / "summary.tsv", sep="\t")
    marked = {"recall@20_not_worse", "mrr@20_not_worse", "ndcg@20_not_worse", "coverage@20", "popularity@20"}
    assert marked <= set(summary.columns)
    assert not summary.loc[summary.model == "pop", "recall@20_not_worse"].item()


@pytest.mark.slow
def test_the_history_holds_the_learning_curve_ending_at_the_final_evaluation(tiny_run: Path):
    for loss in LOSSES:
        history = pd.read_csv(tiny_run / "results" / "models" / "final" / loss / "history.csv")
        record = json.loads((tiny_run / "results" / "metrics" / "final" / f"{loss}.json").read_text())
        assert list(history["epoch"]) == list(range(1, record["epochs"] + 1))
        for k in (1, 5, 10, 20):
            assert history[f"recall@{k}"].iloc[-1] == record["recall"][str(k)]
            assert history[f"mrr@{k}"].iloc[-1] == record["mrr"][str(k)]
            assert history[f"ndcg@{k}"].iloc[-1] == record["ndcg"][str(k)]
    assert (tiny_run / "results" / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    log = (tiny_run / "logs" / "train_model" / "final" / "bpr.log").read_text()
    assert "of the epoch's training time" in log


@pytest.mark.slow
def test_replicates_keep_the_first_runs_and_summarise_means_and_spread(tiny_run: Path, tmp_path: Path):
    workdir = tmp_path / "replicates"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    first_runs = {name: (workdir / "results" / f"recall_{name}.txt").read_bytes() for name in MODELS}
    config = (*TINY, "--config", "replicates=2")  # two runs a loss are enough for a spread and a Welch test
    jobs = rules_of(planned_jobs(workdir, config=config))
    assert jobs["train_model_replicate"] == len(LOSSES) and "train_model" not in jobs, jobs
    run_snakemake(workdir, "--cores", "2", *config)
    for name, text in first_runs.items():
        assert (workdir / "results" / f"recall_{name}.txt").read_bytes() == text
    for loss in LOSSES:
        seeds = [json.loads((workdir / "results" / "metrics" / "final" / f"{loss}.json").read_text())["seed"]]
        for seed in (43,):
            record = json.loads((workdir / "results" / "metrics" / "final" / loss / f"seed{seed}.json").read_text())
            seeds.append(record["seed"])
            assert (workdir / "results" / "models" / "final" / loss / f"seed{seed}" / "model.pt").exists()
            assert (workdir / "results" / f"recall_{loss}_seed{seed}.txt").exists()
        assert seeds == [42, 43]
    summary = pd.read_csv(workdir / "results" / "summary.tsv", sep="\t")
    summary = summary[summary["kind"] != "published_rsc15"].set_index("model")
    assert (summary.loc[LOSSES, "runs"] == 2).all() and (summary.loc[["pop", "oracle"], "runs"] == 1).all()
    assert (summary.loc[LOSSES, "recall@20_std"] > 0).any() and (summary.loc[LOSSES, "mrr@20_std"] > 0).all()
    assert (summary.loc[LOSSES, "ndcg@20_std"] > 0).all()
    assert list(summary.columns).index("recall@20_std") == list(summary.columns).index("recall@20") + 1
    seeds_block = pd.read_csv(workdir / "results" / "significance.tsv", sep="\t")
    welch = seeds_block[seeds_block["unit"] == "seeds"]
    assert set(welch["model_a"]) == set(LOSSES) and (welch["test"] == "welch").all()
    assert "±" in (workdir / "results" / "summary.md").read_text()
