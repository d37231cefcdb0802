"""The defaults a data set brings to the config: its official best hyperparameters and session-rec's kNN settings.

A data set other than rsc15 (config key ``dataset``) trains the loss of its published best setting with the
official parameter file's values (``training.losses.<loss>``) and runs the kNN baselines with session-rec's
settings for it where session-rec publishes some (``baselines.<method>``), all taken from the registry
(``registry.py``), never repeated by hand. :func:`apply_dataset_defaults` puts them into a loaded config: each
value the config leaves at the shipped ``config/config.yaml``'s value takes the set's, and a value the user
changed (in an overlay or with ``--config``) wins. The other losses keep their defaults. rsc15 brings none: the
shipped config is its own.

Plain Python, so the workflow can apply them while it loads.
"""

from __future__ import annotations

import copy

from gru4rec_pipeline.data.datasets.registry import dataset, training_defaults
from gru4rec_pipeline.names import DATASETS, DEFAULT_DATASET

_MISSING = object()


def dataset_defaults(name: str) -> dict:
    """The config values data set ``name`` brings, as a nested mapping of config keys (empty for rsc15)."""
    if name == DEFAULT_DATASET:
        return {}
    spec = dataset(name)
    # embedding_dim sizes a separate embedding only; every official setting shares the output's.
    hyperparameters = {
        key: value for key, value in training_defaults(name).items() if key not in ("loss", "embedding_dim")
    }
    return {"training": {"losses": {spec.loss: hyperparameters}}, "baselines": copy.deepcopy(spec.knn)}


def _leaves(tree: dict, path: tuple = ()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


def _get(tree: dict, path: tuple):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = copy.deepcopy(value)


def apply_dataset_defaults(config: dict, shipped: dict) -> list[str]:
    """Give ``config`` the defaults of its ``dataset`` where it holds ``shipped``'s value (the shipped config's,
    or nothing where that has none); returns one line per value changed: ``key: old -> new``."""
    changed = []
    for path, value in _leaves(dataset_defaults(config.get("dataset") or DEFAULT_DATASET)):
        current = _get(config, path)
        if current == _get(shipped, path) and current != value:
            _set(config, path, value)
            old = "unset" if current is _MISSING else repr(current)
            changed.append(f"{'.'.join(path)}: {old} -> {value!r}")
    return changed


def defaults_table() -> str:
    """The defaults of every data set as a markdown table (docs/datasets.md shows it; a test keeps the two equal)."""
    lines = ["| dataset | loss | hyperparameters (official parameter file) | kNN settings (session-rec) |"]
    lines.append("|---|---|---|---|")
    for name in DATASETS:
        if name == DEFAULT_DATASET:
            continue
        spec = dataset(name)
        values = dataset_defaults(name)
        hyperparameters = ", ".join(f"{k} {v}" for k, v in values["training"]["losses"][spec.loss].items())
        knn = "; ".join(
            f"{method}: " + ", ".join(f"{k} {v}" for k, v in settings.items()) for method, settings in spec.knn.items()
        )
        lines.append(
            f"| {name} | {spec.loss} | {hyperparameters} (`{spec.parameter_file}`) | {knn or 'none published'} |"
        )
    return "\n".join(lines) + "\n"
