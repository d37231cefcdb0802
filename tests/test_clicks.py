"""Raw clicks to typed table / Parquet: values, exact time units, malformed lines by number, atomic output."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data import clicks
from gru4rec_pipeline.data.clicks import CLICKS_SCHEMA, clicks_to_parquet, read_clicks
from gru4rec_pipeline.errors import DataFormatError

RAW_LINES = [
    "1,2014-04-07T10:51:09.277Z,214536502,0",
    "1,2014-04-07T10:54:09.868Z,214536500,0",
    "2,2014-04-07T13:56:37.614Z,214662742,S",
    "11,2014-04-03T10:44:35.672Z,214821275,12",
    "9194098,2014-09-30T23:59:59.999Z,643078800,2090669376",
]


def write_lines(path, lines, ending="\n", final_newline=True) -> None:
    text = ending.join(lines) + (ending if final_newline else "")
    path.write_bytes(text.encode("utf-8"))


@pytest.fixture
def clicks_dat(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    write_lines(path, RAW_LINES)
    return path


def test_values_and_types(clicks_dat):
    table = read_clicks(clicks_dat)
    assert table.schema == CLICKS_SCHEMA
    assert table.column("SessionId").to_pylist() == [1, 1, 2, 11, 9194098]
    assert table.column("ItemId").to_pylist() == [214536502, 214536500, 214662742, 214821275, 643078800]
    assert table.column("Category").to_pylist() == ["0", "0", "S", "12", "2090669376"]


def test_time_is_exact_utc_epoch_seconds_with_milliseconds(clicks_dat):
    times = read_clicks(clicks_dat).column("Time").to_pylist()
    # Seconds, not milliseconds or nanoseconds, and the double nearest to the exact value.
    assert times[0] == 1396867869.277
    assert times[0] == datetime(2014, 4, 7, 10, 51, 9, 277000, tzinfo=timezone.utc).timestamp()
    assert times[4] == 1412121599.999
    assert times[1] - times[0] == pytest.approx(180.591, abs=1e-6)


def test_zone_offsets_are_converted_to_utc(tmp_path):
    path = tmp_path / "clicks.dat"
    write_lines(path, ["1,2014-04-07T12:51:09.277+02:00,5,0"])
    assert read_clicks(path).column("Time").to_pylist() == [1396867869.277]


def test_without_category_reads_three_columns(clicks_dat):
    table = read_clicks(clicks_dat, with_category=False)
    assert table.column_names == ["SessionId", "ItemId", "Time"]
    assert table.schema == CLICKS_SCHEMA.remove(3)
    assert table.num_rows == len(RAW_LINES)


def test_crlf_blank_lines_and_a_missing_final_newline_are_accepted(tmp_path):
    path = tmp_path / "clicks.dat"
    write_lines(path, RAW_LINES[:2] + [""] + RAW_LINES[2:], ending="\r\n", final_newline=False)
    table = read_clicks(path)
    assert table.num_rows == len(RAW_LINES)
    assert table.column("Category").to_pylist()[-1] == "2090669376"


def test_many_blocks_read_in_file_order(tmp_path, monkeypatch):
    monkeypatch.setattr(clicks, "READ_BLOCK_BYTES", 256)
    path = tmp_path / "clicks.dat"
    write_lines(
        path, [f"{session},2014-04-07T10:51:{session % 60:02d}.001Z,{1000 + session},0" for session in range(500)]
    )
    table = read_clicks(path)
    assert table.column("SessionId").to_pylist() == list(range(500))
    assert table.column("ItemId").to_pylist() == [1000 + session for session in range(500)]


GOOD = "7,2014-04-07T10:51:09.277Z,214536502,0"
MALFORMED = [
    ("7,2014-04-07T10:51:09.277Z,214536502", "expected 4 comma-separated fields .* found 3"),
    ("7,2014-04-07T10:51:09.277Z,214536502,0,extra", "expected 4 comma-separated fields .* found 5"),
    ("x7,2014-04-07T10:51:09.277Z,214536502,0", "SessionID 'x7' is not a 64-bit integer"),
    ("7,2014-04-07T10:51:09.277Z,2145.5,0", "ItemID '2145.5' is not a 64-bit integer"),
    ("7,2014-04-07T10:51:09.277Z,99999999999999999999,0", "ItemID '99999999999999999999' is not a 64-bit integer"),
    ("7,,214536502,0", "Timestamp '' is not an ISO 8601 time"),
    ("7,2014-13-07T10:51:09.277Z,214536502,0", "Timestamp '2014-13-07T10:51:09.277Z' is not an ISO 8601 time"),
    (
        "7,2014-04-07T10:51:09.277,214536502,0",
        "Timestamp '2014-04-07T10:51:09.277' is not an ISO 8601 time with a zone",
    ),
    ("7,07/04/2014 10:51,214536502,0", "Timestamp '07/04/2014 10:51' is not an ISO 8601 time"),
]


@pytest.mark.parametrize("bad_line, problem", MALFORMED)
def test_malformed_line_is_reported_with_its_line_number(tmp_path, bad_line, problem):
    path = tmp_path / "yoochoose-clicks.dat"
    # Line 5 is blank (skipped, but still counted), the bad one is line 8.
    write_lines(path, [GOOD] * 4 + [""] + [GOOD] * 2 + [bad_line] + [GOOD] * 3)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_clicks(path)
    assert info.value.line == 8
    assert str(info.value).startswith(f"{path}, line 8: ")


def test_bad_line_far_into_the_file_is_found_across_scan_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(clicks, "READ_BLOCK_BYTES", 1024)
    monkeypatch.setattr(clicks, "SCAN_BLOCK_BYTES", 100)  # shorter than two lines: blocks carry over partial lines
    path = tmp_path / "clicks.dat"
    lines = [GOOD] * 1000
    lines[876] = "7,2014-04-07T10:51:09.277Z,notanitem,0"
    write_lines(path, lines)
    with pytest.raises(DataFormatError, match="ItemID 'notanitem'") as info:
        read_clicks(path)
    assert info.value.line == 877


def test_bad_last_line_without_newline_is_found(tmp_path):
    path = tmp_path / "clicks.dat"
    write_lines(path, [GOOD] * 3 + ["7,2014-04-07T10:51"], final_newline=False)
    with pytest.raises(DataFormatError, match="found 2") as info:
        read_clicks(path)
    assert info.value.line == 4


def test_invalid_utf8_category_is_an_error_only_when_categories_are_read(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_bytes(f"{GOOD}\n{GOOD}\n".encode() + b"7,2014-04-07T10:51:09.277Z,214536502,\xff\xfe\n")
    with pytest.raises(DataFormatError, match="Category .* is not valid UTF-8") as info:
        read_clicks(path)
    assert info.value.line == 3
    assert read_clicks(path, with_category=False).num_rows == 3


@pytest.mark.parametrize("content, problem", [(b"", "empty file"), (b"\n\n\r\n", "no clicks, only empty lines")])
def test_empty_input_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "clicks.dat"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=f"clicks.dat: {problem}.*SessionID,Timestamp,ItemID,Category"):
        read_clicks(path)


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataFormatError, match="absent.dat: file not found"):
        read_clicks(tmp_path / "absent.dat")


def test_parquet_round_trip_in_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(clicks, "READ_BLOCK_BYTES", 256)
    monkeypatch.setattr(clicks, "ROW_GROUP_ROWS", 64)
    dat = tmp_path / "clicks.dat"
    write_lines(dat, [f"{session},2014-04-07T10:51:09.{session % 1000:03d}Z,{session * 3},S" for session in range(300)])
    out = tmp_path / "data" / "clicks.parquet"
    assert clicks_to_parquet(dat, out) == 300
    written = pq.read_table(out)
    assert written.schema.remove_metadata() == CLICKS_SCHEMA
    assert written.equals(read_clicks(dat))
    assert pq.ParquetFile(out).metadata.num_row_groups > 1
    assert sorted(path.name for path in out.parent.iterdir()) == ["clicks.parquet"]


def test_failed_conversion_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(clicks, "READ_BLOCK_BYTES", 256)
    monkeypatch.setattr(clicks, "ROW_GROUP_ROWS", 16)  # row groups are written before the bad line is reached
    dat = tmp_path / "clicks.dat"
    write_lines(dat, [GOOD] * 200 + ["7,2014-04-07T10:51:09.277Z,214536502"])
    out_dir = tmp_path / "data"
    with pytest.raises(DataFormatError, match="line 201"):
        clicks_to_parquet(dat, out_dir / "clicks.parquet")
    assert list(out_dir.iterdir()) == []


def test_cli_converts_and_reports_errors_with_exit_code(clicks_dat, tmp_path):
    out = tmp_path / "clicks.parquet"
    assert main(["clicks", "--input", str(clicks_dat), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == len(RAW_LINES)
    assert main(["clicks", "--input", str(tmp_path / "absent.dat"), "--out", str(tmp_path / "other.parquet")]) == 2
    assert not (tmp_path / "other.parquet").exists()
