"""What a data set means for the config: the defaults it brings, and the settings it cannot honour.

Its defaults: its official best hyperparameters and session-rec's kNN settings.

A data set other than rsc15 (config key ``dataset``) trains the loss of its published best setting with the
official parameter file's values (``training.losses.<loss>``) and runs the kNN baselines with session-rec's
settings for it where session-rec publishes some (``baselines.<method>``), all taken from the registry
(``registry.py``), never repeated by hand. :func:`apply_dataset_defaults` puts them into a loaded config: each
value the config leaves at the shipped ``config/config.yaml``'s value takes the set's, and a value the user
changed (in an overlay or with ``--config``) wins. The other losses keep their defaults. rsc15 brings none: the
shipped config is its own.

:func:`dataset_problem` names, by its key, a setting the configured set cannot honour (RSC15's sources and
protocols, the day-by-day evaluation, a download behind a sign-up) or ``raw`` given for rsc15.

Plain Python, so the workflow can apply them while it loads.
"""

from __future__ import annotations

import copy

from gru4rec_pipeline.config_check import shown_value
from gru4rec_pipeline.data.datasets.registry import dataset, sign_up_message, training_defaults
from gru4rec_pipeline.names import DATASETS, DEFAULT_DATASET, PROTOCOL_DEFAULTS, RSC15_URL

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


def dataset_problem(config: dict) -> str | None:
    """Settings a data set other than rsc15 (config key dataset) cannot honour: the RSC15 clicks' own sources,
    RSC15's protocols and their settings (the set's own protocol splits it), the day-by-day evaluation (it reads
    RSC15's clicks), a download of a set behind a sign-up; and a raw folder given for rsc15."""
    name = config.get("dataset") or DEFAULT_DATASET
    if name == DEFAULT_DATASET:
        if config.get("raw"):
            return (
                f"config key 'raw': {shown_value(config['raw'])} is read for the other data sets (dataset: rees46, "
                "coveo, retailrocket or diginetica); RSC15's clicks come from archive, clicks or source: set "
                "dataset, or give yoochoose-data.7z as archive or yoochoose-clicks.dat as clicks"
            )
        return None
    spec = dataset(name)
    protocol = {**PROTOCOL_DEFAULTS, "preset": "rsc15", **(config.get("protocol") or {})}
    own = f"the {name} data set comes from raw (its files' folder) or source"
    their_protocol = f"{spec.short_title} is split by its authors' script (docs/datasets.md), not RSC15's protocol"
    # key: (its value, whether that value is refused, why)
    checks = {
        "own_data.path": (path := (config.get("own_data") or {}).get("path"), bool(path), "leave it empty"),
        "clicks": (config.get("clicks"), bool(config.get("clicks")), "leave it empty"),
        "archive": (config.get("archive"), bool(config.get("archive")), "leave it empty"),
        "url": (url := config.get("url", RSC15_URL), url != RSC15_URL, "it is RSC15's archive"),
        "sha256": (config.get("sha256"), bool(config.get("sha256")), "it checks RSC15's archive"),
        "protocol.preset": (protocol["preset"], protocol["preset"] != "rsc15", "leave it at rsc15"),
        "protocol.split_seconds": (
            protocol["split_seconds"],
            protocol["split_seconds"] != PROTOCOL_DEFAULTS["split_seconds"],
            f"its test period is the script's, {spec.period_seconds} s",
        ),
        "protocol.drop_duplicates": (protocol["drop_duplicates"], protocol["drop_duplicates"], "the script's apply"),
        "rolling.run": (
            run := (config.get("rolling") or {}).get("run"),
            bool(run),
            "the day-by-day evaluation reads RSC15's clicks (results/data/clicks.parquet); set run: []",
        ),
    }
    for key, (value, refused, why) in checks.items():
        if refused:
            reason = their_protocol if key.startswith("protocol.") else own
            return f"config key '{key}': {shown_value(value)} is not supported with dataset {name}: {reason}; {why}"
    if not config.get("raw") and config.get("source") == "download" and spec.needs_sign_up:
        return f"config key 'source': download: {sign_up_message(name)}"
    return None
