"""Raw clicks -> the four RSC15 split files: this project against the plain-pandas reference.

Each side runs in its own subprocess, timed from start to exit, with its peak resident memory
taken from ``os.wait4``. The two outputs are then compared row for row.

- project:   gru4rec_pipeline.data.clicks.read_clicks (CSV -> columns), the protocol
             (gru4rec_pipeline.data.protocol.split_clicks) and the parquet writes;
- reference: bench/reference_preprocess.py (pd.read_csv, strptime per row, groupby/isin, TSV).

Input: ``--clicks yoochoose-clicks.dat``, or a synthetic one: ``--preset tiny|default|full``
generates the archive with gru4rec_pipeline.synthetic.archive and extracts its clicks under
``--workdir`` (default bench/data), reused by later runs.

    .venv/bin/python bench/bench_preprocess.py --preset default
    .venv/bin/python bench/bench_preprocess.py --clicks data/yoochoose-clicks.dat

Target on ``full`` (RSC15 scale, ~33M clicks): project >= 25x faster, <= 1/4 of the peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_pipeline.names import SPLITS

BENCH_DIR = Path(__file__).resolve().parent
TARGET_SPEEDUP = 25.0
TARGET_MEMORY_FRACTION = 0.25


# ----------------------------------------------------------------------------------------------
# Input.


def synthetic_clicks(preset: str, workdir: Path, seed: int) -> Path:
    """yoochoose-clicks.dat of the synthetic archive for ``preset``, generated once and cached."""
    folder = workdir / f"synthetic-{preset}-seed{seed}"
    clicks = folder / "yoochoose-clicks.dat"
    if clicks.exists():
        return clicks
    import py7zr

    from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "yoochoose-data.7z"
    if not archive.exists():
        print(f"generating the synthetic '{preset}' archive in {folder} ...", flush=True)
        write_synthetic_archive(archive, folder / "process.npz", preset=preset, seed=seed)
    extract_dir = folder / ".extract"
    shutil.rmtree(extract_dir, ignore_errors=True)
    with py7zr.SevenZipFile(archive, "r") as source:
        source.extract(path=extract_dir, targets=["yoochoose-clicks.dat"])
    (extract_dir / "yoochoose-clicks.dat").replace(clicks)
    shutil.rmtree(extract_dir, ignore_errors=True)
    return clicks


# ----------------------------------------------------------------------------------------------
# The project side, run as `bench_preprocess.py --project-worker CLICKS OUT_DIR` in a subprocess.


def project_worker(clicks_path: str, out_dir: str) -> None:
    from gru4rec_pipeline.data.clicks import read_clicks
    from gru4rec_pipeline.data.events import events_from_table
    from gru4rec_pipeline.data.protocol import split_clicks

    started = time.perf_counter()
    # Nested call: events_from_table then holds the only reference to the table and frees its
    # columns as it copies them out.
    clicks = events_from_table(read_clicks(clicks_path, with_category=False), source=clicks_path)
    read_done = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = split_clicks(clicks, {name: out / f"{name}.parquet" for name in SPLITS}, stats_path=out / "stats.json")
    done = time.perf_counter()
    phases = {"read_s": read_done - started, "protocol_and_write_s": done - read_done}
    (out / "phases.json").write_text(json.dumps({"phases": phases, "stats": stats["splits"]}))


# ----------------------------------------------------------------------------------------------
# Measuring a subprocess.


# A forked child's peak RSS starts at its parent's (Linux carries the pre-exec peak into
# ru_maxrss), and this script holds pandas and maybe the synthetic generator in memory. So each
# side is started by a bare interpreter that imports nothing heavy, and that launcher reports the
# side's wall time and peak RSS.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024.0,
               "exit_code": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(command: list[str], log_path: Path) -> dict:
    """Run ``command``; wall seconds and peak RSS (MiB) of that process, its output in ``log_path``."""
    figures_path = log_path.with_suffix(".figures.json")
    with open(log_path, "w") as log:
        subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, str(figures_path), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else {"exit_code": "none"}
    if figures["exit_code"] != 0:
        sys.exit(
            f"{' '.join(command)} failed (exit code {figures['exit_code']}); see {log_path}:\n"
            + log_path.read_text()[-3000:]
        )
    return figures


def count_lines(path: Path) -> int:
    """Lines of ``path``; reading it also puts it in the page cache, so that neither side pays
    for the first read from disk."""
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            lines += chunk.count(b"\n")
    return lines


# ----------------------------------------------------------------------------------------------
# Comparing the outputs.


def compare_splits(project_dir: Path, reference_dir: Path) -> dict[str, dict]:
    import pyarrow.csv as pacsv

    result = {}
    for name in SPLITS:
        ours = pd.read_parquet(project_dir / f"{name}.parquet")
        theirs = pacsv.read_csv(
            reference_dir / f"{name}.tsv", parse_options=pacsv.ParseOptions(delimiter="\t")
        ).to_pandas()
        # The reference keeps file order; the split files are sorted by SessionId then Time (stable).
        theirs = theirs.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)
        same_rows = len(ours) == len(theirs)
        entry = {"project_rows": len(ours), "reference_rows": len(theirs), "identical": False}
        if same_rows:
            ids_equal = all(
                np.array_equal(ours[c].to_numpy(np.int64), theirs[c].to_numpy(np.int64))
                for c in ("SessionId", "ItemId")
            )
            time_diff = np.abs(ours["Time"].to_numpy() - theirs["Time"].to_numpy())
            entry["max_time_diff_s"] = float(time_diff.max()) if len(time_diff) else 0.0
            entry["identical"] = bool(ids_equal and entry["max_time_diff_s"] == 0.0)
        result[name] = entry
    return result


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--clicks", help="a yoochoose-clicks.dat file")
    source.add_argument(
        "--preset", choices=("tiny", "default", "full"), help="generate synthetic clicks (default: default)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data (default 42)")
    parser.add_argument("--workdir", default=str(BENCH_DIR / "data"), help="cache and outputs (default bench/data)")
    parser.add_argument("--skip-reference", action="store_true", help="time only the project side")
    parser.add_argument("--project-worker", nargs=2, metavar=("CLICKS", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.project_worker:
        project_worker(*args.project_worker)
        return 0

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clicks = Path(args.clicks) if args.clicks else synthetic_clicks(args.preset or "default", workdir, args.seed)
    n_lines = count_lines(clicks)
    print(f"input: {clicks} ({clicks.stat().st_size / 2**20:,.0f} MiB, {n_lines:,} clicks)", flush=True)

    run_dir = workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    project_dir, reference_dir = run_dir / "project", run_dir / "reference"
    run_dir.mkdir(parents=True)

    print("project side ...", flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--project-worker", str(clicks), str(project_dir)]
    project = measure(command, run_dir / "project.log")
    phases = json.loads((project_dir / "phases.json").read_text())
    project.update(phases["phases"])
    rows = [("project", project)]
    if not args.skip_reference:
        print("reference side ...", flush=True)
        command = [sys.executable, str(BENCH_DIR / "reference_preprocess.py"), str(clicks), str(reference_dir)]
        reference = measure(command, run_dir / "reference.log")
        rows.insert(0, ("reference", reference))

    counts = phases["stats"]
    events = {"project": [counts[n]["events"] for n in SPLITS]}
    comparison = None
    if not args.skip_reference:
        comparison = compare_splits(project_dir, reference_dir)
        events["reference"] = [comparison[n]["reference_rows"] for n in SPLITS]

    print()
    print(f"{'side':<10} {'wall s':>9} {'cpu s':>9} {'peak RSS MiB':>13}   " + "  ".join(f"{n:>10}" for n in SPLITS))
    for side, figures in rows:
        print(
            f"{side:<10} {figures['wall_s']:>9.2f} {figures['cpu_s']:>9.2f} {figures['peak_rss_mib']:>13,.0f}   "
            + "  ".join(f"{e:>10,}" for e in events[side])
        )
    print(
        f"(split columns: events; project: reading {project['read_s']:.2f} s, "
        f"protocol + parquet writes {project['protocol_and_write_s']:.2f} s)"
    )
    print(
        f"raw: {counts['raw']['events']:,} clicks, {counts['raw']['sessions']:,} sessions, "
        f"{counts['raw']['items']:,} items"
    )
    if comparison is None:
        return 0

    speedup = reference["wall_s"] / project["wall_s"]
    cpu_speedup = reference["cpu_s"] / project["cpu_s"]
    memory_fraction = project["peak_rss_mib"] / reference["peak_rss_mib"]
    identical = all(entry["identical"] for entry in comparison.values())
    print(f"speedup: {speedup:.1f}x wall (target >= {TARGET_SPEEDUP:.0f}x), {cpu_speedup:.1f}x cpu")
    print(f"memory fraction: {memory_fraction:.3f} of the reference's peak (target <= {TARGET_MEMORY_FRACTION})")
    print("splits identical:", "yes" if identical else "NO")
    for name, entry in comparison.items():
        if not entry["identical"]:
            print(f"  {name}: {entry}")
    summary = {
        "input": str(clicks),
        "clicks": n_lines,
        "project": project,
        "reference": reference,
        "speedup": speedup,
        "cpu_speedup": cpu_speedup,
        "memory_fraction": memory_fraction,
        "comparison": comparison,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
