"""Commands of the data stages: synthesize, download, extract, clicks, own-data, split, sessions, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from gru4rec_pipeline.cli.common import key_value
from gru4rec_pipeline.names import (
    ID_MODES,
    PROTOCOL_DEFAULTS,
    PROTOCOL_PRESETS,
    RSC15_URL,
    SPLITS,
    SYNTHETIC_PRESETS,
    TIME_FORMATS,
)


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthesize", help="generate a synthetic yoochoose-data.7z and its process parameters (for the oracle)"
    )
    parser.add_argument("--preset", default="default", choices=SYNTHETIC_PRESETS, help="size (default: default)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--archive", required=True, help="output archive, e.g. data/yoochoose-data.7z")
    parser.add_argument("--process", required=True, help="output process parameters (.npz)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a preset setting, e.g. --set n_sessions=100000"
    )
    parser.set_defaults(run=run_synthesize)

    parser = subparsers.add_parser(
        "download",
        help="download a file (by default the RSC15 archive), resumable",
        description="Download to --out through the partial file .<name>.part beside it, which a later run resumes "
        "(a lock, .<name>.lock, makes a second run of the same download fail at once).",
    )
    parser.add_argument("--url", default=RSC15_URL, help=f"what to download (default: {RSC15_URL})")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of the file; a mismatch is an error")
    parser.add_argument("--out", required=True, type=Path, help="destination path")
    parser.add_argument(
        "--retries", type=int, default=5, help="retries after broken transfers, timeouts and 5xx answers (default 5)"
    )
    parser.add_argument(
        "--connect-retries", type=int, default=2, help="of those, retries when no connection is made (default 2)"
    )
    parser.add_argument(
        "--max-wait", type=float, default=300.0, help="seconds waited between attempts, in all (default 300)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before an attempt fails")
    parser.add_argument(
        "--min-rate", type=float, default=1024.0, help="bytes/s over a minute below which a transfer is resumed anew"
    )
    parser.add_argument("--expect-7z", action="store_true", help="refuse a body that is not a 7z archive")
    parser.set_defaults(run=run_download)

    parser = subparsers.add_parser("extract", help="extract named members of a 7z archive")
    parser.add_argument("--archive", required=True, type=Path, help="the 7z archive, e.g. yoochoose-data.7z")
    parser.add_argument(
        "--member",
        required=True,
        action="append",
        dest="members",
        help="member to extract, by full or base name (repeatable), e.g. yoochoose-clicks.dat",
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="folder that receives the members")
    parser.set_defaults(run=run_extract)

    parser = subparsers.add_parser("clicks", help="convert yoochoose-clicks.dat to a typed clicks.parquet")
    parser.add_argument("--input", required=True, type=Path, help="raw clicks file, e.g. yoochoose-clicks.dat")
    parser.add_argument("--out", required=True, type=Path, help="Parquet file to write, e.g. clicks.parquet")
    parser.set_defaults(run=run_clicks)

    parser = subparsers.add_parser(
        "own-data",
        help="convert your own click log (CSV/Parquet) to clicks.parquet",
        description="Convert a click log of your own (CSV or Parquet) to the pipeline's clicks.parquet.",
    )
    parser.add_argument("--input", required=True, help="CSV or Parquet click log")
    parser.add_argument("--out", required=True, help="clicks.parquet to write")
    parser.add_argument("--session-column", default="SessionId", help="column of the session id (default SessionId)")
    parser.add_argument("--item-column", default="ItemId", help="column of the item id (default ItemId)")
    parser.add_argument("--time-column", default="Time", help="column of the event time (default Time)")
    parser.add_argument("--time-format", choices=TIME_FORMATS, default="auto", help="epoch seconds, iso, or auto")
    parser.add_argument("--category-column", help="optional column copied to Category")
    parser.add_argument("--sep", default=",", help="CSV field separator (default ,)")
    parser.add_argument(
        "--ids",
        choices=ID_MODES,
        default="integer",
        help="integer: session and item ids must be integers as written (default); map: map any string ids to "
        "0..n-1 and write the maps next to --out (<out>.session_map.parquet, <out>.item_map.parquet)",
    )
    parser.set_defaults(run=run_own_data)

    parser = subparsers.add_parser(
        "split",
        help="filter clicks and split them by time (the GRU4Rec RSC15 protocol)",
        description="Write train_full/test/train_tr/valid.parquet into --out-dir and the statistics to --stats.",
    )
    parser.add_argument("--clicks", required=True, help="clicks.parquet (SessionId, ItemId, Time)")
    parser.add_argument("--out-dir", required=True, help="folder for the four split files")
    parser.add_argument("--stats", required=True, help="statistics JSON to write")
    for key, kind, help_text in (
        ("min_session_length", int, "drop sessions with fewer events"),
        ("min_item_support", int, "drop items with fewer events"),
        ("split_seconds", float, "test/valid sessions end within this many seconds of the last event"),
    ):
        default = PROTOCOL_DEFAULTS[key]
        option = "--" + key.replace("_", "-")
        parser.add_argument(option, type=kind, default=default, help=f"{help_text} (default {default:g})")
    parser.add_argument(
        "--drop-duplicates",
        action="store_true",
        default=PROTOCOL_DEFAULTS["drop_duplicates"],
        help="drop exact duplicate clicks (same session, item and time) before the filters; by default they are "
        "kept, as in the published protocol, and counted",
    )
    parser.add_argument(
        "--preset", choices=PROTOCOL_PRESETS, default="rsc15", help="protocol: rsc15 (default) or yoochoose"
    )
    parser.add_argument("--test-clicks", help="yoochoose: yoochoose-test.dat's clicks as parquet (added to --clicks)")
    parser.set_defaults(run=run_split)

    parser = subparsers.add_parser(
        "sessions",
        help="build the item vocabulary and session arrays (.npz) from split files",
        description="Write vocab.parquet, train.npz, eval.npz and counts.json into --out-dir.",
    )
    parser.add_argument("--train", required=True, help="training split parquet (defines the vocabulary)")
    parser.add_argument("--eval", required=True, help="evaluation split parquet (test or valid)")
    parser.add_argument("--out-dir", required=True)
    min_length = PROTOCOL_DEFAULTS["min_session_length"]
    parser.add_argument(
        "--min-session-length",
        type=int,
        default=min_length,
        help=f"drop sessions shorter than this after unknown items are removed (default {min_length})",
    )
    parser.set_defaults(run=run_sessions)

    parser = subparsers.add_parser(
        "export", help="write a split in the official GRU4Rec TSV and/or the PaddleRec text format"
    )
    parser.add_argument("--events", required=True, help=f"split parquet ({', '.join(SPLITS)})")
    parser.add_argument("--tsv", help="official GRU4Rec TSV to write")
    parser.add_argument("--paddle", help="PaddleRec text file to write (needs --vocab)")
    parser.add_argument("--vocab", help="vocab.parquet of the training split")
    parser.add_argument(
        "--paddle-ids",
        choices=("index", "item"),
        default="index",
        help="vocabulary indices (what the port trains on) or original ItemIds",
    )
    parser.add_argument("--paddle-vocab", help="also write the port's vocab.txt (the number of items)")
    parser.add_argument(
        "--min-session-length",
        type=int,
        default=min_length,
        help=f"for --paddle: drop sessions shorter than this (default {min_length})",
    )
    parser.set_defaults(run=run_export)


def run_synthesize(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

    overrides = dict(key_value(text) for text in args.set or [])
    summary = write_synthetic_archive(args.archive, args.process, preset=args.preset, seed=args.seed, **overrides)
    print(" ".join(f"{key}={value}" for key, value in summary.items()))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.download import SEVEN_ZIP_SIGNATURE, download

    download(
        args.url,
        args.out,
        sha256=args.sha256,
        retries=args.retries,
        timeout=args.timeout,
        connect_retries=args.connect_retries,
        max_wait=args.max_wait,
        signature=SEVEN_ZIP_SIGNATURE if args.expect_7z else None,
        min_rate=args.min_rate,
    )
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.extract import extract_members

    extract_members(args.archive, args.out_dir, args.members)
    return 0


def run_clicks(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.clicks import clicks_to_parquet

    clicks_to_parquet(args.input, args.out)
    return 0


def run_own_data(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.owndata import own_clicks_to_parquet

    rows = own_clicks_to_parquet(
        args.input,
        args.out,
        args.session_column,
        args.item_column,
        args.time_column,
        args.time_format,
        args.sep,
        args.category_column,
        ids=args.ids,
    )
    print(f"{rows:,} clicks written to {args.out}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.presets import run_preset_split

    out_dir = Path(args.out_dir)
    run_preset_split(
        args.clicks,
        {name: out_dir / f"{name}.parquet" for name in SPLITS},
        args.stats,
        preset=args.preset,
        test_clicks_path=args.test_clicks,
        **{key: getattr(args, key) for key in PROTOCOL_DEFAULTS},
    )
    return 0


def run_sessions(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.sessions import build_sessions

    out_dir = Path(args.out_dir)
    build_sessions(
        args.train,
        args.eval,
        vocab_path=out_dir / "vocab.parquet",
        train_out=out_dir / "train.npz",
        eval_out=out_dir / "eval.npz",
        counts_path=out_dir / "counts.json",
        min_session_length=args.min_session_length,
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.data.export import export_split

    export_split(
        args.events,
        tsv_path=args.tsv,
        paddle_path=args.paddle,
        vocab_path=args.vocab,
        paddle_ids=args.paddle_ids,
        paddle_vocab_path=args.paddle_vocab,
        min_session_length=args.min_session_length,
    )
    return 0
