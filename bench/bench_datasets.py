"""A public data set's raw files -> the four split files: this project against the authors' own script.

The GRU4Rec authors' comparison prepares each set with its own script
(``{rees46,coveo,retailrocket,diginetica}_preproc.py`` in hidasib/gru4rec_third_party_comparison, which is not
part of this project: give the folder holding it with ``--reference-dir``). Each side runs in its own
subprocess, timed from start to exit, with its peak resident memory from ``os.wait4`` (bench_preprocess.py's
launcher); the outputs are then compared row for row (the script's integer seconds or milliseconds against our
float seconds).

The project side is a bare interpreter running the split stage (this file's worker imports only the package, not
pandas), and prints where its time and memory went (``data/datasets/phases.py``). The machine may be shared: the
CPU seconds (user + system, all threads) are the figure to compare; wall seconds and the load average are shown
too. ``--runs N`` runs each side N times and keeps each one's least CPU and wall time and largest peak.

Input: synthetic raw files of the published size (``synthetic/<set>.py``'s full preset), or of about
``--events N`` rows, or ``--scale F`` of the published size, generated once under ``--workdir``; or a folder of
real raw files (``--raw``). The script needs pandas as its authors ran it (1.5; pandas 3 has no Series.view):
``--reference-python`` names that interpreter.

    .venv/bin/python bench/bench_datasets.py retailrocket --reference-dir ../gru4rec_third_party_comparison \\
        --reference-python /opt/pandas15/bin/python --scale 0.5

Target at the published size: >= 20x less CPU time, <= 1/4 of the script's peak memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

# Only what the project's worker needs at the top: it is the measured process.
from gru4rec_pipeline.names import DATASET_RAW_FILES, SPLITS

BENCH_DIR = Path(__file__).resolve().parent
SETS = ("rees46", "coveo", "retailrocket", "diginetica")
TARGET_SPEEDUP = 20.0
TARGET_MEMORY_FRACTION = 0.25
# What each script names its outputs: <prefix>_<split>.tsv, with train_valid for our valid.
SCRIPT_PREFIX = {
    "rees46": "rees46_processed_view_userbased",
    "coveo": "coveo_processed_view",
    "retailrocket": "retailrocket_processed_view",
    "diginetica": "diginetica_processed_view",
}
SCRIPT_SPLIT = {"train_full": "train_full", "test": "test", "train_tr": "train_tr", "valid": "train_valid"}
TICKS_PER_SECOND = {"rees46": 1, "coveo": 1000, "retailrocket": 1000, "diginetica": 1000}


def synthetic_raw(name: str, n_events: int, workdir: Path, seed: int) -> Path:
    """The folder of synthetic raw files of about ``n_events`` rows, generated once and cached."""
    from gru4rec_pipeline.synthetic.datasets import write_synthetic_raw

    folder = workdir / f"{name}-{n_events}-seed{seed}"
    if not all((folder / file).exists() for file in DATASET_RAW_FILES[name]):
        print(f"generating synthetic {name} raw files of about {n_events:,} rows in {folder} ...", flush=True)
        started = time.perf_counter()
        summary = write_synthetic_raw(name, folder, seed=seed, n_events=n_events)
        print(f"  {summary} in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


class PhaseRecords(logging.Handler):
    """The figures ``phases.timed`` logs, collected."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.phases = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "phase"):
            self.phases.append(record.phase)


def project_worker(name: str, raw_dir: str, out_dir: str) -> None:
    from gru4rec_pipeline.data.datasets.stage import run_dataset_split

    records = PhaseRecords()
    phase_log = logging.getLogger("gru4rec_pipeline.data.datasets.phases")
    phase_log.setLevel(logging.INFO)
    phase_log.addHandler(records)
    out = Path(out_dir)
    started = time.perf_counter()
    stats = run_dataset_split(name, raw_dir, {split: out / f"{split}.parquet" for split in SPLITS}, out / "stats.json")
    seconds = time.perf_counter() - started
    (out / "phases.json").write_text(
        json.dumps(
            {"seconds": seconds, "splits": stats["splits"], "phases": records.phases, "pandas": "pandas" in sys.modules}
        )
    )


def compare(name: str, project_dir: Path, script_dir: Path) -> dict[str, dict]:
    import numpy as np
    import pandas as pd

    result = {}
    for split in SPLITS:
        ours = pd.read_parquet(project_dir / f"{split}.parquet")
        theirs = pd.read_csv(script_dir / f"{SCRIPT_PREFIX[name]}_{SCRIPT_SPLIT[split]}.tsv", sep="\t")
        entry = {"project_rows": len(ours), "script_rows": len(theirs), "identical": False}
        if len(ours) == len(theirs):
            ticks = np.rint(ours.Time.to_numpy() * TICKS_PER_SECOND[name]).astype(np.int64)
            entry["identical"] = bool(
                np.array_equal(ours.SessionId.to_numpy(), theirs.SessionId.to_numpy(np.int64))
                and np.array_equal(ours.ItemId.to_numpy(), theirs.ItemId.to_numpy(np.int64))
                and np.array_equal(ticks, theirs.Time.to_numpy(np.int64))
            )
        result[split] = entry
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", choices=SETS)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, help="synthetic raw rows (default: the published size)")
    size.add_argument("--scale", type=float, help="synthetic raw rows as a fraction of the published size")
    size.add_argument("--raw", type=Path, help="a folder of real raw files instead of synthetic ones")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data (default 42)")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "data", help="cache and outputs (bench/data)")
    parser.add_argument("--reference-dir", type=Path, help="the folder holding the authors' <set>_preproc.py")
    parser.add_argument("--reference-python", default=sys.executable, help="the interpreter to run it with")
    parser.add_argument("--skip-reference", action="store_true", help="time only the project side")
    parser.add_argument("--runs", type=int, default=1, help="runs of each side, alternating (default 1)")
    parser.add_argument("--project-worker", nargs=3, metavar=("SET", "RAW", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.project_worker:
        project_worker(*args.project_worker)
        return 0
    if args.dataset is None:
        parser.error("the data set is required")
    from bench_preprocess import count_lines, measure

    script = None
    if not args.skip_reference:
        if args.reference_dir is None:
            parser.error("--reference-dir is required (or --skip-reference)")
        script = args.reference_dir / f"{args.dataset}_preproc.py"
        if not script.exists():
            parser.error(f"{script} does not exist")

    from gru4rec_pipeline.synthetic.datasets import published_size

    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.raw is not None:
        raw = args.raw
    else:
        full = published_size(args.dataset)
        n_events = args.events or (int(full * args.scale) if args.scale else full)
        raw = synthetic_raw(args.dataset, n_events, args.workdir, args.seed)
    files = [raw / file for file in DATASET_RAW_FILES[args.dataset]]
    rows = sum(count_lines(path) - 1 for path in files)
    mib = sum(path.stat().st_size for path in files) / 2**20
    print(f"input: {', '.join(str(f) for f in files)} ({mib:,.0f} MiB, {rows:,} rows)", flush=True)

    run_dir = args.workdir / f"run-{args.dataset}"
    shutil.rmtree(run_dir, ignore_errors=True)
    project_dir, script_dir = run_dir / "project", run_dir / "script"
    project_dir.mkdir(parents=True)
    project_command = [sys.executable, str(Path(__file__).resolve()), "--project-worker", args.dataset, str(raw),
                       str(project_dir)]  # fmt: skip
    if script is not None:
        # The script reads its inputs from, and writes its outputs to, one folder.
        script_dir.mkdir()
        for path in files:
            (script_dir / path.name).symlink_to(path.resolve())
    load_before = os.getloadavg()
    runs = {"project": [], "script": []}
    for run in range(args.runs):
        print(f"project side{f' (run {run + 1})' if args.runs > 1 else ''} ...", flush=True)
        runs["project"].append(measure(project_command, run_dir / "project.log"))
        if script is not None:
            print(f"authors' script{f' (run {run + 1})' if args.runs > 1 else ''} ...", flush=True)
            runs["script"].append(
                measure([args.reference_python, str(script.resolve()), "-p", str(script_dir)], run_dir / "script.log")
            )
    load_after = os.getloadavg()
    project = best_of(runs["project"])
    phases = json.loads((project_dir / "phases.json").read_text())
    sides = [("project", project)]
    comparison = reference = None
    if script is not None:
        reference = best_of(runs["script"])
        sides.insert(0, ("script", reference))
        comparison = compare(args.dataset, project_dir, script_dir)

    counts = phases["splits"]
    print()
    print("project side by phase (the last run):")
    print(f"  {'phase':<48} {'cpu s':>7} {'wall s':>7} {'MiB after':>10} {'peak MiB':>9}")
    for phase in phases["phases"]:
        print(
            f"  {phase['phase']:<48} {phase['cpu_s']:>7.2f} {phase['wall_s']:>7.2f} "
            f"{phase['resident_mib'] or 0:>10,.0f} {phase['peak_mib'] or 0:>9,.0f}"
        )
    print()
    print(f"load average (1, 5, 15 min): {fmt_load(load_before)} before, {fmt_load(load_after)} after")
    print(f"{'side':<10} {'wall s':>9} {'cpu s':>9} {'peak RSS MiB':>13}   " + "  ".join(f"{n:>10}" for n in SPLITS))
    for side, figures in sides:
        events = [counts[n]["events"] if side == "project" else comparison[n]["script_rows"] for n in SPLITS]
        print(
            f"{side:<10} {figures['wall_s']:>9.2f} {figures['cpu_s']:>9.2f} {figures['peak_rss_mib']:>13,.0f}   "
            + "  ".join(f"{e:>10,}" for e in events)
        )
    given = counts["raw"]
    print(f"protocol input: {given['events']:,} events, {given['sessions']:,} sessions, {given['items']:,} items")
    if comparison is None:
        return 0
    cpu_speedup = reference["cpu_s"] / project["cpu_s"]
    wall_speedup = reference["wall_s"] / project["wall_s"]
    memory_fraction = project["peak_rss_mib"] / reference["peak_rss_mib"]
    identical = all(entry["identical"] for entry in comparison.values())
    print(f"speedup: {cpu_speedup:.1f}x cpu (target >= {TARGET_SPEEDUP:.0f}x), {wall_speedup:.1f}x wall")
    print(f"memory fraction: {memory_fraction:.3f} of the script's peak (target <= {TARGET_MEMORY_FRACTION})")
    print("splits identical:", "yes" if identical else "NO")
    for split, entry in comparison.items():
        if not entry["identical"]:
            print(f"  {split}: {entry}")
    summary = {
        "dataset": args.dataset,
        "input": [str(f) for f in files],
        "rows": rows,
        "runs": runs,
        "project": project,
        "script": reference,
        "cpu_speedup": cpu_speedup,
        "wall_speedup": wall_speedup,
        "memory_fraction": memory_fraction,
        "load_average": {"before": load_before, "after": load_after},
        "project_phases": phases["phases"],
        "comparison": comparison,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if identical else 1


def best_of(runs: list[dict]) -> dict:
    """Each figure's best over the runs: the least CPU and wall time, the largest peak memory."""
    return {
        "wall_s": min(run["wall_s"] for run in runs),
        "cpu_s": min(run["cpu_s"] for run in runs),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
    }


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.1f}" for value in load)


if __name__ == "__main__":
    sys.exit(main())
