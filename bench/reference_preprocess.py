"""The plain-pandas RSC15 preprocessing, in the style published with GRU4Rec (examples/rsc15).

The baseline for bench/bench_preprocess.py, kept deliberately in that style: the whole CSV read
with pd.read_csv, every timestamp parsed by ``datetime.strptime`` through ``apply``, filters by
``groupby().size()`` and ``isin``, tab-separated outputs. Same protocol and thresholds: drop
sessions of length 1, items with fewer than 5 clicks, sessions shorter than 2; the last day
(86400 s before the latest click) is the test set, test clicks on items absent from training and
then test sessions shorter than 2 are dropped; the same split of train_full gives train_tr/valid.
One deliberate difference from the published script: timestamps are parsed as UTC.

    python bench/reference_preprocess.py yoochoose-clicks.dat OUT_DIR
"""

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_seconds(text):
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp()


def keep_long_sessions(data, min_length):
    session_lengths = data.groupby("SessionId").size()
    return data[data.SessionId.isin(session_lengths[session_lengths >= min_length].index)]


def split_last_day(data):
    tmax = data.Time.max()
    session_max_times = data.groupby("SessionId").Time.max()
    train_sessions = session_max_times[session_max_times < tmax - 86400].index
    test_sessions = session_max_times[session_max_times >= tmax - 86400].index
    train = data[data.SessionId.isin(train_sessions)]
    test = data[data.SessionId.isin(test_sessions)]
    test = test[test.ItemId.isin(train.ItemId)]
    return train, keep_long_sessions(test, 2)


def report(name, data):
    print(f"{name}\n\tEvents: {len(data)}\n\tSessions: {data.SessionId.nunique()}\n\tItems: {data.ItemId.nunique()}")


def main(clicks_path, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = pd.read_csv(clicks_path, sep=",", header=None, usecols=[0, 1, 2], dtype={0: np.int32, 1: str, 2: np.int64})
    data.columns = ["SessionId", "TimeStr", "ItemId"]
    data["Time"] = data.TimeStr.apply(utc_seconds)
    del data["TimeStr"]

    data = keep_long_sessions(data, 2)
    item_supports = data.groupby("ItemId").size()
    data = data[data.ItemId.isin(item_supports[item_supports >= 5].index)]
    data = keep_long_sessions(data, 2)

    train, test = split_last_day(data)
    report("Full train set", train)
    train.to_csv(out_dir / "train_full.tsv", sep="\t", index=False)
    report("Test set", test)
    test.to_csv(out_dir / "test.tsv", sep="\t", index=False)

    train_tr, valid = split_last_day(train)
    report("Train set", train_tr)
    train_tr.to_csv(out_dir / "train_tr.tsv", sep="\t", index=False)
    report("Validation set", valid)
    valid.to_csv(out_dir / "valid.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
