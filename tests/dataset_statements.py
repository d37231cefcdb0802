"""The GRU4Rec authors' preprocessing of each public data set, stated in plain pandas from the raw files.

An independent statement of what ``{rees46,coveo,retailrocket,diginetica}_preproc.py`` do, row by row and
without the package: the tests compare the package's split files with these frames. Times are the scripts'
own integers (seconds for Rees46, milliseconds for the others); the package writes float seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HOUR = 3600
DAY = 86400


def numbered_by_appearance(values: pd.Series) -> pd.Series:
    """0, 1, ... for the distinct values in the order they first appear (a missing value counts as one)."""
    codes, _ = pd.factorize(values, use_na_sentinel=False)
    return pd.Series(codes, index=values.index)


def new_session_numbers(group: pd.Series, time: pd.Series, gap: int) -> pd.Series:
    """Rows sorted by group then time: a new session where the group changes or the time jumps over ``gap``."""
    starts = (group != group.shift()) | (time - time.shift() > gap)
    starts.iloc[:1] = False
    return starts.cumsum()


def protocol(events: pd.DataFrame, split: int, period: int) -> dict[str, pd.DataFrame]:
    """From SessionId, ItemId, Time in the script's order: repeats, filter rounds, and the time split."""
    repeat = (events.SessionId == events.SessionId.shift()) & (events.ItemId == events.ItemId.shift())
    data = events[~repeat]
    before = -1
    while len(data) != before:
        before = len(data)
        length = data.groupby("SessionId").size()
        data = data[data.SessionId.isin(length[length >= 2].index)]
        support = data.groupby("ItemId").size()
        data = data[data.ItemId.isin(support[support >= 5].index)]
    if split is None:
        split = data.Time.max()
    begin = data.groupby("SessionId").Time.min()

    def long_sessions(frame: pd.DataFrame) -> pd.DataFrame:
        length = frame.groupby("SessionId").size()
        return frame[frame.SessionId.isin(length[length >= 2].index)]

    test = data[data.SessionId.isin(begin[begin >= split - period].index)]
    train_full = long_sessions(data[data.Time < split - period])
    train_tr = long_sessions(train_full[train_full.Time < split - 2 * period])
    valid = train_full[train_full.SessionId.isin(begin[begin >= split - 2 * period].index)]
    return {
        name: frame.reset_index(drop=True)[["SessionId", "ItemId", "Time"]]
        for name, frame in [("train_full", train_full), ("test", test), ("train_tr", train_tr), ("valid", valid)]
    }


def rees46(raw: Path) -> dict[str, pd.DataFrame]:
    frames = [
        pd.read_csv(raw / name, usecols=["event_time", "event_type", "product_id", "user_id"], dtype=str)
        for name in ("2019-Oct.csv", "2019-Nov.csv")
    ]
    data = pd.concat(frames, ignore_index=True)
    data["user"] = numbered_by_appearance(data.user_id)
    data["item"] = numbered_by_appearance(data.product_id)
    stamp = pd.to_datetime(data.event_time.str.removesuffix(" UTC"), format="%Y-%m-%d %H:%M:%S")
    data["Time"] = (stamp - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    views = data[data.event_type == "view"].sort_values(["user", "Time", "item"], kind="stable")
    views = views.assign(SessionId=new_session_numbers(views.user, views.Time, HOUR))
    views = views.assign(ItemId=views.product_id.astype(np.int64))
    return protocol(views, 1575158400, DAY)


def coveo(raw: Path) -> dict[str, pd.DataFrame]:
    data = pd.read_csv(raw / "release_10_23_2020.csv", dtype=str, keep_default_na=False)
    data["Time"] = data.server_timestamp_epoch_ms.astype(np.int64)
    data["hash"] = numbered_by_appearance(data.session_id_hash)
    data["ItemId"] = numbered_by_appearance(data.product_skus_hash.replace("", np.nan))
    data = data.sort_values(["hash", "Time", "ItemId"], kind="stable")
    data["SessionId"] = new_session_numbers(data.hash, data.Time, HOUR * 1000)
    return protocol(data[data.product_action == "detail"], None, DAY * 1000)


def retailrocket(raw: Path) -> dict[str, pd.DataFrame]:
    data = pd.read_csv(raw / "events.csv")
    data = data.sort_values(["visitorid", "timestamp", "itemid"], kind="stable")
    data["SessionId"] = new_session_numbers(data.visitorid, data.timestamp, HOUR * 1000)
    views = data[data.event == "view"].rename(columns={"itemid": "ItemId", "timestamp": "Time"})
    return protocol(views, 1442545200 * 1000, 7 * DAY * 1000)


def diginetica(raw: Path) -> dict[str, pd.DataFrame]:
    data = pd.read_csv(raw / "train-item-views.csv", sep=";")
    first_day = pd.to_datetime(data.groupby("sessionId").eventdate.transform("min"))
    data["Time"] = (first_day - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1) + data.timeframe
    data = data.rename(columns={"sessionId": "SessionId", "itemId": "ItemId"})
    data = data.sort_values(["SessionId", "Time", "ItemId"], kind="stable")
    return protocol(data, None, 7 * DAY * 1000)


STATEMENTS = {"rees46": rees46, "coveo": coveo, "retailrocket": retailrocket, "diginetica": diginetica}
