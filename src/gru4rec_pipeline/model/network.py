"""The GRU4Rec network: item embedding, stacked GRU layers, item scores.

Parameters (all plain tensors; training computes gradients by hand in ``train_step``):
- ``item_weight`` [n_items, d_out] and ``item_bias`` [n_items]: the output layer, ``score = h @ W.T + b``;
  with ``embedding="shared"`` the same ``item_weight`` rows are also the input embedding
  (the "constrained embedding" of the official GRU4Rec, its default);
- ``input_embedding`` [n_items, embedding_dim]: a separate input embedding (``embedding="separate"``);
- per GRU layer ``i``: ``gru_input_weights[i]`` [d_in, 3H], ``gru_hidden_weights[i]`` [H, 3H],
  ``gru_input_biases[i]`` and ``gru_hidden_biases[i]`` [3H], gate blocks in the order (reset, update, new).
  With ``embedding="none"`` the first layer reads the one-hot item, so its input weight has one row per item
  and multiplying by it is a row lookup.

The cell is the one of ``torch.nn.GRUCell`` (which the official PyTorch GRU4Rec uses):
    r = sigmoid(x W_r + b_r + h U_r + c_r),  z = sigmoid(x W_z + b_z + h U_z + c_z)
    n = tanh(x W_n + b_n + r * (h U_n + c_n)),  h' = (1 - z) * n + z * h
Initialisation follows the official code: each gate matrix uniform in +-sqrt(6 / (fan_in + fan_out)),
biases zero, output weights uniform in +-sqrt(6 / (n_items + d_out)), output bias zero.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor, nn

from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import atomic_output, no_space_error
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.names import EMBEDDING_MODES

MODEL_FORMAT = "gru4rec_pipeline.model.network/1"


def glorot_uniform(rows: int, cols: int, gates: int, generator: torch.Generator) -> Tensor:
    """[rows, gates * cols] with every gate block drawn uniform in +-sqrt(6 / (rows + cols))."""
    sigma = math.sqrt(6.0 / (rows + cols))
    weight = torch.rand(rows, gates * cols, generator=generator, dtype=torch.float32)
    return weight.mul_(2.0 * sigma).sub_(sigma)


def gru_kernels_apply(h: Tensor, use_kernels: bool | None = None) -> bool:
    """Whether the gate arithmetic runs in the compiled CPU kernels (float32 CPU tensors)."""
    return use_kernels is not False and kernels.AVAILABLE and h.device.type == "cpu" and h.dtype == torch.float32


def gru_gates(
    gi: Tensor, h: Tensor, hidden_weight: Tensor, hidden_bias: Tensor, use_kernels: bool | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One GRU step given the input projection ``gi = x W + b`` [B, 3H].

    Returns the new state and what the backward pass needs: (h_new, rz, n, gh) where
    rz = [r, z] [B, 2H], n the candidate state, gh = h U + c [B, 3H].
    """
    size = h.shape[1]
    gh = torch.addmm(hidden_bias, h, hidden_weight)
    if gru_kernels_apply(h, use_kernels):
        h_new, rz, n = torch.empty_like(h), h.new_empty(h.shape[0], 2 * size), torch.empty_like(h)
        kernels.gru_cell_forward(
            gi.detach().contiguous().numpy(),
            gh.numpy(),
            h.detach().contiguous().numpy(),
            h_new.numpy(),
            rz.numpy(),
            n.numpy(),
        )
        return h_new, rz, n, gh
    rz = torch.sigmoid(gi[:, : 2 * size] + gh[:, : 2 * size])
    gh_n = gh[:, 2 * size :]
    n = torch.tanh(torch.addcmul(gi[:, 2 * size :], rz[:, :size], gh_n))
    h_new = torch.lerp(n, h, rz[:, size:])  # n + z * (h - n)
    return h_new, rz, n, gh


def gru_gates_backward(
    d_h_new: Tensor, h: Tensor, rz: Tensor, n: Tensor, gh: Tensor, use_kernels: bool | None = None
) -> tuple[Tensor, Tensor]:
    """Gradients of the gate pre-activations: (d_gi, d_gh), both [B, 3H].

    The previous state ``h`` is a constant (no backpropagation through time, as in GRU4Rec),
    so no gradient flows into it.
    """
    size = h.shape[1]
    if gru_kernels_apply(h, use_kernels):
        d_gi, d_gh = torch.empty_like(gh), torch.empty_like(gh)
        kernels.gru_cell_backward(
            d_h_new.detach().contiguous().numpy(),
            h.detach().contiguous().numpy(),
            rz.numpy(),
            n.numpy(),
            gh.numpy(),
            d_gi.numpy(),
            d_gh.numpy(),
        )
        return d_gi, d_gh
    gh_n = gh[:, 2 * size :]
    r, z = rz[:, :size], rz[:, size:]
    d_gi = torch.empty(h.shape[0], 3 * size, dtype=h.dtype, device=h.device)
    d_pre_n = d_gi[:, 2 * size :]
    # dn = dh' * (1 - z);  d(pre-activation of n) = dn * (1 - n^2)
    torch.mul(d_h_new - d_h_new * z, 1.0 - n * n, out=d_pre_n)
    d_rz = torch.cat([d_pre_n * gh_n, d_h_new * (h - n)], dim=1)
    torch.mul(d_rz, rz * (1.0 - rz), out=d_gi[:, : 2 * size])
    d_gh = d_gi.clone()
    d_gh[:, 2 * size :].mul_(r)
    return d_gi, d_gh


class GRU4Rec(nn.Module):
    """Session-based recommender: GRU layers over item sequences, scores over all items.

    Evaluation interface: ``init_state``, ``step``, ``reset_slots``, ``output_weights``.
    """

    def __init__(
        self,
        n_items: int,
        layers: list[int],
        embedding: str = "shared",
        embedding_dim: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if embedding not in EMBEDDING_MODES:
            raise ConfigError("embedding", f"got {embedding!r}, expected one of {', '.join(EMBEDDING_MODES)}")
        if not layers or any(int(size) <= 0 for size in layers):
            raise ConfigError("layers", f"got {layers!r}, expected a non-empty list of positive sizes")
        self.n_items = int(n_items)
        # Identity of the vocabulary the model is trained with ({"n_items", "fingerprint"}); None if unknown.
        self.vocabulary: dict | None = None
        self.layers = [int(size) for size in layers]
        self.embedding = embedding
        self.embedding_dim = int(embedding_dim) if embedding == "separate" else 0
        if embedding == "separate" and self.embedding_dim <= 0:
            self.embedding_dim = self.layers[0]
        generator = torch.Generator().manual_seed(int(seed))

        def frozen(tensor: Tensor) -> nn.Parameter:
            # Gradients are computed by hand; autograd never needs to track these.
            return nn.Parameter(tensor, requires_grad=False)

        d_out = self.layers[-1]
        if embedding == "shared":
            input_size = d_out
        elif embedding == "separate":
            input_size = self.embedding_dim
        else:
            input_size = self.n_items
        self.input_embedding = (
            frozen(glorot_uniform(self.n_items, self.embedding_dim, 1, generator)) if embedding == "separate" else None
        )
        self.gru_input_weights = nn.ParameterList()
        self.gru_hidden_weights = nn.ParameterList()
        self.gru_input_biases = nn.ParameterList()
        self.gru_hidden_biases = nn.ParameterList()
        for size in self.layers:
            self.gru_input_weights.append(frozen(glorot_uniform(input_size, size, 3, generator)))
            self.gru_hidden_weights.append(frozen(glorot_uniform(size, size, 3, generator)))
            self.gru_input_biases.append(frozen(torch.zeros(3 * size)))
            self.gru_hidden_biases.append(frozen(torch.zeros(3 * size)))
            input_size = size
        self.item_weight = frozen(glorot_uniform(self.n_items, d_out, 1, generator))
        self.item_bias = frozen(torch.zeros(self.n_items))

    @property
    def device(self) -> torch.device:
        return self.item_weight.device

    @property
    def output_size(self) -> int:
        return self.layers[-1]

    def hyperparameters(self) -> dict:
        return {
            "n_items": self.n_items,
            "layers": list(self.layers),
            "embedding": self.embedding,
            "embedding_dim": self.embedding_dim,
        }

    def init_state(self, batch_size: int) -> list[Tensor]:
        """Zero hidden states, one [batch_size, H] tensor per layer, on the model's device."""
        return [torch.zeros(batch_size, size, device=self.device) for size in self.layers]

    @staticmethod
    def reset_slots(state: list[Tensor], mask: Tensor) -> None:
        """Zero, in place, the state rows of the slots where ``mask`` (bool [B]) is true."""
        keep = (~mask.to(torch.bool)).to(state[0].dtype).unsqueeze(1)
        for layer_state in state:
            layer_state.mul_(keep)

    def input_projection(self, inputs: Tensor) -> Tensor:
        """``x W + b`` of the first GRU layer for item indices ``inputs`` [B] (no dropout)."""
        weight, bias = self.gru_input_weights[0], self.gru_input_biases[0]
        if self.embedding == "none":
            return weight.index_select(0, inputs).add_(bias)
        table = self.item_weight if self.embedding == "shared" else self.input_embedding
        return torch.addmm(bias, table.index_select(0, inputs), weight)

    @torch.no_grad()
    def step(self, inputs: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Advance every slot by one item (evaluation: no dropout).

        ``inputs``: item indices [B]; ``state``: from ``init_state`` or a previous ``step``.
        Returns the output [B, d_out] (score items with ``output_weights``) and the new state.
        """
        gi = self.input_projection(inputs)
        new_state = []
        for layer, h in enumerate(state):
            if layer > 0:
                gi = torch.addmm(self.gru_input_biases[layer], new_state[-1], self.gru_input_weights[layer])
            h_new, _, _, _ = gru_gates(gi, h, self.gru_hidden_weights[layer], self.gru_hidden_biases[layer])
            new_state.append(h_new)
        return new_state[-1], new_state

    def output_weights(self) -> tuple[Tensor, Tensor]:
        """(W [n_items, d_out], b [n_items]): scores of all items are ``out @ W.T + b``."""
        return self.item_weight, self.item_bias

    def save(self, path) -> None:
        """Write hyperparameters, the vocabulary's identity and the weights (tensors and plain values only)
        atomically."""
        payload = {
            "format": MODEL_FORMAT,
            "hyperparameters": self.hyperparameters(),
            "vocabulary": self.vocabulary,
            "state_dict": {name: tensor.detach().cpu().clone() for name, tensor in self.state_dict().items()},
        }
        payload["weights_sha256"] = weights_digest(payload["state_dict"])
        try:
            with atomic_output(path) as temporary:
                torch.save(payload, temporary)
        except (OSError, RuntimeError) as exc:
            full = no_space_error(exc, path)
            if full is None:
                raise
            raise full from exc

    @classmethod
    def from_payload(cls, payload: dict, source: str = "<memory>") -> "GRU4Rec":
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise DataFormatError(source, f"not a model file of format {MODEL_FORMAT}")
        hyper = payload["hyperparameters"]
        model = cls(hyper["n_items"], hyper["layers"], hyper["embedding"], hyper["embedding_dim"])
        model.vocabulary = payload.get("vocabulary")
        recorded = payload.get("weights_sha256")  # absent from files written before it was recorded
        if recorded is not None and recorded != weights_digest(payload["state_dict"]):
            raise DataFormatError(
                source, "the weights do not match the checksum recorded with them: the file is damaged (a flipped "
                "bit, an incomplete copy); train the model again or copy it anew",
            )  # fmt: skip
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise DataFormatError(source, f"weights do not match the hyperparameters: {exc}") from None
        return model


def weights_digest(state_dict: dict) -> str:
    """SHA-256 over the weights' names, shapes, dtypes and bytes, in name order: what ``model.pt`` records and
    its loading checks, so a damaged file is refused instead of scoring with altered weights."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
