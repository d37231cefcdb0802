"""Session kNN baselines at RSC15 scale: fit + evaluate time, events/s and peak memory, and session-rec's V-SKNN.

Reads session arrays as the sessions stage writes them (``train.npz``, ``eval.npz``, ``vocab.parquet`` in
``--data``; e.g. the final setting of the synthetic ``full`` preset). Each baseline runs in a process of its
own, so that each peak RSS is its own:

    .venv/bin/python bench/bench_knn.py --data results/sessions/final
    .venv/bin/python bench/bench_knn.py --data DIR --session-rec ~/session-rec   # also session-rec's vsknn.py

With ``--session-rec DIR`` (a checkout of rn5l/session-rec; this script fetches nothing), session-rec's own
``algorithms/knn/vsknn.py`` (``VMContextKNN``, unmodified) and this project's ``vsknn`` score the same slice
side by side: the last ``--slice-train`` training sessions and the first ``--slice-test`` evaluation sessions.
Both sides' scores are ranked by the same code; the figures are events/s of scoring and recall@20 / MRR@20.
session-rec is given the sessions' own ids, whose sets decide its ties; ours runs with ``--ties session_rec``
(``baselines.vsknn.ties``: the same tie order) unless ``--ties recency`` (the default rule) is asked for.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

from gru4rec_pipeline.names import KNN_TIES

METHODS = ("sknn", "vsknn", "stan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load(data: Path):
    from gru4rec_pipeline.data.arrays import SessionArrays
    from gru4rec_pipeline.data.vocabulary import Vocabulary

    vocab = Vocabulary.load(data / "vocab.parquet")
    return SessionArrays.load(data / "train.npz"), SessionArrays.load(data / "eval.npz"), vocab.n_items


def full_run(method: str, data: Path) -> dict:
    """Fit ``method`` with its configured defaults on all training sessions and evaluate every test event."""
    from gru4rec_pipeline.evaluation.baselines import build_baseline
    from gru4rec_pipeline.evaluation.scorer_evaluation import evaluate_scorer

    train, evaluation, n_items = load(data)
    started = time.perf_counter()
    scorer, _ = build_baseline(method, train, n_items)
    fit_seconds = time.perf_counter() - started
    scorer.session_scores(evaluation.items[:2], evaluation.times[:2])  # compile outside the timing
    metrics = evaluate_scorer(scorer, evaluation, n_items, cutoffs=[20], progress=False)
    return {
        "method": method,
        "train_sessions": train.n_sessions,
        "fit_s": fit_seconds,
        "eval_s": metrics["seconds"],
        "events": metrics["events"],
        "events_per_s": metrics["events"] / metrics["seconds"],
        "recall@20": metrics["recall"]["20"],
        "mrr@20": metrics["mrr"]["20"],
        "peak_rss_mib": peak_rss_mib(),
    }


def load_session_rec_vsknn(root: Path):
    """session-rec's ``VMContextKNN`` class, its file as it is; only its imports are provided for."""
    import numpy as np

    if "pympler" not in sys.modules:  # imported by vsknn.py for a memory figure it never uses here
        pympler = types.ModuleType("pympler")
        pympler.asizeof = types.ModuleType("pympler.asizeof")
        sys.modules["pympler"], sys.modules["pympler.asizeof"] = pympler, pympler.asizeof
    if not hasattr(np, "in1d"):  # removed in numpy 2.4; isin is its documented replacement
        np.in1d = np.isin
    path = root / "algorithms" / "knn" / "vsknn.py"
    if not path.is_file():
        raise SystemExit(f"--session-rec {root}: {path} not found (expected a checkout of rn5l/session-rec)")
    namespace: dict = {"__name__": "session_rec_vsknn"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["VMContextKNN"]


def slice_of(train, evaluation, n_train: int, n_test: int):
    from gru4rec_pipeline.data.arrays import SessionArrays

    def sessions(arrays, chosen):
        a, b = arrays.offsets[chosen[0]], arrays.offsets[chosen[-1] + 1]
        return SessionArrays(
            arrays.offsets[chosen[0] : chosen[-1] + 2] - a,
            arrays.items[a:b],
            arrays.times[a:b],
            arrays.session_ids[chosen[0] : chosen[-1] + 1],
        )

    import numpy as np

    test_ids = np.flatnonzero(evaluation.lengths() >= 2)[:n_test]
    test = sessions(evaluation, np.arange(test_ids[0], test_ids[-1] + 1))
    return sessions(train, np.arange(max(train.n_sessions - n_train, 0), train.n_sessions)), test


def comparison_run(data: Path, root: Path, n_train: int, n_test: int, ties: str = "session_rec") -> dict:
    """session-rec's vsknn.py and ours on the same slice, ranked by the same code."""
    import numpy as np
    import pandas as pd

    from gru4rec_pipeline.evaluation.knn import SessionKNN
    from gru4rec_pipeline.evaluation.ranking import metrics_from_ranks, rank_dense
    from gru4rec_pipeline.names import SESSION_KNN_DEFAULTS

    train, evaluation, n_items = load(data)
    train, test = slice_of(train, evaluation, n_train, n_test)
    del evaluation
    settings = SESSION_KNN_DEFAULTS["vsknn"]
    our_settings = {**settings, "ties": ties}
    theirs_class = load_session_rec_vsknn(root)
    frame = pd.DataFrame(
        {
            # the sessions' own ids, which decide the iteration order of session-rec's sets
            "SessionId": np.repeat(train.session_ids, train.lengths()),
            "ItemId": train.items,
            "Time": train.times,
        }
    )
    started = time.perf_counter()
    theirs = theirs_class(**settings)
    theirs.fit(frame)
    their_fit = time.perf_counter() - started
    all_items = np.arange(n_items)
    sides = {"session-rec": [], "project": []}
    seconds = {"session-rec": 0.0, "project": 0.0}
    started = time.perf_counter()
    ours = SessionKNN.fit("vsknn", train, n_items, **our_settings)
    our_fit = time.perf_counter() - started
    ours.session_scores(test.items[:2], test.times[:2])  # compile outside the timing
    targets = []
    for s in range(test.n_sessions):
        a, b = test.offsets[s], test.offsets[s + 1]
        if b - a < 2:
            continue
        items, times = test.items[a:b], test.times[a:b]
        started = time.perf_counter()
        rows = [
            theirs.predict_next(int(test.session_ids[s]), int(items[j]), all_items, timestamp=times[j]).to_numpy()
            for j in range(b - a - 1)
        ]
        seconds["session-rec"] += time.perf_counter() - started
        sides["session-rec"].append(np.asarray(rows, dtype=np.float64))
        started = time.perf_counter()
        sides["project"].append(ours.session_scores(items, times))
        seconds["project"] += time.perf_counter() - started
        targets.append(items[1:])
    targets = np.concatenate(targets)
    result = {"train_sessions": train.n_sessions, "events": len(targets), "fit_s": {"session-rec": their_fit}}
    result["fit_s"]["project"] = our_fit
    for side, parts in sides.items():
        # session-rec divides by each row's maximum (normalize=True): the same ranks, so the same metrics
        metrics = metrics_from_ranks(rank_dense(np.concatenate(parts), targets), cutoffs=[20])
        result[side] = {
            "score_s": seconds[side],
            "events_per_s": len(targets) / seconds[side],
            "recall@20": metrics["recall"]["20"],
            "mrr@20": metrics["mrr"]["20"],
        }
    result["speedup"] = result["project"]["events_per_s"] / result["session-rec"]["events_per_s"]
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def in_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="folder with train.npz, eval.npz, vocab.parquet")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--session-rec", type=Path, help="a checkout of rn5l/session-rec: compare its vsknn.py")
    parser.add_argument("--slice-train", type=int, default=100_000, help="training sessions of the comparison")
    parser.add_argument("--slice-test", type=int, default=200, help="evaluation sessions of the comparison")
    parser.add_argument(
        "--ties",
        choices=KNN_TIES,
        default="session_rec",
        help="our vsknn's tie rule in the comparison (default session_rec: session-rec's set order)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "compare":
        print(json.dumps(comparison_run(args.data, args.session_rec, args.slice_train, args.slice_test, args.ties)))
        return 0
    if args.worker:
        print(json.dumps(full_run(args.worker, args.data)))
        return 0
    print(f"{'method':8} {'train sess':>11} {'fit s':>7} {'eval s':>7} {'events':>7} {'events/s':>9} "
          f"{'R@20':>7} {'MRR@20':>7} {'peak RSS MiB':>12}")  # fmt: skip
    for method in args.methods:
        r = in_child("--data", str(args.data), "--worker", method)
        print(
            f"{method:8} {r['train_sessions']:>11,} {r['fit_s']:>7.1f} {r['eval_s']:>7.1f} {r['events']:>7,} "
            f"{r['events_per_s']:>9.0f} {r['recall@20']:>7.4f} {r['mrr@20']:>7.4f} {r['peak_rss_mib']:>12.0f}"
        )
    if args.session_rec:
        slice_args = ["--slice-train", str(args.slice_train), "--slice-test", str(args.slice_test), "--ties", args.ties]
        r = in_child(
            "--data", str(args.data), "--session-rec", str(args.session_rec), *slice_args, "--worker", "compare"
        )
        print(
            f"\nvsknn on a slice: {r['train_sessions']:,} training sessions, {r['events']:,} test events, "
            f"ties: {args.ties}"
        )
        for side in ("session-rec", "project"):
            s = r[side]
            print(
                f"  {side:12} fit {r['fit_s'][side]:7.1f} s  score {s['score_s']:7.1f} s  "
                f"{s['events_per_s']:9.1f} events/s  R@20 {s['recall@20']:.4f}  MRR@20 {s['mrr@20']:.4f}"
            )
        difference = max(abs(r["project"][m] - r["session-rec"][m]) for m in ("recall@20", "mrr@20"))
        print(f"  speedup {r['speedup']:.0f}x; largest metric difference {difference:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
