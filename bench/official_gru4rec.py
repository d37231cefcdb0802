"""Running the official PyTorch GRU4Rec (https://github.com/hidasib/GRU4Rec_PyTorch_Official) from a checkout whose
path the user gives: its code is imported from there in the process that runs it, never copied into this project.
Used by ``bench_official.py`` (whole trainings, evaluated) and ``bench_official_step.py`` (step by step).

Two library changes since the official code was published stop it, and ``import_official`` mends them in the
importing process without changing what the code computes: under numpy 2 ``_init_numpy_weights`` returns float64
for some matrices (numpy 2 no longer casts ``float32 array * float64 scalar`` down to float32) and ``fit`` stops,
so the same draw is put in computed as numpy 1 did (float32 throughout, the same numbers); and torch no longer
builds a tensor from a pandas Series (``fit`` does for the logQ correction of cross-entropy), so the module's
``torch.tensor`` takes the Series' values. Its initial weights come from a fixed numpy seed (42) whatever the
other seeds; ``import_official(path, init_seed)`` draws them, with the same formula, from ``init_seed`` instead.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
from pathlib import Path

LOSSES = {"ce_sampled": "cross-entropy", "bpr_max": "bpr-max"}  # this project's name -> the official one
TIE_MODE = "conservative"  # how the official batch_eval counts ties by default (against the target)


def read_clicks(path: Path):
    """SessionId, ItemId, Time of a session-rec / GRU4Rec TSV file (header line, tab-separated)."""
    import pandas as pd

    columns = {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}
    try:
        frame = pd.read_csv(path, sep="\t", usecols=list(columns), dtype=columns)
    except (ValueError, KeyError) as exc:
        raise SystemExit(
            f"{path}: expected tab-separated columns SessionId, ItemId, Time with a header ({exc})"
        ) from None
    return frame


def official_params(loss: str, epochs: int) -> dict:
    """The official GRU4Rec's parameters for this project's default setting of ``loss``."""
    from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS

    setting = DEFAULT_HYPERPARAMETERS[loss]
    if setting["embedding"] != "shared":
        raise SystemExit(f"{loss}: the comparison expects the shared (constrained) embedding")
    return {
        "loss": LOSSES[loss],
        "layers": list(setting["layers"]),
        "batch_size": setting["batch_size"],
        "dropout_p_embed": setting["dropout_embed"],
        "dropout_p_hidden": setting["dropout_hidden"],
        "learning_rate": setting["learning_rate"],
        "momentum": setting["momentum"],
        "sample_alpha": setting["sample_alpha"],
        "n_sample": setting["n_sample"],
        "embedding": 0,
        "constrained_embedding": True,
        "n_epochs": epochs,
        "bpreg": setting["bpreg"],
        "elu_param": setting["elu_param"],
        "logq": setting["logq"],
    }


def set_official_init(module, seed: int | None) -> None:
    """The official initial draw, uniform in +-sqrt(6 / (rows + cols)) per matrix, in float32 as under numpy 1:
    from numpy's global stream (which the official code seeds with 42) or, with ``seed``, from its own."""
    import numpy as np

    stream = np.random.RandomState(seed) if seed is not None else None

    def draw(self, shape):
        sigma = np.float32(math.sqrt(6.0 / (shape[0] + shape[1])))
        uniform = (stream or np.random).rand(*shape).astype("float32")
        return uniform * np.float32(2) * sigma - sigma

    module.GRU4RecModel._init_numpy_weights = draw


class TorchTakingSeries:
    """The torch module for the official code, whose ``tensor`` takes a pandas Series as older versions did."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def tensor(self, data, *args, **kwargs):
        return self._torch.tensor(data.to_numpy() if hasattr(data, "to_numpy") else data, *args, **kwargs)


def import_official(path: Path, init_seed: int | None = None):
    """The official module from the checkout at ``path``, mended (see above); its initial weights drawn from numpy's
    global stream as the official code seeds it (``init_seed`` None) or from ``init_seed``."""
    import torch

    sys.path.insert(0, str(path))
    import gru4rec_pytorch

    set_official_init(gru4rec_pytorch, init_seed)
    gru4rec_pytorch.torch = TorchTakingSeries(torch)
    return gru4rec_pytorch


def run_official(
    path: Path, train_path: Path, test_path: Path, loss: str, epochs: int, seed: int, seeded_init: bool
) -> dict:
    """Train the official GRU4Rec (numpy and torch seeded with ``seed``) and evaluate it with its ``batch_eval``."""
    import time

    import numpy as np
    import torch

    gru4rec_pytorch = import_official(path, seed if seeded_init else None)
    import evaluation

    np.random.seed(seed)
    torch.manual_seed(seed)
    train, test = read_clicks(train_path), read_clicks(test_path)
    gru = gru4rec_pytorch.GRU4Rec(device=torch.device("cpu"), **official_params(loss, epochs))
    printed = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        gru.fit(train)
        seconds = time.perf_counter() - started
        recall, mrr = evaluation.batch_eval(gru, test, cutoff=[20], mode=TIE_MODE)
    if gru.error_during_train:
        raise SystemExit(f"the official training failed:\n{printed.getvalue()[-2000:]}")
    losses = [float(value) for value in re.findall(r"Epoch\d+ --> loss: ([0-9.naninf]+)", printed.getvalue())]
    known = test[test["ItemId"].isin(train["ItemId"])]
    predictions = int((known.groupby("SessionId").size() - 1).clip(lower=0).sum())
    return {
        "recall@20": float(recall[20]),
        "mrr@20": float(mrr[20]),
        "epoch_losses": losses,
        "train_s": seconds,
        "predictions": predictions,
    }


def official_start(path: Path, init_seed: int | None, hyperparameters, seed: int, train, vocabulary):
    """The start of this project's training (``hyperparameters``, seeded with ``seed``) on ``train`` (the clicks)
    with ``vocabulary``, as a warm start's parent state: the official code's initial weights (drawn as
    ``import_official`` says; rows matched by ItemId) and the fresh optimizer and dropout states of this project's
    training."""
    import numpy as np
    import torch

    from gru4rec_pipeline.training.loop import build_step
    from gru4rec_pipeline.training.retraining import ParentState
    from gru4rec_pipeline.training.state import Snapshot, TrainingState

    gru4rec_pytorch = import_official(path, init_seed)
    params = official_params(hyperparameters.loss, hyperparameters.epochs)
    with contextlib.redirect_stdout(io.StringIO()):
        items = gru4rec_pytorch.SessionDataIterator(train.copy(), params["batch_size"], device=torch.device("cpu"))
    official = gru4rec_pytorch.GRU4RecModel(items.n_items, params["layers"], constrained_embedding=True)
    official._reset_weights_to_compatibility_mode()
    if len(official.G) != 1:
        raise SystemExit("--project-init official: one GRU layer expected")
    rows = torch.as_tensor(np.asarray(items.itemidmap[vocabulary.item_ids].values, dtype=np.int64))
    cell = official.G[0]
    weights = {
        "item_weight": official.Wy.weight.detach()[rows],
        "item_bias": official.By.weight.detach()[rows, 0],
        "gru_input_weights.0": cell.weight_ih.detach().t(),
        "gru_hidden_weights.0": cell.weight_hh.detach().t(),
        "gru_input_biases.0": cell.bias_ih.detach(),
        "gru_hidden_biases.0": cell.bias_hh.detach(),
    }
    step, _ = build_step(hyperparameters, vocabulary.support, torch.device("cpu"), seed)
    weights = {name: value.contiguous().clone() for name, value in weights.items()}
    fresh = Snapshot(0, None, step.optimizer.state_dict(), step.dropout_generator.get_state(), None)
    return ParentState(weights, TrainingState(fresh, []), "the official initial weights")
