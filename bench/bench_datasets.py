"""A public data set's raw files -> the four split files: this project against the authors' own script.

The GRU4Rec authors' comparison prepares each set with its own script
(``{rees46,coveo,retailrocket,diginetica}_preproc.py`` in hidasib/gru4rec_third_party_comparison, which is not
part of this project: give the folder holding it with ``--reference-dir``). Each side runs in its own
subprocess, timed from start to exit, with its peak resident memory from ``os.wait4`` (bench_preprocess.py's
launcher); the outputs are then compared row for row (the script's integer seconds or milliseconds against our
float seconds).

Input: synthetic raw files of the published size (``synthetic/<set>.py``'s full preset), or of about
``--events N`` rows, or ``--scale F`` of the published size, generated once under ``--workdir``; or a folder of
real raw files (``--raw``). The script needs pandas as its authors ran it (1.5; pandas 3 has no Series.view):
``--reference-python`` names that interpreter.

    .venv/bin/python bench/bench_datasets.py retailrocket --reference-dir ../gru4rec_third_party_comparison \\
        --reference-python /opt/pandas15/bin/python --scale 0.5

Target at the published size: >= 20x faster, <= 1/4 of the script's peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_preprocess import count_lines, measure
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


def project_worker(name: str, raw_dir: str, out_dir: str) -> None:
    from gru4rec_pipeline.data.datasets.stage import run_dataset_split

    out = Path(out_dir)
    started = time.perf_counter()
    stats = run_dataset_split(name, raw_dir, {split: out / f"{split}.parquet" for split in SPLITS}, out / "stats.json")
    (out / "phases.json").write_text(json.dumps({"seconds": time.perf_counter() - started, "splits": stats["splits"]}))


def compare(name: str, project_dir: Path, script_dir: Path) -> dict[str, dict]:
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
    parser.add_argument("--project-worker", nargs=3, metavar=("SET", "RAW", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.project_worker:
        project_worker(*args.project_worker)
        return 0
    if args.dataset is None:
        parser.error("the data set is required")
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
    print("project side ...", flush=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--project-worker",
        args.dataset,
        str(raw),
        str(project_dir),
    ]
    project = measure(command, run_dir / "project.log")
    phases = json.loads((project_dir / "phases.json").read_text())
    sides = [("project", project)]
    comparison = None
    if script is not None:
        # The script reads its inputs from, and writes its outputs to, one folder.
        script_dir.mkdir()
        for path in files:
            (script_dir / path.name).symlink_to(path.resolve())
        print("authors' script ...", flush=True)
        reference = measure(
            [args.reference_python, str(script.resolve()), "-p", str(script_dir)], run_dir / "script.log"
        )
        sides.insert(0, ("script", reference))
        comparison = compare(args.dataset, project_dir, script_dir)

    counts = phases["splits"]
    print()
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
    speedup = reference["wall_s"] / project["wall_s"]
    memory_fraction = project["peak_rss_mib"] / reference["peak_rss_mib"]
    identical = all(entry["identical"] for entry in comparison.values())
    cpu_speedup = reference["cpu_s"] / project["cpu_s"]
    print(f"speedup: {speedup:.1f}x wall (target >= {TARGET_SPEEDUP:.0f}x), {cpu_speedup:.1f}x cpu")
    print(f"memory fraction: {memory_fraction:.3f} of the script's peak (target <= {TARGET_MEMORY_FRACTION})")
    print("splits identical:", "yes" if identical else "NO")
    for split, entry in comparison.items():
        if not entry["identical"]:
            print(f"  {split}: {entry}")
    summary = {
        "dataset": args.dataset,
        "input": [str(f) for f in files],
        "rows": rows,
        "project": project,
        "script": reference,
        "speedup": speedup,
        "memory_fraction": memory_fraction,
        "comparison": comparison,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
