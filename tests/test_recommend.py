"""Recommendations: the right items in the right order, unknown items reported, batch files."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.recommend import (
    read_sessions_file,
    read_sessions_text,
    recommend,
    sessions_from_ids,
)
from gru4rec_pipeline.model.network import GRU4Rec

N_ITEMS = 30
# Original ItemIds differ from the vocabulary indices, so a mix-up shows.
ITEM_IDS = 5000 + 7 * np.arange(N_ITEMS)


@pytest.fixture
def model():
    return GRU4Rec(N_ITEMS, [12], seed=3).eval()


@pytest.fixture
def item_of_index():
    return ITEM_IDS.copy()


def reference_scores(model, indices):
    """Scores after feeding ``indices`` one by one to a batch of one."""
    state = model.init_state(1)
    for index in indices:
        out, state = model.step(torch.tensor([index]), state)
    weights, bias = model.output_weights()
    return (out @ weights.T + bias)[0].numpy()


def test_top_k_matches_a_step_by_step_computation(model, item_of_index):
    rows = recommend(model, item_of_index, sessions_from_ids([int(ITEM_IDS[4]), int(ITEM_IDS[9])]), k=5)
    scores = reference_scores(model, [4, 9])
    expected = np.argsort(-scores)[:5]
    assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
    assert rows["ItemId"].tolist() == ITEM_IDS[expected].tolist()
    assert rows["score"].to_numpy() == pytest.approx(scores[expected], rel=1e-5)


def text_batch(directory, text):
    path = directory / "sessions.txt"
    path.write_text(text)
    return read_sessions_text(path)


def test_sessions_of_different_lengths_in_one_batch_match_single_runs(model, item_of_index, tmp_path):
    sessions = [[3], [1, 2, 3], [7, 8], [0, 5, 9, 11], [2, 4]]
    lines = "\n".join(" ".join(str(ITEM_IDS[i]) for i in s) for s in sessions)
    batch_rows = recommend(model, item_of_index, text_batch(tmp_path, lines), k=3, batch_size=2)
    for line_number, session in enumerate(sessions, start=1):
        expected = ITEM_IDS[np.argsort(-reference_scores(model, session))[:3]]
        got = batch_rows.loc[batch_rows["SessionId"] == line_number, "ItemId"].tolist()
        assert got == expected.tolist(), session


def test_unknown_items_are_reported_and_skipped(model, item_of_index, caplog, tmp_path):
    batch = text_batch(tmp_path, f"{ITEM_IDS[4]} 999999 {ITEM_IDS[9]}\n{ITEM_IDS[1]}\n424242\n")
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline.evaluation.recommend"):
        rows = recommend(model, item_of_index, batch, k=4)
    messages = caplog.text
    assert "line 1: unknown item ids 999999" in messages and "skipped for the hidden state" in messages
    assert "line 3: unknown item ids 424242" in messages
    assert "line 3: no item of the session is in the training vocabulary" in messages
    # The unknown item does not touch the state: same as the session without it.
    expected = ITEM_IDS[np.argsort(-reference_scores(model, [4, 9]))[:4]]
    assert rows.loc[rows["SessionId"] == 1, "ItemId"].tolist() == expected.tolist()
    assert sorted(rows["SessionId"].unique()) == [1, 2]


def test_exclude_seen_never_recommends_the_sessions_items(model, item_of_index):
    seen = [int(ITEM_IDS[i]) for i in (0, 1, 2, 3)]
    all_rows = recommend(model, item_of_index, sessions_from_ids(seen), k=N_ITEMS)
    rows = recommend(model, item_of_index, sessions_from_ids(seen), k=N_ITEMS, exclude_seen=True)
    assert len(rows) == N_ITEMS - len(set(seen))
    assert not set(rows["ItemId"]) & set(seen)
    assert rows["ItemId"].tolist() == [i for i in all_rows["ItemId"] if i not in seen]


def test_text_sessions_accept_commas_spaces_comments_and_name_bad_lines(tmp_path):
    path = tmp_path / "sessions.txt"
    path.write_text("# header comment\n1, 2 3\n\n4,5\n")
    batch = read_sessions_text(path)
    assert batch.session_ids.tolist() == [2, 4]
    assert batch.offsets.tolist() == [0, 3, 5]
    assert batch.item_ids.tolist() == [1, 2, 3, 4, 5]
    path.write_text("1 2\n3 x7\n")
    with pytest.raises(DataFormatError, match="line 2: 'x7' is not an integer ItemId"):
        read_sessions_text(path)


def test_parquet_sessions_are_ordered_by_time(tmp_path):
    path = tmp_path / "sessions.parquet"
    pd.DataFrame({"SessionId": [9, 4, 9, 4], "ItemId": [30, 10, 20, 11], "Time": [5.0, 1.0, 2.0, 0.5]}).to_parquet(path)
    batch = read_sessions_file(path)
    assert batch.session_ids.tolist() == [4, 9]
    assert batch.item_ids.tolist() == [11, 10, 20, 30]
    assert batch.labels == ["session 4", "session 9"]


def test_vocabulary_must_be_dense(tmp_path):
    path = tmp_path / "vocab.parquet"
    pd.DataFrame({"ItemId": [10, 20], "ItemIdx": [1, 0], "Support": [5, 5]}).to_parquet(path)
    assert Vocabulary.load(path).item_ids.tolist() == [20, 10]
    pd.DataFrame({"ItemId": [10, 20], "ItemIdx": [0, 2], "Support": [5, 5]}).to_parquet(path)
    with pytest.raises(DataFormatError, match="not a permutation"):
        Vocabulary.load(path)


@pytest.fixture
def saved_model(tmp_path, model):
    vocabulary = Vocabulary(ITEM_IDS, np.ones(N_ITEMS, dtype=np.int64))
    model.vocabulary = vocabulary.identity()
    model.save(tmp_path / "model.pt")
    vocabulary.save(tmp_path / "vocab.parquet")
    return tmp_path / "model.pt", tmp_path / "vocab.parquet"


def test_command_line_single_session_prints_ranked_items(saved_model, model, capsys):
    model_path, vocab_path = saved_model
    code = main(
        [
            "recommend",
            "--model",
            str(model_path),
            "--vocab",
            str(vocab_path),
            "--session",
            str(ITEM_IDS[2]),
            str(ITEM_IDS[6]),
            "-k",
            "3",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == "rank\tItemId\tscore"
    expected = ITEM_IDS[np.argsort(-reference_scores(model, [2, 6]))[:3]]
    assert [int(line.split("\t")[1]) for line in lines[1:]] == expected.tolist()


def test_command_line_batch_writes_a_tsv(saved_model, tmp_path):
    model_path, vocab_path = saved_model
    sessions = tmp_path / "sessions.txt"
    sessions.write_text(f"{ITEM_IDS[1]},{ITEM_IDS[2]}\n{ITEM_IDS[3]}\n")
    out = tmp_path / "recs.tsv"
    code = main(
        [
            "recommend",
            "--model",
            str(model_path),
            "--vocab",
            str(vocab_path),
            "--sessions-file",
            str(sessions),
            "-k",
            "4",
            "--exclude-seen",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["SessionId", "rank", "ItemId", "score"]
    assert table.groupby("SessionId").size().to_dict() == {1: 4, 2: 4}


def test_command_line_rejects_non_integer_items(saved_model, capsys):
    model_path, vocab_path = saved_model
    code = main(["recommend", "--model", str(model_path), "--vocab", str(vocab_path), "--session", "12", "abc"])
    assert code == 2
    assert "ItemIds must be integers, found abc" in capsys.readouterr().err


def test_original_ids_of_an_own_click_log_go_through_the_item_map(saved_model, model, tmp_path, capsys):
    model_path, vocab_path = saved_model
    item_map = tmp_path / "clicks.item_map.parquet"
    pd.DataFrame({"ItemId": ITEM_IDS, "Original": [f"sku-{i}" for i in range(N_ITEMS)]}).to_parquet(item_map)
    code = main(
        [
            "recommend",
            "--model",
            str(model_path),
            "--vocab",
            str(vocab_path),
            "--item-map",
            str(item_map),
            "--session",
            "sku-2",
            "sku-404",
            "sku-6",
            "-k",
            "3",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "--session: unknown item ids sku-404 (not in the item map)" in captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "rank\tItemId\tOriginalItemId\tscore"
    expected = np.argsort(-reference_scores(model, [2, 6]))[:3]
    assert [line.split("\t")[2] for line in lines[1:]] == [f"sku-{i}" for i in expected]


def recommend_argv(model_path, vocab_path, *rest) -> list[str]:
    return ["recommend", "--model", str(model_path), "--vocab", str(vocab_path), *rest]


def test_a_vocabulary_the_model_was_not_trained_with_is_refused(saved_model, tmp_path, capsys):
    model_path, _ = saved_model
    # The same number of items in another order: the scores would come back under other ItemIds.
    Vocabulary(ITEM_IDS[::-1].copy(), np.ones(N_ITEMS, dtype=np.int64)).save(tmp_path / "other.parquet")
    assert main(recommend_argv(model_path, tmp_path / "other.parquet", "--session", str(ITEM_IDS[0]))) == 2
    error = capsys.readouterr().err
    assert "other.parquet" in error and "model.pt" in error and "not the one" in error


def test_sessions_file_with_a_byte_order_mark_is_read(saved_model, tmp_path):
    model_path, vocab_path = saved_model
    sessions = tmp_path / "sessions.txt"
    sessions.write_bytes(f"\ufeff{ITEM_IDS[1]} {ITEM_IDS[2]}\n".encode())
    out = tmp_path / "recs.tsv"
    assert main(recommend_argv(model_path, vocab_path, "--sessions-file", str(sessions), "--out", str(out))) == 0
    assert pd.read_csv(out, sep="\t")["SessionId"].unique().tolist() == [1]


def test_an_empty_sessions_file_is_an_error_and_writes_nothing(saved_model, tmp_path, capsys):
    model_path, vocab_path = saved_model
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("# nothing here\n\n")
    out = tmp_path / "recs.tsv"
    assert main(recommend_argv(model_path, vocab_path, "--sessions-file", str(sessions), "--out", str(out))) == 2
    assert "sessions.txt: no sessions" in capsys.readouterr().err
    assert not out.exists()


def test_sessions_without_known_items_are_an_error_and_write_nothing(saved_model, tmp_path, capsys):
    model_path, vocab_path = saved_model
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("424242\n")
    out = tmp_path / "recs.tsv"
    assert main(recommend_argv(model_path, vocab_path, "--sessions-file", str(sessions), "--out", str(out))) == 2
    assert "no recommendations" in capsys.readouterr().err and not out.exists()


def test_k_beyond_the_number_of_items_is_said(saved_model, capsys):
    model_path, vocab_path = saved_model
    assert main(recommend_argv(model_path, vocab_path, "--session", str(ITEM_IDS[3]), "-k", "500")) == 0
    printed = capsys.readouterr()
    assert f"-k 500 is more than the model's {N_ITEMS} items" in printed.err
    assert len(printed.out.splitlines()) == 1 + N_ITEMS


def test_a_session_of_many_unknown_items_is_reported_in_a_short_line(model, item_of_index, caplog, tmp_path):
    unknown = " ".join(str(900000 + i) for i in range(200_000))
    batch = text_batch(tmp_path, f"{ITEM_IDS[3]} {unknown} {ITEM_IDS[5]}\n")
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline.evaluation.recommend"):
        rows = recommend(model, item_of_index, batch, k=2)
    first = caplog.records[0].getMessage()
    assert first.startswith("line 1: unknown item ids 900000, 900001, ") and len(first) < 300
    assert "900009 and 199990 more (not in the training vocabulary)" in first
    assert "200000 of 200002 item ids not in the training vocabulary" in caplog.text
    assert len(rows) == 2


def test_an_item_id_of_thousands_of_digits_is_refused_naming_its_line(saved_model, tmp_path, capsys):
    huge = "9" * 4301  # Python itself refuses to convert more than 4,300 digits
    path = tmp_path / "sessions.txt"
    path.write_text(f"{ITEM_IDS[1]}\n{ITEM_IDS[2]} {huge}\n")
    with pytest.raises(DataFormatError, match=r"line 2: ItemId 9{40}\.\.\. \(4301 characters\) does not fit in 64"):
        read_sessions_text(path)
    model_path, vocab_path = saved_model
    files = ["--model", str(model_path), "--vocab", str(vocab_path)]
    assert main(["recommend", *files, "--sessions-file", str(path), "--out", str(tmp_path / "r.tsv")]) == 2
    assert main(["recommend", *files, "--session", str(ITEM_IDS[1]), "-" + huge]) == 2
    errors = capsys.readouterr().err
    assert "line 2: ItemId 9999" in errors and "--session: ItemId -999" in errors and len(errors) < 1000
    assert not (tmp_path / "r.tsv").exists()


def test_the_vocabulary_in_the_models_folder_is_the_default(saved_model, capsys):
    """Every training writes the vocabulary it trained with into the model's folder: ``--vocab`` may be left out."""
    model_path, vocab_path = saved_model
    session = ["--session", str(ITEM_IDS[2]), str(ITEM_IDS[6]), "-k", "3"]
    assert main(recommend_argv(model_path, vocab_path, *session)) == 0
    given = capsys.readouterr().out
    assert main(["recommend", "--model", str(model_path), *session]) == 0
    assert capsys.readouterr().out == given


def test_a_model_folder_without_its_vocabulary_asks_for_one(model, tmp_path, capsys):
    folder = tmp_path / "older"
    folder.mkdir()
    model.vocabulary = Vocabulary(ITEM_IDS, np.ones(N_ITEMS, dtype=np.int64)).identity()
    model.save(folder / "model.pt")
    assert main(["recommend", "--model", str(folder / "model.pt"), "--session", str(ITEM_IDS[2])]) == 2
    error = capsys.readouterr().err
    assert f"{folder / 'model.pt'}: no vocab.parquet beside it" in error and "--vocab" in error


def test_a_missing_model_is_the_error_without_a_vocabulary_too(tmp_path, capsys):
    assert main(["recommend", "--model", str(tmp_path / "none" / "model.pt"), "--session", "1"]) == 2
    assert "model.pt: model file not found" in capsys.readouterr().err
