"""Own click logs: columns, id mapping, time formats, errors that name file, column and line."""

from __future__ import annotations

import pandas as pd
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.owndata import mapping_path, own_clicks_to_parquet
from gru4rec_pipeline.errors import ConfigError, DataFormatError

APRIL_7 = 1_396_867_869.0  # 2014-04-07T10:51:09Z


def read_clicks(path):
    clicks = pd.read_parquet(path)
    assert list(clicks.columns) == ["SessionId", "ItemId", "Time", "Category"]
    assert [str(t) for t in clicks.dtypes[:3]] == ["int64", "int64", "float64"]
    return clicks


def test_integer_ids_and_epoch_seconds_are_kept(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("sid;item;ts\n7;100;1396867869.5\n7;101;1396867870\n9;100;1396867990\n")
    rows = own_clicks_to_parquet(source, tmp_path / "clicks.parquet", "sid", "item", "ts", sep=";")
    clicks = read_clicks(tmp_path / "clicks.parquet")
    assert rows == 3
    assert clicks["SessionId"].tolist() == [7, 7, 9]
    assert clicks["ItemId"].tolist() == [100, 101, 100]
    assert clicks["Time"].tolist() == [1396867869.5, 1396867870.0, 1396867990.0]
    assert clicks["Category"].tolist() == ["", "", ""]
    assert not mapping_path(tmp_path / "clicks.parquet", "item").exists()


def test_iso_times_with_and_without_timezone_become_utc(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text(
        "SessionId,ItemId,Time\n1,5,2014-04-07T10:51:09Z\n1,6,2014-04-07T12:51:09+02:00\n1,7,2014-04-07 10:51:09.250\n"
    )
    own_clicks_to_parquet(source, tmp_path / "clicks.parquet", time_format="iso")
    assert read_clicks(tmp_path / "clicks.parquet")["Time"].tolist() == [APRIL_7, APRIL_7, APRIL_7 + 0.25]


def test_string_ids_get_a_stable_dense_mapping_written_next_to_the_output(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("user,product,when\nu-b,p2,1396867869\nu-b,p1,1396867870\nu-a,p2,1396867871\n")
    out = tmp_path / "clicks.parquet"
    own_clicks_to_parquet(source, out, "user", "product", "when")
    clicks = read_clicks(out)
    sessions = pd.read_parquet(mapping_path(out, "session"))
    items = pd.read_parquet(mapping_path(out, "item"))
    # Sorted order of the original strings: the same ids map the same way in any row order.
    assert sessions.to_dict("list") == {"SessionId": [0, 1], "Original": ["u-a", "u-b"]}
    assert items.to_dict("list") == {"ItemId": [0, 1], "Original": ["p1", "p2"]}
    assert clicks["SessionId"].tolist() == [1, 1, 0]
    assert clicks["ItemId"].tolist() == [1, 0, 1]


def test_non_canonical_integers_are_mapped_so_distinct_ids_stay_distinct(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,007,1396867869\n1,7,1396867870\n")
    own_clicks_to_parquet(source, tmp_path / "clicks.parquet")
    assert read_clicks(tmp_path / "clicks.parquet")["ItemId"].nunique() == 2


def test_a_mapping_left_from_an_earlier_run_is_removed(tmp_path):
    out = tmp_path / "clicks.parquet"
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,a,1396867869\n1,b,1396867870\n")
    own_clicks_to_parquet(source, out)
    assert mapping_path(out, "item").exists()
    source.write_text("SessionId,ItemId,Time\n1,1,1396867869\n1,2,1396867870\n")
    own_clicks_to_parquet(source, out)
    assert not mapping_path(out, "item").exists()


def test_parquet_input_with_timestamps_and_a_category(tmp_path):
    source = tmp_path / "log.parquet"
    pd.DataFrame(
        {
            "s": [1, 1],
            "i": [3, 4],
            "t": pd.to_datetime(["2014-04-07T10:51:09", "2014-04-07T10:52:09"]),
            "c": ["shoes", None],
        }
    ).to_parquet(source)
    own_clicks_to_parquet(source, tmp_path / "clicks.parquet", "s", "i", "t", category_col="c")
    clicks = read_clicks(tmp_path / "clicks.parquet")
    assert clicks["Time"].tolist() == [APRIL_7, APRIL_7 + 60]
    assert clicks["Category"].tolist() == ["shoes", ""]


def test_missing_column_names_the_column_the_config_key_and_the_file(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("session,item,time\n1,2,1396867869\n")
    with pytest.raises(DataFormatError) as error:
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet", "session", "ItemId", "time")
    message = str(error.value)
    assert str(source) in message and "no column 'ItemId' (own_data.item_column)" in message
    assert "['session', 'item', 'time']" in message


@pytest.mark.parametrize(
    "rows, time_format, expected",
    [
        ("1,2,1396867869\n1,3,yesterday\n", "auto", r"line 3: column 'Time': 'yesterday' is not a number of seconds"),
        (
            "1,2,2014-04-07\n1,3,07/04/2014 10:00\n",
            "iso",
            r"line 3: column 'Time': '07/04/2014 10:00' is not an ISO-8601",
        ),
        ("1,2,1396867869000\n", "epoch", r"line 2: .*milliseconds"),
        ("1,,1396867869\n", "auto", r"line 2: column 'ItemId' is empty"),
    ],
)
def test_bad_values_are_reported_with_their_line(tmp_path, rows, time_format, expected):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n" + rows)
    out = tmp_path / "clicks.parquet"
    with pytest.raises(DataFormatError, match=expected) as error:
        own_clicks_to_parquet(source, out, time_format=time_format)
    assert str(source) in str(error.value)
    assert list(tmp_path.iterdir()) == [source], "a failed conversion leaves no output"


def test_unknown_time_format_is_a_config_error(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,2,3\n")
    with pytest.raises(ConfigError, match="own_data.time_format"):
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet", time_format="unix")


def test_command_line(tmp_path, capsys):
    source = tmp_path / "log.csv"
    source.write_text("a,b,c\n1,2,2014-04-07T10:51:09Z\n")
    code = main(
        [
            "own-data",
            "--input",
            str(source),
            "--out",
            str(tmp_path / "clicks.parquet"),
            "--session-column",
            "a",
            "--item-column",
            "b",
            "--time-column",
            "c",
        ]
    )
    assert code == 0
    assert "1 clicks written" in capsys.readouterr().out
    assert read_clicks(tmp_path / "clicks.parquet")["Time"].tolist() == [APRIL_7]
