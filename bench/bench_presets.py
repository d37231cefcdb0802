"""Split-stage time of the protocol presets side by side on the same input: rsc15 against yoochoose.

    .venv/bin/python bench/bench_presets.py --clicks results/data/clicks.parquet \\
        --test-clicks results/data/test_clicks.parquet

Each preset runs in a process of its own (``--repeat`` times, the best kept), writing into a temporary folder;
printed: seconds, peak RSS and events of each split, and the ratio yoochoose / rsc15 (the target: within 2x).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ("rsc15", "yoochoose")


def one_run(preset: str, clicks: str, test_clicks: str | None) -> dict:
    from gru4rec_pipeline.data.presets import run_preset_split
    from gru4rec_pipeline.names import SPLITS

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        stats = run_preset_split(
            clicks,
            {name: Path(folder) / f"{name}.parquet" for name in SPLITS},
            Path(folder) / "stats.json",
            preset=preset,
            test_clicks_path=test_clicks if preset == "yoochoose" else None,
        )
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "events": {name: stats["splits"][name]["events"] for name in SPLITS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", required=True, help="clicks.parquet")
    parser.add_argument("--test-clicks", help="yoochoose-test.dat's clicks as parquet (test_clicks.parquet)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--worker", choices=PRESETS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(one_run(args.worker, args.clicks, args.test_clicks)))
        return 0
    best = {}
    for _ in range(args.repeat):
        for preset in PRESETS:
            command = [sys.executable, __file__, "--clicks", args.clicks, "--worker", preset]
            if args.test_clicks:
                command += ["--test-clicks", args.test_clicks]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            if preset not in best or result["seconds"] < best[preset]["seconds"]:
                best[preset] = result
    for preset, r in best.items():
        events = ", ".join(f"{name} {count:,}" for name, count in r["events"].items())
        print(f"{preset:10} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mib']:6.0f} MiB  {events}")
    print(f"yoochoose / rsc15: {best['yoochoose']['seconds'] / best['rsc15']['seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
