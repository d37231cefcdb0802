"""Own click logs: columns, id mapping, time formats, errors that name file, column and line."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import run_snakemake
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


def test_string_ids_are_refused_by_default_naming_file_line_column_and_value(tmp_path):
    """One stray value used to renumber the whole column silently; now integer ids are the default and checked."""
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,100,1396867869\n1,101,1396867870\n2,abc,1396867871\n")
    with pytest.raises(DataFormatError) as error:
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet")
    message = str(error.value)
    assert message.startswith(f"{source}, line 4: column 'ItemId': 'abc' is not an integer id")
    assert "own_data.ids: map" in message
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize(
    "value, problem",
    [
        ("007", "'007' is not an integer id as written (leading zeros or a sign)"),
        ("+7", "'+7' is not an integer id as written (leading zeros or a sign)"),
        ("99999999999999999999", "'99999999999999999999' is not an integer id (outside the 64-bit range)"),
        ("7.5", "'7.5' is not an integer id"),
    ],
)
def test_integer_ids_must_read_back_as_written(tmp_path, value, problem):
    source = tmp_path / "log.csv"
    source.write_text(f"SessionId,ItemId,Time\n{value},1,1396867869\n")
    with pytest.raises(DataFormatError, match="line 2: column 'SessionId': " + re.escape(problem)):
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet")


def test_parquet_string_ids_are_reported_by_row(tmp_path):
    source = tmp_path / "log.parquet"
    pd.DataFrame({"SessionId": ["1", "2", "x2"], "ItemId": [1, 2, 3], "Time": [1.0, 2.0, 3.0]}).to_parquet(source)
    with pytest.raises(DataFormatError, match=r"log.parquet: row 3: column 'SessionId': 'x2' is not an integer id"):
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet")


def test_map_gives_string_ids_a_stable_dense_mapping_written_next_to_the_output(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("user,product,when\nu-b,p2,1396867869\nu-b,p1,1396867870\nu-a,p2,1396867871\n")
    out = tmp_path / "clicks.parquet"
    own_clicks_to_parquet(source, out, "user", "product", "when", ids="map")
    clicks = read_clicks(out)
    sessions = pd.read_parquet(mapping_path(out, "session"))
    items = pd.read_parquet(mapping_path(out, "item"))
    # Sorted order of the original strings: the same ids map the same way in any row order.
    assert sessions.to_dict("list") == {"SessionId": [0, 1], "Original": ["u-a", "u-b"]}
    assert items.to_dict("list") == {"ItemId": [0, 1], "Original": ["p1", "p2"]}
    assert clicks["SessionId"].tolist() == [1, 1, 0]
    assert clicks["ItemId"].tolist() == [1, 0, 1]


def test_map_maps_every_column_so_the_maps_always_exist(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,007,1396867869\n1,7,1396867870\n1,12,1396867871\n")
    out = tmp_path / "clicks.parquet"
    own_clicks_to_parquet(source, out, ids="map")
    assert read_clicks(out)["ItemId"].tolist() == [0, 2, 1]  # "007" and "7" stay distinct
    assert pd.read_parquet(mapping_path(out, "item"))["Original"].tolist() == ["007", "12", "7"]
    assert pd.read_parquet(mapping_path(out, "session")).to_dict("list") == {"SessionId": [0], "Original": ["1"]}


def test_a_mapping_left_from_an_earlier_run_is_removed(tmp_path):
    out = tmp_path / "clicks.parquet"
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,a,1396867869\n1,b,1396867870\n")
    own_clicks_to_parquet(source, out, ids="map")
    assert mapping_path(out, "item").exists()
    source.write_text("SessionId,ItemId,Time\n1,1,1396867869\n1,2,1396867870\n")
    own_clicks_to_parquet(source, out)
    assert not mapping_path(out, "item").exists() and not mapping_path(out, "session").exists()


def test_unknown_id_mode_is_a_config_error(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\n1,2,3\n")
    with pytest.raises(ConfigError, match="own_data.ids.*integer, map.*'strings'"):
        own_clicks_to_parquet(source, tmp_path / "clicks.parquet", ids="strings")


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


def test_command_line_ids(tmp_path, capsys):
    source = tmp_path / "log.csv"
    source.write_text("SessionId,ItemId,Time\nu1,sku-9,1396867869\n")
    argv = ["own-data", "--input", str(source), "--out", str(tmp_path / "clicks.parquet")]
    assert main(argv) == 2
    assert "line 2: column 'SessionId': 'u1' is not an integer id" in capsys.readouterr().err
    assert main([*argv, "--ids", "map"]) == 0
    assert pd.read_parquet(mapping_path(tmp_path / "clicks.parquet", "item"))["Original"].tolist() == ["sku-9"]


@pytest.mark.slow
def test_workflow_passes_the_ids_setting(workflow_copy):
    """The clicks_to_parquet rule refuses string ids by default and maps them with own_data.ids: map."""
    source = workflow_copy / "log.csv"
    source.write_text("visit,product,when\nv1,sku-1,1396867869\nv1,sku-2,1396867870\n")
    target = ("results/data/clicks.parquet", "--cores", "1", "--configfile", "config/config.yaml", "own.yaml")
    (workflow_copy / "own.yaml").write_text(
        f"own_data: {{path: {source}, session_column: visit, item_column: product, time_column: when}}\n"
    )
    result = run_snakemake(workflow_copy, *target, check=False)
    log = (workflow_copy / "logs" / "clicks_to_parquet" / "clicks_to_parquet.log").read_text()
    assert result.returncode != 0 and "line 2: column 'visit': 'v1' is not an integer id" in log
    (workflow_copy / "own.yaml").write_text(
        f"own_data: {{path: {source}, session_column: visit, item_column: product, time_column: when, ids: map}}\n"
    )
    run_snakemake(workflow_copy, *target)
    item_map = pd.read_parquet(workflow_copy / "results" / "data" / "clicks.item_map.parquet")
    assert item_map["Original"].tolist() == ["sku-1", "sku-2"]
