"""The public data sets' preprocessing against plain-pandas statements of the authors' scripts (synthetic raw files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataset_statements import STATEMENTS
from gru4rec_pipeline.data.datasets.registry import dataset
from gru4rec_pipeline.data.datasets.stage import dataset_events, run_dataset_split
from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import SPLITS
from gru4rec_pipeline.synthetic.datasets import write_synthetic_raw

SETS = tuple(STATEMENTS)
TICKS_PER_SECOND = {"rees46": 1, "coveo": 1000, "retailrocket": 1000, "diginetica": 1000}


@pytest.fixture(scope="module", params=SETS)
def processed(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    write_synthetic_raw(name, folder / "raw", "tiny", seed=3)
    paths = {split: folder / "out" / f"{split}.parquet" for split in SPLITS}
    item_map = folder / "out" / "items.parquet" if name == "coveo" else None
    stats = run_dataset_split(name, folder / "raw", paths, folder / "out" / "stats.json", item_map_path=item_map)
    return name, folder, paths, stats


def test_splits_are_row_identical_to_the_pandas_statement(processed):
    name, folder, paths, stats = processed
    expected = STATEMENTS[name](folder / "raw")
    for split in SPLITS:
        got, want = read_events(paths[split]), expected[split]
        assert len(got) > 0 and len(got) == len(want), split
        np.testing.assert_array_equal(got.SessionId.to_numpy(), want.SessionId.to_numpy(np.int64), err_msg=split)
        np.testing.assert_array_equal(got.ItemId.to_numpy(), want.ItemId.to_numpy(np.int64), err_msg=split)
        # Float seconds, milliseconds kept: back to the script's integers exactly.
        ticks = np.rint(got.Time.to_numpy() * TICKS_PER_SECOND[name]).astype(np.int64)
        np.testing.assert_array_equal(ticks, want.Time.to_numpy(np.int64), err_msg=split)
        assert stats["splits"][split]["events"] == len(want)


def test_the_synthetic_data_holds_the_edge_cases_the_scripts_handle(processed):
    name, folder, paths, stats = processed
    steps = {step["step"]: step for step in json.loads((folder / "out" / "stats.json").read_text())["steps"]}
    repeats = next(step for text, step in steps.items() if "repeating the item" in text)
    assert repeats["removed_events"] > 0
    # Items and sessions removed over several rounds of the filters.
    assert steps["filter round 2: sessions shorter than min_session_length=2"]["removed_events"] > 0
    assert any(text.startswith("filter round 3") for text in steps)
    # A session beginning exactly at the test period's start is a test session; a session that began before
    # it keeps its events before it in train_full and loses the one exactly on it.
    spec = dataset(name)
    boundary = stats["split_time"] - spec.period_seconds
    test, train_full = read_events(paths["test"]), read_events(paths["train_full"])
    assert (test.groupby("SessionId").Time.min() == boundary).any()
    assert (train_full.Time < boundary).all() and not (train_full.Time == boundary).any()
    valid = read_events(paths["valid"])
    assert (valid.groupby("SessionId").Time.min() == boundary - spec.period_seconds).any()
    assert steps["train_full sessions shorter than min_session_length=2"]["removed_events"] > 0


@pytest.mark.parametrize("name", ["rees46", "coveo", "retailrocket"])
def test_sessions_are_cut_at_gaps_over_an_hour_and_not_at_an_hour(name, tmp_path):
    write_synthetic_raw(name, tmp_path, "tiny", seed=3)
    events = dataset_events(name, tmp_path)
    same = events.session_ids[1:] == events.session_ids[:-1]
    gaps = np.diff(events.ticks)[same]
    hour = 3600 * events.ticks_per_second
    # Views exactly an hour apart stay in one session (whether one tick more cuts is in the row-for-row test).
    assert (gaps == hour).any()
    if name == "rees46":  # cut on the views themselves: no view follows another of its session by more
        assert gaps.max() == hour


def test_coveo_item_map_names_the_product_hashes(processed):
    name, folder, paths, _ = processed
    if name != "coveo":
        pytest.skip("only Coveo's items are hashes")
    items = pd.read_parquet(folder / "out" / "items.parquet")
    raw = pd.read_csv(folder / "raw" / "release_10_23_2020.csv", dtype=str, keep_default_na=False)
    in_order = pd.unique(raw.product_skus_hash.replace("", np.nan))
    assert list(items.Original) == [in_order[i] for i in items.ItemId]
    assert set(read_events(paths["train_full"]).ItemId) <= set(items.ItemId)


@pytest.mark.parametrize("name", SETS)
def test_synthetic_raw_files_are_byte_identical_for_a_seed(name, tmp_path):
    for folder, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_synthetic_raw(name, tmp_path / folder, "tiny", seed=seed)
    files = dataset(name).raw_files
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)


# ----------------------------------------------------------------------------------------------
# Malformed raw lines.

HEADERS = {
    "rees46": "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
    "coveo": "session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url",
    "retailrocket": "timestamp,visitorid,event,itemid,transactionid",
    "diginetica": "sessionId;userId;itemId;timeframe;eventdate",
}
GOOD = {
    "rees46": "2019-10-01 00:00:0{i} UTC,view,100{i},2053,,brand,1.5,5{i},abc",
    "coveo": "h{i},pageview,detail,p{i},154319040000{i},u",
    "retailrocket": "143322133211{i},{i},view,35590{i},",
    "diginetica": "{i};NA;8176{i};52630{i};2016-05-09",
}
BAD = {
    "rees46": [
        ("2019-10-01 00:00:07,view,1007,2053,,brand,1.5,57,abc", "event_time '2019-10-01 00:00:07' is not a UTC time"),
        ("2019-10-01 00:00:07 UTC,view,x7,2053,,brand,1.5,57,abc", "product_id 'x7' is not an integer"),
        ("2019-10-01 00:00:07 UTC,view,1007,2053,,brand,1.5,57", "expected 9 fields"),
        ("2019-10-01 00:00:07 UTC,view,1007,2053,,brand,1.5,,abc", "user_id is empty"),
    ],
    "coveo": [
        ("h7,pageview,detail,p7,soon,u", "server_timestamp_epoch_ms 'soon' is not an integer"),
        (",pageview,detail,p7,1543190400007,u", "session_id_hash is empty"),
        ("h7,pageview,detail,p7,1543190400007", "expected 6 fields"),
    ],
    "retailrocket": [
        ("1433221332117,7,view,3.5,", "itemid '3.5' is not an integer"),
        ("1433221332117,,view,35597,", "visitorid is empty"),
        ("1433221332117,7,view,35597", "expected 5 fields"),
    ],
    "diginetica": [
        ("7;NA;81767;526307;09/05/2016", "eventdate '09/05/2016' is not a date"),
        ("7;NA;;526307;2016-05-09", "itemId is empty"),
        ("7,NA,81767,526307,2016-05-09", "expected 5 fields"),
    ],
}


@pytest.mark.parametrize(("name", "line", "problem"), [(n, line, p) for n in SETS for line, p in BAD[n]])
def test_a_malformed_line_is_refused_by_file_and_line(name, line, problem, tmp_path):
    files = dataset(name).raw_files
    lines = [HEADERS[name], *(GOOD[name].format(i=i) for i in range(5)), line, GOOD[name].format(i=8)]
    for file in files:
        (tmp_path / file).write_text("\n".join(lines[:1] + [GOOD[name].format(i=9)]) + "\n")
    (tmp_path / files[-1]).write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(DataFormatError) as caught:
        run_dataset_split(name, tmp_path, {s: out / f"{s}.parquet" for s in SPLITS}, out / "stats.json")
    assert caught.value.path == str(tmp_path / files[-1]) and caught.value.line == 7
    assert problem in str(caught.value)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", SETS)
def test_a_wrong_header_is_refused_at_line_one(name, tmp_path):
    for file in dataset(name).raw_files:
        (tmp_path / file).write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match="expected the .* header") as caught:
        run_dataset_split(name, tmp_path, {}, tmp_path / "stats.json")
    assert caught.value.line == 1


def test_a_missing_raw_file_names_the_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"events.csv: file not found \(nor events.csv.gz\)"):
        run_dataset_split("retailrocket", tmp_path, {}, tmp_path / "stats.json")


def test_gzipped_raw_files_are_read_as_published(tmp_path):
    import gzip

    write_synthetic_raw("rees46", tmp_path / "plain", "tiny")
    for file in dataset("rees46").raw_files:
        (tmp_path / "zipped").mkdir(exist_ok=True)
        (tmp_path / "zipped" / f"{file}.gz").write_bytes(gzip.compress((tmp_path / "plain" / file).read_bytes()))
    plain = run_dataset_split("rees46", tmp_path / "plain", {}, tmp_path / "a.json")
    zipped = run_dataset_split("rees46", tmp_path / "zipped", {}, tmp_path / "b.json")
    assert plain["splits"] == zipped["splits"] and zipped["sources"][0].endswith("2019-Oct.csv.gz")
