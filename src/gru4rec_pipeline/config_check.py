"""The config checked against ``config/schema.yaml``, with a one-line answer naming key, value and expectation.

A failed validation in Snakemake prints the schema and the offending instance, which for an unknown
top-level key is the whole config (hundreds of lines) after the one useful line. The workflow checks
the config with :func:`config_problem` first and stops with its message alone.
"""

from __future__ import annotations

import math
import os

from gru4rec_pipeline.names import (
    DATA_PARALLEL_DEFAULTS,
    WINDOW_DEFAULTS,
)

# How a JSON-schema keyword's bound reads after "expected".
BOUNDS = {
    "minimum": "a number >= {}",
    "exclusiveMinimum": "a number > {}",
    "maximum": "a number <= {}",
    "exclusiveMaximum": "a number < {}",
    "minLength": "a string of at least {} characters",
    "maxLength": "a string of at most {} characters",
    "minItems": "a list of at least {} items",
    "minProperties": "at least {} entries",
    "pattern": "a string matching {}",
}
TYPES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys to values",
}
MAX_VALUE_CHARS = 80


def config_problem(config: dict, schema: dict) -> str | None:
    """What is wrong with ``config`` under ``schema`` (the most relevant error), or None when it is valid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    renamed = _renamed_key(config)
    if renamed is not None:
        return renamed
    not_finite = _non_finite_number(config)
    if not_finite is not None:
        # JSON Schema's bounds hold for NaN (every comparison with it is false), so it would pass them.
        key, value = not_finite
        return f"config key '{key}': got {value}, expected a finite number"
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    return None if error is None else describe(error)


def _renamed_key(config: dict) -> str | None:
    """A key of an earlier version that has a new name, said with its new name (the schema would only call it
    unknown)."""
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    places = [("training", training)]
    losses = training.get("losses") if isinstance(training.get("losses"), dict) else {}
    places += [(f"training.losses.{loss}", entry) for loss, entry in losses.items() if isinstance(entry, dict)]
    for where, entry in places:
        if "fast_path" in entry:
            return (
                f"config key '{where}.fast_path': renamed to training.engine (auto, loop, eager or graphs; fast_path "
                "off is engine loop, on is eager on a CPU and graphs on a GPU)"
            )
    return None


def _non_finite_number(value, path=()) -> tuple[str, float] | None:
    """The key and value of the first NaN or infinity in ``value`` (YAML's .nan, .inf), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return _key(path), value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite_number(child, (*path, key))
        if found is not None:
            return found
    return None


def _key(path) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def shown_value(value) -> str:
    """``repr(value)``, cut to MAX_VALUE_CHARS."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _listed(values) -> str:
    return ", ".join(str(value) for value in values)


def describe(error) -> str:
    """``config key 'a.b': got V, expected E`` (and the key's description from the schema on a second line)
    for a jsonschema ValidationError."""
    path = list(error.absolute_path)
    keyword, schema, value = error.validator, error.schema, error.instance
    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        unknown = sorted(str(name) for name in value if name not in allowed)
        others = f" (and {_listed(unknown[1:])})" if len(unknown) > 1 else ""
        return f"config key '{_key([*path, unknown[0]])}'{others}: unknown key; expected one of: {_listed(allowed)}"
    if "propertyNames" in error.schema_path:
        return f"config key '{_key([*path, value])}': unknown key; expected one of: {_listed(schema.get('enum', []))}"
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"config key '{_key([*path, missing])}' is missing; it is required"
    if keyword == "enum":
        expected = f"one of: {_listed(error.validator_value)}"
    elif keyword == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(TYPES.get(kind, kind) for kind in kinds)
    elif keyword in BOUNDS:
        expected = BOUNDS[keyword].format(error.validator_value)
    else:
        expected = error.message
    description = " ".join(str(schema.get("description", "")).split())
    about = f"\nconfig/schema.yaml on {_key(path)}: {description}" if description else ""
    return f"config key '{_key(path)}': got {shown_value(value)}, expected {expected}{about}"


# ---------------------------------------------------------------- checks across keys
# Each returns one sentence naming the keys and what to change, or None; the workflow stops on the first at load,
# before any job runs, where the run would otherwise fail late or quietly ignore a setting.


def window_problem(config: dict) -> str | None:
    """Settings the window preset (protocol.preset: window) cannot honour: its slices train and evaluate each model
    once, in the final setting (train_full -> test of the slice), and `rule all` builds the window's results alone;
    and slices that cannot differ."""
    protocol = config.get("protocol") or {}
    if protocol.get("preset") != "window":
        return None
    window = {**WINDOW_DEFAULTS, **(protocol.get("window") or {})}
    if window["days_shift"] == 0 and window["slices"] > 1:
        return (
            f"config key 'protocol.window.days_shift': 0 gives {window['slices']} identical slices; "
            "set the days between the slices' starts, or slices: 1"
        )
    ignored = {
        "replicates": (config.get("replicates", 1) != 1, "each model is trained once per slice; set replicates: 1"),
        "setting": (
            config.get("setting", "final") != "final",
            "the slices have no validation split: they train on train_full and test on test; set setting: final",
        ),
        "training.early_stopping.patience": (
            bool(((config.get("training") or {}).get("early_stopping") or {}).get("patience")),
            "early stopping needs a validation split, which the slices have not; set patience: 0",
        ),
        "tuning.run": (bool((config.get("tuning") or {}).get("run")), "studies tune on the valid split; set run: []"),
        "rolling.run": (
            bool((config.get("rolling") or {}).get("run")),
            "rule all builds the window's results alone; set run: [] (results/rolling/{loss}.tsv can be asked for "
            "by name under another preset)",
        ),
        "retrain.clicks": (
            bool((config.get("retrain") or {}).get("clicks")),
            "rule all builds the window's results alone, and the slices' models are not retrained; set clicks: ''",
        ),
    }
    for key, (set_, why) in ignored.items():
        if set_:
            value = config
            for part in key.split("."):
                value = value[part]
            return f"config key '{key}': {shown_value(value)} is not supported under protocol.preset window: {why}"
    return None


def data_parallel_problem(config: dict, executor=None, environ: dict | None = None) -> str | None:
    """A data-parallel training (training.processes x training.nodes above 1) that would fail once started: a
    loss whose minibatch has fewer lanes than there are processes (each process takes a share of the lanes),
    early stopping (the per-epoch evaluation does not run across processes), or several nodes outside SLURM
    (they are started with srun, in a SLURM allocation). ``executor``: a callable giving the executor the
    run was started with (None where unknown), asked only for several nodes; ``environ``: the environment."""
    training = config.get("training") or {}
    parallel = {**DATA_PARALLEL_DEFAULTS, **training}
    processes, nodes = parallel["processes"], parallel["nodes"]
    world = processes * nodes
    if world == 1:
        return None
    for loss, hyperparameters in (training.get("losses") or {}).items():
        batch_size = (hyperparameters or {}).get("batch_size")
        if batch_size is not None and batch_size < world:
            return (
                f"config key 'training.losses.{loss}.batch_size': a minibatch of {batch_size} cannot be shared out "
                f"among the {processes} x {nodes} processes of training.processes x training.nodes (each takes a "
                f"share of its lanes); raise batch_size to at least {world}, or train on fewer processes"
            )
    if (training.get("early_stopping") or {}).get("patience") and config.get("setting") == "tuning":
        return (
            "config key 'training.early_stopping.patience': early stopping needs the per-epoch evaluation, which a "
            f"data-parallel training (training.processes x training.nodes = {processes} x {nodes}) does not run; "
            "set patience: 0, or processes: 1 and nodes: 1"
        )
    environ = os.environ if environ is None else environ
    if nodes > 1 and "SLURM_JOB_ID" not in environ:
        started_with = executor() if executor is not None else None
        if started_with is not None and not started_with.startswith("slurm"):
            return (
                f"config key 'training.nodes': {nodes} nodes are started with srun, in a SLURM allocation; this run "
                f"uses the {started_with} executor outside one: run with --workflow-profile profiles/slurm (or "
                "inside salloc/sbatch), or set nodes: 1"
            )
    return None
