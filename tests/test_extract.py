"""extract_members(): only the named members, refuses unsafe names, no output from damaged archives."""

from __future__ import annotations

import os
import struct
import time
import zlib

import py7zr
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.extract import extract_members
from gru4rec_pipeline.errors import DataFormatError

CLICKS = b"".join(b"%d,2014-04-07T10:51:09.277Z,214536502,0\n" % session for session in range(1, 3001))
BUYS = b"420374,2014-04-06T18:44:58.314Z,214537888,12462,1\n"


def write_archive(path, members: dict[str, bytes], encoded_header: bool = True) -> None:
    with py7zr.SevenZipFile(path, "w") as seven_zip:
        seven_zip.set_encoded_header_mode(encoded_header)
        for name, data in members.items():
            seven_zip.writestr(data, name)


def rename_member(path, old: str, new: str) -> None:
    """Rewrite a member name in an archive's plain header (py7zr refuses to write unsafe names itself)."""
    data = bytearray(path.read_bytes())
    old_utf16, new_utf16 = old.encode("utf-16-le"), new.encode("utf-16-le")
    assert len(old_utf16) == len(new_utf16)
    header_offset, header_size = struct.unpack("<QQ", data[12:28])
    start = 32 + header_offset
    header = bytes(data[start : start + header_size])
    assert header.count(old_utf16) == 1
    header = header.replace(old_utf16, new_utf16)
    data[start : start + header_size] = header
    data[28:32] = struct.pack("<I", zlib.crc32(header))
    data[8:12] = struct.pack("<I", zlib.crc32(bytes(data[12:32])))
    path.write_bytes(bytes(data))


@pytest.fixture
def rsc15_like_archive(tmp_path):
    archive = tmp_path / "yoochoose-data.7z"
    write_archive(
        archive, {"yoochoose-clicks.dat": CLICKS, "yoochoose-buys.dat": BUYS, "docs/dataset-README.txt": b"x"}
    )
    return archive


def visible_files(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_extracts_only_the_named_member(rsc15_like_archive, tmp_path):
    out_dir = tmp_path / "raw"
    extracted = extract_members(rsc15_like_archive, out_dir, ["yoochoose-clicks.dat"])
    assert extracted == {"yoochoose-clicks.dat": out_dir / "yoochoose-clicks.dat"}
    assert extracted["yoochoose-clicks.dat"].read_bytes() == CLICKS
    assert visible_files(out_dir) == ["yoochoose-clicks.dat"]


def test_member_in_a_folder_is_found_by_base_name_and_lands_flat(rsc15_like_archive, tmp_path):
    extracted = extract_members(rsc15_like_archive, tmp_path / "raw", ["dataset-README.txt", "yoochoose-buys.dat"])
    assert extracted["dataset-README.txt"] == tmp_path / "raw" / "dataset-README.txt"
    assert extracted["dataset-README.txt"].read_bytes() == b"x"
    assert extracted["yoochoose-buys.dat"].read_bytes() == BUYS


def test_extracted_file_is_newer_than_the_archive(tmp_path):
    source = tmp_path / "yoochoose-clicks.dat"
    source.write_bytes(CLICKS)
    old = time.time() - 10 * 365 * 86400
    os.utime(source, (old, old))
    archive = tmp_path / "data.7z"
    with py7zr.SevenZipFile(archive, "w") as seven_zip:
        seven_zip.write(source, "yoochoose-clicks.dat")
    extracted = extract_members(archive, tmp_path / "raw", ["yoochoose-clicks.dat"])
    assert extracted["yoochoose-clicks.dat"].stat().st_mtime >= archive.stat().st_mtime


@pytest.mark.parametrize("unsafe_name", ["../evil", "/tmp/ev", "a/../..", "C:/evil"])
def test_unsafe_member_names_refuse_the_whole_archive(tmp_path, unsafe_name):
    archive = tmp_path / "evil.7z"
    placeholder = "x" * len(unsafe_name)
    write_archive(archive, {"yoochoose-clicks.dat": CLICKS, placeholder: b"pwned"}, encoded_header=False)
    rename_member(archive, placeholder, unsafe_name)
    out_dir = tmp_path / "raw"
    with pytest.raises(DataFormatError, match=r"evil\.7z.*refusing to extract") as info:
        extract_members(archive, out_dir, ["yoochoose-clicks.dat"])
    assert repr(unsafe_name) in str(info.value)
    assert visible_files(out_dir) == []
    assert not (tmp_path / "evil").exists()


def test_truncated_archive_is_a_clear_error_with_no_output(rsc15_like_archive, tmp_path):
    data = rsc15_like_archive.read_bytes()
    rsc15_like_archive.write_bytes(data[: len(data) * 2 // 3])
    out_dir = tmp_path / "raw"
    with pytest.raises(DataFormatError, match="yoochoose-data.7z: cannot read the 7z archive"):
        extract_members(rsc15_like_archive, out_dir, ["yoochoose-clicks.dat"])
    assert visible_files(out_dir) == []


@pytest.mark.parametrize("compressed", [True, False])
def test_corrupted_bytes_are_a_clear_error_with_no_output(tmp_path, compressed):
    # Stored (uncompressed) data is caught only by the CRC check, compressed data usually earlier.
    archive = tmp_path / "data.7z"
    filters = None if compressed else [{"id": py7zr.FILTER_COPY}]
    with py7zr.SevenZipFile(archive, "w", filters=filters) as seven_zip:
        seven_zip.writestr(CLICKS, "yoochoose-clicks.dat")
    data = bytearray(archive.read_bytes())
    middle = 32 + (len(data) - 32) // 4  # inside the packed stream, which starts after the 32-byte signature header
    data[middle : middle + 16] = bytes(value ^ 0xFF for value in data[middle : middle + 16])
    archive.write_bytes(bytes(data))
    out_dir = tmp_path / "raw"
    with pytest.raises(DataFormatError, match="data.7z: cannot read the 7z archive"):
        extract_members(archive, out_dir, ["yoochoose-clicks.dat"])
    assert visible_files(out_dir) == []


def test_missing_member_names_archive_and_its_contents(rsc15_like_archive, tmp_path):
    out_dir = tmp_path / "raw"
    with pytest.raises(
        DataFormatError, match=r"yoochoose-data\.7z: no regular file named 'yoochoose-test\.dat'.*yoochoose-clicks\.dat"
    ):
        extract_members(rsc15_like_archive, out_dir, ["yoochoose-clicks.dat", "yoochoose-test.dat"])
    assert visible_files(out_dir) == []


def test_not_an_archive_is_a_clear_error(tmp_path):
    bogus = tmp_path / "yoochoose-data.7z"
    bogus.write_bytes(CLICKS)
    with pytest.raises(DataFormatError, match="yoochoose-data.7z: cannot read the 7z archive"):
        extract_members(bogus, tmp_path / "raw", ["yoochoose-clicks.dat"])
    with pytest.raises(DataFormatError, match="absent.7z: archive not found"):
        extract_members(tmp_path / "absent.7z", tmp_path / "raw", ["yoochoose-clicks.dat"])


def test_cli_extracts_and_reports_errors_with_exit_code(rsc15_like_archive, tmp_path):
    out_dir = tmp_path / "raw"
    argv = [
        "extract",
        "--archive",
        str(rsc15_like_archive),
        "--member",
        "yoochoose-clicks.dat",
        "--out-dir",
        str(out_dir),
    ]
    assert main(argv) == 0
    assert (out_dir / "yoochoose-clicks.dat").read_bytes() == CLICKS
    assert main(argv[:-3] + ["no-such-member", "--out-dir", str(out_dir)]) == 2


def test_extraction_logs_progress(tmp_path, caplog):
    import logging

    from gru4rec_pipeline.data import extract as extract_module

    archive = tmp_path / "data.7z"
    payload = b"1,2014-04-07T10:51:09.277Z,214536502,0\n" * 5000
    with py7zr.SevenZipFile(archive, "w") as seven_zip:
        seven_zip.writestr(payload, "yoochoose-clicks.dat")
    with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
        extract_module.extract_members(archive, tmp_path / "out", ["yoochoose-clicks.dat"])
    done = [r.getMessage() for r in caplog.records if "extract data.7z done" in r.getMessage()]
    assert done and f"{len(payload):,}/{len(payload):,} (100%) B" in done[0], caplog.text


def write_bomb(path, declared_bytes: int) -> None:
    """An archive of a few kilobytes declaring ``declared_bytes`` bytes of zeros."""
    write_archive(path, {"yoochoose-clicks.dat": bytes(declared_bytes)})


def test_a_decompression_bomb_over_the_ceiling_is_refused_before_writing(tmp_path):
    archive = tmp_path / "yoochoose-data.7z"
    write_bomb(archive, 20_000_000)
    assert archive.stat().st_size < 100_000
    out_dir = tmp_path / "raw"
    with pytest.raises(DataFormatError) as refused:
        extract_members(archive, out_dir, ["yoochoose-clicks.dat"], max_bytes=5_000_000)
    message = str(refused.value)
    assert "declares 20,000,000 bytes for yoochoose-clicks.dat" in message
    assert "over the ceiling of 5,000,000 bytes (config key limits.max_extracted_bytes" in message
    assert visible_files(out_dir) == [] and not list(out_dir.glob(".extract-*"))


def test_a_bomb_larger_than_the_free_space_is_refused_naming_both_sizes(tmp_path):
    from tmpfs import small_tmpfs

    archive = tmp_path / "yoochoose-data.7z"
    write_bomb(archive, 20_000_000)
    with small_tmpfs(tmp_path / "small", "4m") as small:
        with pytest.raises(DataFormatError) as refused:
            extract_members(archive, small / "raw", ["yoochoose-clicks.dat"])
        message = str(refused.value)
        assert "declares 20,000,000 bytes" in message and "bytes free on the file system of" in message
        assert visible_files(small / "raw") == []


def test_a_disk_filling_during_extraction_says_so(tmp_path, monkeypatch):
    """The declared size fits, the disk fills anyway (another writer): no space, not a damaged archive."""
    from gru4rec_pipeline.data import extract
    from tmpfs import small_tmpfs

    archive = tmp_path / "yoochoose-data.7z"
    write_bomb(archive, 8_000_000)
    monkeypatch.setattr(extract, "free_bytes", lambda path: 10**12)
    with small_tmpfs(tmp_path / "small", "4m") as small:
        with pytest.raises(Exception) as failed:
            extract_members(archive, small / "raw", ["yoochoose-clicks.dat"])
        message = str(failed.value)
        assert "no space left on the file system of" in message and "damaged" not in message, message
        assert visible_files(small / "raw") == []
